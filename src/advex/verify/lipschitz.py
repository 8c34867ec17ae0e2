"""A network with a provable L2 Lipschitz bound, and the certificate its logit margin gives (Tsuzuku et al. 2018).

If every logit difference changes by at most √2·L·‖δ‖₂ when the input moves by δ (L the network's L2
Lipschitz constant: ‖f(x + δ) − f(x)‖₂ ≤ L‖δ‖₂), then a digit whose margin z_y − max_{j≠y} z_j exceeds
√2·L·ε keeps its label on the whole L2 ball of radius ε (Tsuzuku, Sato & Sugiyama 2018, Prop. 1).  The
certified radius is therefore margin / (√2·L).  This is Bram Cohen's (2019) wish — confidence that cannot
change faster than the distance allows — turned into an architecture: every linear layer is divided by its
spectral norm whenever that exceeds 1 (exact for the certified network, estimated by power iteration in
training), and ReLU is 1-Lipschitz, so L ≤ ∏ₖ ‖Wₖ‖₂ ≤ 1 by construction.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..validation import check_eps, check_images, check_positive_int

__all__ = ["LipschitzMLP", "certified_l2_radius", "lipschitz_bound", "lipschitz_margin_loss",
           "verified_by_lipschitz"]


class NormBoundedLinear(nn.Module):
    """y = W x + b with W = V / max(1, σ(V)), σ the spectral norm: a linear layer whose norm is at most 1.

    Evaluation, attacks and every certificate divide by the exact σ (an SVD, computed once while the weights
    stand still), so the certified network has ‖W‖₂ ≤ 1 exactly.  Training divides by the power-iteration
    estimate of spectral normalisation (Miyato et al. 2018, who take one step per forward pass; we take
    ``power_iterations``) on a persistent vector: differentiable and a few matrix-vector products cheap, where
    differentiating an SVD at every step costs seconds.  The estimate σ̂ is never above σ, so the certified
    weights are the trained ones scaled by max(1, σ̂) / max(1, σ) ≤ 1 (chapter 8 prints σ̂ and σ for its network).
    """

    def __init__(self, in_features: int, out_features: int, *, power_iterations: int = 10):
        super().__init__()
        self.power_iterations = check_positive_int(power_iterations, "power_iterations")
        layer = nn.Linear(in_features, out_features)   # PyTorch's initialisation
        self.raw_weight = nn.Parameter(layer.weight.detach().clone())
        self.bias = nn.Parameter(layer.bias.detach().clone())
        # the right singular vector that power iteration refines, kept between steps
        self.register_buffer("power_vector", F.normalize(torch.randn(in_features), dim=0))

    def estimated_norm(self, *, iterate: bool = False) -> torch.Tensor:
        """σ(V) by power iteration from the stored vector (``power_iterations`` more steps first if ``iterate``);
        differentiable in V."""
        with torch.no_grad():
            v = self.power_vector
            if iterate:
                for _ in range(self.power_iterations):
                    v = F.normalize(self.raw_weight.T @ F.normalize(self.raw_weight @ v, dim=0), dim=0)
                self.power_vector.copy_(v)
            u = F.normalize(self.raw_weight @ v, dim=0)
        return u @ self.raw_weight @ v

    def in_training_step(self) -> bool:
        """Whether a forward pass now is a training step (train mode, gradients wanted for the weights): then the
        layer divides by the power-iteration estimate, and :func:`lipschitz_margin_loss` must use it too."""
        return self.training and torch.is_grad_enabled() and self.raw_weight.requires_grad

    def weight(self) -> torch.Tensor:
        if self.in_training_step():
            return self.raw_weight / self.estimated_norm(iterate=True).clamp(min=1.0)
        if torch.is_grad_enabled() and self.raw_weight.requires_grad:
            return self._normalised()   # gradients for the parameters of the certified network: exact
        # an attack or an evaluation: the weights are fixed, so one SVD serves every query until they change
        # (an optimiser step or load_state_dict bumps the parameter's version counter)
        key = (self.raw_weight._version, self.raw_weight.data_ptr(), self.raw_weight.device, self.raw_weight.dtype)
        if getattr(self, "_cached_key", None) != key:
            with torch.no_grad():
                self._cached_weight = self._normalised()
            self._cached_key = key
        return self._cached_weight

    def _normalised(self) -> torch.Tensor:
        spectral = torch.linalg.matrix_norm(self.raw_weight, ord=2)
        return self.raw_weight / spectral.clamp(min=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight(), self.bias)


class LipschitzMLP(nn.Module):
    """Flatten → (norm-bounded linear → ReLU) × len(hidden) → norm-bounded linear: L2-Lipschitz with L ≤ 1."""

    def __init__(self, hidden: tuple[int, ...] = (256, 256), in_features: int = 28 * 28, num_classes: int = 10, *,
                 power_iterations: int = 10):
        super().__init__()
        if not hidden or not all(isinstance(h, int) and h >= 1 for h in hidden):
            raise ValueError(f"hidden must be a non-empty tuple of integers >= 1, got {hidden!r}")
        widths = (check_positive_int(in_features, "in_features"), *hidden, check_positive_int(num_classes, "num_classes"))
        self.layers = nn.ModuleList(NormBoundedLinear(a, b, power_iterations=power_iterations)
                                    for a, b in zip(widths[:-1], widths[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1)
        for layer in self.layers[:-1]:
            h = F.relu(layer(h))
        return self.layers[-1](h)


def lipschitz_bound(model: LipschitzMLP) -> torch.Tensor:
    """A provable L2 Lipschitz constant of the logits: the product of the layers' exact spectral norms (differentiable)."""
    if not isinstance(model, LipschitzMLP):
        raise ValueError(f"model must be a LipschitzMLP, got {type(model).__name__}")
    norms = [torch.linalg.matrix_norm(layer.weight().to(torch.float64), ord=2) for layer in model.layers]
    return torch.stack(norms).prod()


def _margins(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    true = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], -math.inf)
    return true - others.amax(1)


@torch.no_grad()
def certified_l2_radius(model: LipschitzMLP, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per example (CPU, float64): margin / (√2·L), the L2 radius inside which the label y cannot change; 0 when misclassified."""
    check_images(x, "x")
    if not isinstance(y, torch.Tensor) or y.shape != (x.shape[0],) or y.dtype.is_floating_point:
        raise ValueError(f"y must be an integer tensor of shape ({x.shape[0]},)")
    lipschitz = lipschitz_bound(model)
    device = next(model.parameters()).device
    margins = _margins(model(x.to(device)).to(torch.float64), y.to(device).long())
    return (margins / (math.sqrt(2) * lipschitz)).clamp(min=0).cpu()


def verified_by_lipschitz(model: LipschitzMLP, x: torch.Tensor, y: torch.Tensor, eps) -> torch.Tensor:
    """Per example (bool, CPU): certified on the L2 ball of radius ε, i.e. margin > √2·L·ε."""
    eps = check_eps(eps)
    return certified_l2_radius(model, x, y) > eps


def lipschitz_margin_loss(model: LipschitzMLP, x: torch.Tensor, y: torch.Tensor, *, eps: float,
                          temperature: float = 1.0) -> torch.Tensor:
    """Lipschitz-margin training (Tsuzuku et al. 2018, §4): cross-entropy after adding √2·L·ε to every wrong logit.

    The loss is small only when the margin exceeds √2·L·ε, i.e. when the digit is certified at radius ε.
    ``temperature`` multiplies the logits inside the loss only (a 1-Lipschitz network's logits are small).
    In training L is the power-iteration estimate that matches the step's weights (see ``NormBoundedLinear``);
    otherwise it is the exact bound :func:`lipschitz_bound`.
    """
    eps = check_eps(eps)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"temperature must be a number > 0, got {temperature!r}")
    logits = model(x)
    if all(layer.in_training_step() for layer in model.layers):
        # the norms of this step's weights V / max(1, σ̂) are σ̂ / max(1, σ̂) = min(σ̂, 1); no SVD to differentiate
        lipschitz = torch.stack([layer.estimated_norm().clamp(max=1.0) for layer in model.layers]).prod().to(logits.dtype)
    else:
        lipschitz = lipschitz_bound(model).to(logits.dtype)
    wrong = 1.0 - F.one_hot(y, logits.shape[1]).to(logits.dtype)
    return F.cross_entropy(temperature * (logits + math.sqrt(2) * lipschitz * eps * wrong), y)
