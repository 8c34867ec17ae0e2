"""Chapter 2: linear models on MNIST, where the fast gradient sign method is exact.

Logistic regression (Goodfellow, Shlens & Szegedy 2015, §5) models
P(y = 1 | x) = σ(wᵀx + b) with labels y ∈ {−1, +1}; training minimises
E ζ(−y(wᵀx + b)) with the softplus ζ(z) = log(1 + eᶻ).  The gradient of that
loss with respect to x points along −y·w, so the FGSM perturbation is
η = −ε·y·sign(w) and it lowers the margin y(wᵀx + b) by exactly wᵀ(ε sign w) = ε‖w‖₁
(unless clipping to [0, 1] intervenes).  Training against that worst case has the
closed form E ζ(ε‖w‖₁ − y(wᵀx + b)).

Models take N×1×H×W images in [0, 1] like every model in the book, so
:func:`advex.fgsm`, :func:`advex.predict` and :func:`advex.train_classifier`
work on them unchanged.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .attacks import fgsm
from .train import predict
from .validation import check_eps, check_images, check_labels, check_positive_int


class LogisticRegression(nn.Module):
    """P(y = 1 | x) = σ(wᵀx + b) on H×W images (Goodfellow et al. 2015, §5).

    ``forward`` returns the two logits (0, wᵀx + b): their softmax is
    (1 − σ(z), σ(z)) and their cross-entropy is the softplus loss ζ(−y z), so
    class 1 is the "positive" class and class 0 the "negative" one.  Weights
    start at zero: the problem is convex, and a zero start keeps the weights
    inside the span of the training images (random initial weights in the
    directions no image uses would never be trained away, yet FGSM would exploit them).
    """

    def __init__(self, height: int = 28, width: int = 28):
        super().__init__()
        self.shape = (check_positive_int(height, "height"), check_positive_int(width, "width"))
        self.linear = nn.Linear(height * width, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def logit(self, x: torch.Tensor) -> torch.Tensor:
        """z = wᵀx + b, one number per image."""
        return self.linear(x.flatten(1)).squeeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.logit(x)
        return torch.stack([torch.zeros_like(z), z], dim=1)

    def weight_image(self) -> torch.Tensor:
        """w as an H×W image (detached, on the CPU)."""
        return self.linear.weight.detach().cpu().reshape(self.shape)

    def l1_norm(self) -> torch.Tensor:
        """‖w‖₁, the most an ε = 1 max-norm perturbation can move the logit."""
        return self.linear.weight.abs().sum()


class SoftmaxRegression(nn.Module):
    """Multinomial logistic regression: logits Wx + b on flattened H×W images."""

    def __init__(self, height: int = 28, width: int = 28, num_classes: int = 10):
        super().__init__()
        self.shape = (check_positive_int(height, "height"), check_positive_int(width, "width"))
        self.linear = nn.Linear(height * width, check_positive_int(num_classes, "num_classes"))
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))

    def weight_images(self) -> torch.Tensor:
        """The class templates as a (classes, H, W) tensor (detached, on the CPU)."""
        return self.linear.weight.detach().cpu().reshape(-1, *self.shape)


# -- losses --------------------------------------------------------------------------------


def signed_labels(y: torch.Tensor) -> torch.Tensor:
    """Class indices {0, 1} -> the paper's labels {−1, +1} (as floats)."""
    return 2.0 * y.float() - 1.0


def logistic_loss(model: LogisticRegression, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """E ζ(−y(wᵀx + b)), the standard logistic loss (Goodfellow et al. 2015, §5)."""
    return F.softplus(-signed_labels(y) * model.logit(x)).mean()


def adversarial_logistic_loss(model: LogisticRegression, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """E ζ(ε‖w‖₁ − y(wᵀx + b)): the logistic loss at the worst point of the ε max-norm ball.

    Goodfellow et al. (2015, §5) print it as E ζ(y(ε‖w‖₁ − wᵀx − b)); for
    y = +1 the two agree, for y = −1 the printed form would *help* the model, because
    the adversary lowers the margin y(wᵀx + b) by ε‖w‖₁ whatever the label.
    Without the [0, 1] box this equals :func:`logistic_loss` at the FGSM point exactly.
    """
    eps = check_eps(eps)
    margin = signed_labels(y) * model.logit(x)
    return F.softplus(eps * model.l1_norm() - margin).mean()


def l1_logistic_loss(model: LogisticRegression, x: torch.Tensor, y: torch.Tensor, weight_decay: float) -> torch.Tensor:
    """E ζ(−y(wᵀx + b)) + λ‖w‖₁: L1 weight decay, which Goodfellow et al. (2015, §5) contrast with adversarial training."""
    weight_decay = check_eps(weight_decay, "weight_decay")
    return logistic_loss(model, x, y) + weight_decay * model.l1_norm()


def adversarial_penalty_weight(model: LogisticRegression, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """∂ζ(ε‖w‖₁ − m)/∂‖w‖₁ ÷ ε = σ(ε‖w‖₁ − m) per example, m the margin y(wᵀx + b).

    How strongly each example pushes ‖w‖₁ down under adversarial training: near 1
    for mistakes and near 0 for confidently correct examples (the penalty switches
    off).  L1 weight decay pushes with the same weight λ on every example.
    """
    eps = check_eps(eps)
    device = model.linear.weight.device
    with torch.no_grad():
        margin = signed_labels(y).to(device) * model.logit(x.to(device))
        return torch.sigmoid(eps * model.l1_norm() - margin)


# -- attacks and measurements --------------------------------------------------------------


def worst_case_perturbation(model: LogisticRegression, y: torch.Tensor, eps: float) -> torch.Tensor:
    """η = −ε·y·sign(w), the exact maximiser of the loss over ‖η‖∞ ≤ ε (no box), as N×1×H×W."""
    eps = check_eps(eps)
    direction = model.linear.weight.detach().sign().reshape(1, 1, *model.shape)
    return -eps * signed_labels(y).to(direction.device).reshape(-1, 1, 1, 1) * direction


def margins(model: LogisticRegression, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The margin m = y(wᵀx + b) of every image: positive exactly when it is classified correctly."""
    device = model.linear.weight.device
    with torch.no_grad():
        return signed_labels(y).to(device) * model.logit(x.to(device))


def margin_drop(model: LogisticRegression, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """How much the margin y(wᵀx + b) fell from ``x`` to ``x_adv``, per image (ε‖w‖₁ at most)."""
    device = model.linear.weight.device
    with torch.no_grad():
        x, x_adv, s = x.to(device), x_adv.to(device), signed_labels(y).to(device)
        return s * (model.logit(x) - model.logit(x_adv))


def fgsm_error_and_confidence(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float,
                              batch_size: int = 2000) -> tuple[float, float]:
    """Error of ``model`` on FGSM examples at ``eps`` and its mean confidence on its mistakes.

    The confidence is the probability of the predicted (wrong) class, as in
    Goodfellow et al. (2015, §4); NaN when there are no mistakes.
    """
    eps = check_eps(eps)
    batch_size = check_positive_int(batch_size, "batch_size")
    wrong_conf = []
    for start in range(0, len(images), batch_size):
        x, y = images[start:start + batch_size], labels[start:start + batch_size]
        probs = predict(model, fgsm(model, x, y, eps)).cpu()
        confidence, guess = probs.max(1)
        wrong_conf.append(confidence[guess != y.cpu()])
    wrong = torch.cat(wrong_conf)
    return len(wrong) / len(images), (wrong.mean().item() if len(wrong) else float("nan"))


# -- data ----------------------------------------------------------------------------------


def binary_digits(images: torch.Tensor, labels: torch.Tensor, negative: int = 3, positive: int = 7
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Only the images of two digits, relabelled 0 (``negative``) and 1 (``positive``)."""
    check_labels(labels, 10, batch_size=images.shape[0], name="labels")
    for name, digit in (("negative", negative), ("positive", positive)):
        if digit not in range(10):
            raise ValueError(f"{name} must be a digit 0..9, got {digit!r}")
    if negative == positive:
        raise ValueError(f"negative and positive must differ, got {negative} twice")
    keep = (labels == negative) | (labels == positive)
    return images[keep], (labels[keep] == positive).long()


def resample_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """N×1×H×W images in [0, 1] resampled to size×size.

    Shrinking averages blocks of pixels (area interpolation: what a coarser
    sensor would record); enlarging interpolates bilinearly (a smooth image at
    more pixels, with no new detail).  Values stay in [0, 1].
    """
    check_images(images, "images")
    size = check_positive_int(size, "size")
    if images.dim() != 4:
        raise ValueError(f"images must be N×C×H×W, got shape {tuple(images.shape)}")
    if size == images.shape[-1] and size == images.shape[-2]:
        return images.clone()
    shrinking = size < images.shape[-1]
    out = (F.interpolate(images, size=(size, size), mode="area") if shrinking
           else F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False))
    return out.clamp(0.0, 1.0)


def gaussian_rubbish(count: int, shape: tuple[int, ...] = (1, 28, 28), seed: int = 0) -> torch.Tensor:
    """``count`` samples of N(0, I) shaped like images (Goodfellow et al. 2015, App. A).

    Deliberately *not* in [0, 1]: the paper feeds raw Gaussian vectors, which no
    digit resembles.
    """
    count = check_positive_int(count, "count")
    generator = torch.Generator().manual_seed(seed)
    return torch.randn((count, *shape), generator=generator)
