"""The classifiers the book attacks and the one recipe that trains them.

* :mod:`.linear`: logistic and softmax regression;
* :mod:`.mnist`: the MNIST networks (maxout MLP, CNN, row-by-row GRU/LSTM) and :func:`mnist_classifier`;
* :mod:`.rbf`: the shallow RBF network of Goodfellow et al. (2015, §7), its loss and confidences;
* :mod:`.sparse_fanin`: Bram Cohen's (2019) sparse fan-in architecture and a dense network of equal size;
* :mod:`.ensemble`: the ensemble of Goodfellow et al. (2015, §9), the log of its members' mean probability;
* :mod:`.imagenet`: MobileNetV2 with its pretrained weights, in pixel space, and the class names;
* :mod:`.recipe`: :func:`trained`, build → train → cache, used for every trained model;
* :mod:`.pretrained`: :func:`pretrained`, the models shipped with the book (weights checked by sha256, with provenance).
"""
from .ensemble import Ensemble
from .imagenet import ImageNetClassifier, class_index, imagenet_class_names, load_mobilenet_v2, top_k
from .linear import LogisticRegression, SoftmaxRegression
from .mnist import ARCHITECTURES, DEFAULT_TRAINING, MaxoutMLP, RowRNN, SmallCNN, build_model, mnist_classifier
from .rbf import RBFNetwork, rbf_confidence, rbf_loss
from .pretrained import PretrainedError, pretrained
from .recipe import trained, trained_with_log
from .sparse_fanin import SparseFanIn, SparseFanInNet, dense_counterpart, parameter_count

__all__ = ["ARCHITECTURES", "DEFAULT_TRAINING", "Ensemble", "ImageNetClassifier", "LogisticRegression", "MaxoutMLP", "PretrainedError",
           "RBFNetwork", "RowRNN", "SmallCNN", "SparseFanIn", "SparseFanInNet", "SoftmaxRegression", "build_model", "class_index",
           "dense_counterpart", "imagenet_class_names", "load_mobilenet_v2", "mnist_classifier", "parameter_count", "pretrained", "rbf_confidence", "rbf_loss", "top_k",
           "trained", "trained_with_log"]
