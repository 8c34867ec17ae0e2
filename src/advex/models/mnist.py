"""The MNIST classifiers the book attacks: every one takes N×1×28×28 images in [0, 1].

* ``'softmax'``: :class:`advex.models.linear.SoftmaxRegression`, one linear layer, the "shallow softmax" of Goodfellow et al. (2015, §4);
* :class:`MaxoutMLP`: two maxout layers with dropout (Goodfellow et al. 2013; Srivastava et al. 2014),
  the model family of Goodfellow et al. (2015, §4), optionally with independent sigmoid outputs (App. A);
* :class:`SmallCNN`: two convolution + max-pool blocks and a small dense head (LeCun et al. 1998 style);
* :class:`RowRNN`: a GRU or LSTM that reads the digit one row of 28 pixels at a time
  (Cho et al. 2014; Hochreiter & Schmidhuber 1997), the recurrent test subject of chapter 4.

:func:`mnist_classifier` trains any of them on MNIST once, through :func:`advex.models.trained`.
"""
from __future__ import annotations

import torch
from torch import nn

from ..data.mnist import load_mnist
from ..losses import sigmoid_loss
from ..validation import check_positive_int
from .linear import SoftmaxRegression
from .recipe import trained

__all__ = ["ARCHITECTURES", "DEFAULT_TRAINING", "MNIST_SHAPE", "Maxout", "MaxoutMLP", "RowRNN", "SmallCNN",
           "build_model", "mnist_classifier"]

MNIST_SHAPE = (1, 28, 28)


class Maxout(nn.Module):
    """h_i = max_j (W_ij x + b_ij): a linear layer whose outputs are maxed over ``pieces`` (Goodfellow et al. 2013, eq. 1)."""

    def __init__(self, in_features: int, out_features: int, pieces: int):
        super().__init__()
        self.pieces = pieces
        self.linear = nn.Linear(in_features, out_features * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.linear(x)
        return z.view(*z.shape[:-1], -1, self.pieces).amax(-1)


class MaxoutMLP(nn.Module):
    """Input dropout → maxout → dropout → maxout → dropout → linear (the size of Goodfellow et al.'s MNIST maxout network)."""

    def __init__(self, hidden: int = 240, pieces: int = 5, input_dropout: float = 0.2, dropout: float = 0.5,
                 num_classes: int = 10):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Dropout(input_dropout),
            Maxout(28 * 28, hidden, pieces), nn.Dropout(dropout),
            Maxout(hidden, hidden, pieces), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SmallCNN(nn.Module):
    """conv5(16) → ReLU → pool2 → conv5(32) → ReLU → pool2 → dense(100) → ReLU → dense(10)."""

    def __init__(self, channels: tuple[int, int] = (16, 32), hidden: int = 100, num_classes: int = 10):
        super().__init__()
        c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 5), nn.ReLU(), nn.MaxPool2d(2),   # 28 → 24 → 12
            nn.Conv2d(c1, c2, 5), nn.ReLU(), nn.MaxPool2d(2),  # 12 → 8 → 4
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c2 * 4 * 4, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class RowRNN(nn.Module):
    """A recurrent classifier: row t of the image is the input at time t; the last hidden state is classified."""

    def __init__(self, cell: str = "gru", hidden: int = 64, num_classes: int = 10):
        super().__init__()
        if cell not in ("gru", "lstm"):
            raise ValueError(f"cell must be 'gru' or 'lstm', got {cell!r}")
        recurrent = nn.GRU if cell == "gru" else nn.LSTM
        self.rnn = recurrent(input_size=28, hidden_size=hidden, batch_first=True)
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(x.shape[0], 28, 28)  # (N, time = row, features = pixels of the row)
        outputs, _ = self.rnn(rows)
        return self.head(outputs[:, -1])


ARCHITECTURES = {
    "softmax": SoftmaxRegression,
    "maxout": MaxoutMLP,
    "cnn": SmallCNN,
    "gru": lambda: RowRNN("gru"),
    "lstm": lambda: RowRNN("lstm"),
}

#: Training settings that train each model in seconds to a minute on two CPU cores.
#: The softmax regression is chapter 2's: all 60,000 images, large batches, a large step.
DEFAULT_TRAINING = {
    "softmax": {"train_size": 60000, "epochs": 4, "lr": 1e-2, "batch_size": 500},
    "maxout": {"train_size": 20000, "epochs": 2, "lr": 1e-3, "batch_size": 128},
    "cnn": {"train_size": 20000, "epochs": 2, "lr": 1e-3, "batch_size": 128},
    "gru": {"train_size": 12000, "epochs": 3, "lr": 3e-3, "batch_size": 128},
    "lstm": {"train_size": 12000, "epochs": 3, "lr": 3e-3, "batch_size": 128},
}


def build_model(architecture: str) -> nn.Module:
    """A fresh, untrained model of the named architecture (one of :data:`ARCHITECTURES`)."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {sorted(ARCHITECTURES)}, got {architecture!r}")
    return ARCHITECTURES[architecture]()


def mnist_classifier(architecture: str, *, outputs: str = "softmax", seed: int = 0, verbose: bool = True,
                     **overrides) -> nn.Module:
    """The named architecture trained on the first ``train_size`` MNIST training images (cached).

    outputs:   'softmax' (cross-entropy) or 'sigmoid' (independent one-vs-rest sigmoids).
    overrides: any of train_size, epochs, lr, batch_size (defaults in :data:`DEFAULT_TRAINING`).
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {sorted(ARCHITECTURES)}, got {architecture!r}")
    if outputs not in ("softmax", "sigmoid"):
        raise ValueError(f"outputs must be 'softmax' or 'sigmoid', got {outputs!r}")
    unknown = set(overrides) - set(DEFAULT_TRAINING[architecture])
    if unknown:
        raise ValueError(f"unknown training settings {sorted(unknown)}; allowed: {sorted(DEFAULT_TRAINING[architecture])}")
    settings = {**DEFAULT_TRAINING[architecture], **overrides}
    n = check_positive_int(settings.pop("train_size"), "train_size")
    images, labels = load_mnist("train")
    name = f"mnist-{architecture}" + ("-sigmoid" if outputs == "sigmoid" else "")
    return trained(name, ARCHITECTURES[architecture], (images[:n], labels[:n]), seed=seed, verbose=verbose,
                   loss_fn=sigmoid_loss if outputs == "sigmoid" else None, **settings)
