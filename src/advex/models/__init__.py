"""The classifiers the book attacks and the one recipe that trains them.

* :mod:`.linear`: logistic and softmax regression;
* :mod:`.mnist`: the MNIST networks (maxout MLP, CNN, row-by-row GRU/LSTM) and :func:`mnist_classifier`;
* :mod:`.imagenet`: MobileNetV2 with its pretrained weights, in pixel space, and the class names;
* :mod:`.recipe`: :func:`trained`, build → train → cache, used for every trained model.
"""
from .imagenet import ImageNetClassifier, class_index, imagenet_class_names, load_mobilenet_v2, top_k
from .linear import LogisticRegression, SoftmaxRegression
from .mnist import ARCHITECTURES, DEFAULT_TRAINING, MaxoutMLP, RowRNN, SmallCNN, build_model, mnist_classifier
from .recipe import trained

__all__ = ["ARCHITECTURES", "DEFAULT_TRAINING", "ImageNetClassifier", "LogisticRegression", "MaxoutMLP", "RowRNN",
           "SmallCNN", "SoftmaxRegression", "build_model", "class_index", "imagenet_class_names", "load_mobilenet_v2",
           "mnist_classifier", "top_k", "trained"]
