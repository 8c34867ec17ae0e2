"""Minimal-perturbation attacks: they look for the smallest L2 change that flips the prediction.

* :func:`lbfgs_attack`: Szegedy et al. (2014, §4.1), box-constrained L-BFGS on c‖r‖² + loss_f(x + r, l);
* :func:`deepfool`: Moosavi-Dezfooli, Fawzi & Frossard (2016, Algorithm 2), the multi-class linearisation;
* :func:`advex.attacks.carlini_wagner.cw_l2` (its own module): Carlini & Wagner (2017), L2.

All return adversarial images in [0, 1] with no ε: the size of ``x_adv − x`` is the result.
Inputs are never modified, the model's mode is restored and no gradient is left on its parameters.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import Bounds, minimize
from torch import nn
from torch.nn import functional as F

from .core import attack, attack_succeeded, l2_norms, per_example
from ..validation import check_non_negative, check_positive, check_positive_int

__all__ = ["check_positive_real", "deepfool", "lbfgs_attack"]


#: the name :func:`advex.validation.check_positive` had here before it moved to the bottom layer
check_positive_real = check_positive


def _class_gradients(model: nn.Module, x: torch.Tensor, classes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """All logits f(x) (N, K) and the input gradients ∇ₓ f_k(x) of the classes in ``classes`` (N, M) only: (N, M, ...).

    One backward pass per column of ``classes``, so M, not the number of classes K, sets the cost.
    """
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        logits = model(x)
        chosen = logits.gather(1, classes)
        grads = [torch.autograd.grad(chosen[:, j].sum(), x, retain_graph=j + 1 < classes.shape[1])[0]
                 for j in range(classes.shape[1])]
    return logits.detach(), torch.stack(grads, dim=1)


@attack(eps=False)
def deepfool(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, steps: int = 50, overshoot: float = 0.02,
             candidates: int | None = 10) -> torch.Tensor:
    """DeepFool (Moosavi-Dezfooli et al. 2016, Algorithm 2), untargeted, L2.

    At xᵢ, with f'_k = f_k − f_y and w'_k = ∇f_k − ∇f_y, step to the nearest linearised boundary:
    l = argmin_{k≠y} |f'_k| / ‖w'_k‖₂,  rᵢ = (|f'_l| / ‖w'_l‖₂²) · w'_l,  and
    x_adv = clip₍₀,₁₎(x + (1 + overshoot) Σ rᵢ), until the label changes or ``steps`` run out.

    ``candidates``: only the classes k with the ``candidates`` largest logits at the clean input
    (plus y) enter the argmin, so a step costs ``candidates`` + 1 backward passes instead of one
    per class (1000 on ImageNet); ``None`` linearises every class.  The authors' reference
    implementation restricts ImageNet to the 10 most likely classes in the same way
    (``num_classes=10``): the nearest boundary is almost always one of them.
    """
    steps = check_positive_int(steps, "steps")
    overshoot = check_non_negative(overshoot, "overshoot")
    candidates = None if candidates is None else check_positive_int(candidates, "candidates")
    device = x.device
    total = torch.zeros_like(x)
    x_adv = x.clone()
    active = torch.arange(len(x), device=device)
    # the candidate classes are chosen once, at the clean input; y is always one of them
    clean = model(x)
    keep = clean.shape[1] if candidates is None else min(candidates, clean.shape[1])
    classes = torch.cat([clean.topk(keep, dim=1).indices, y[:, None]], dim=1)
    for _ in range(steps):
        logits, grads = _class_gradients(model, x_adv[active], classes[active])
        still_correct = ~attack_succeeded(logits, y[active], targeted=False)   # over all K classes
        active, logits, grads = active[still_correct], logits[still_correct], grads[still_correct]
        if len(active) == 0:
            break
        candidate, true = classes[active], y[active]
        f_diff = logits.gather(1, candidate) - logits.gather(1, true[:, None])      # f'_k
        w_diff = grads - grads[:, -1:]                                              # w'_k (y is the last column)
        w_norm = w_diff.flatten(2).norm(dim=2).clamp_min(1e-8)                      # ‖w'_k‖₂
        distance = (f_diff.abs() / w_norm).masked_fill(candidate == true[:, None], torch.inf)  # k ≠ y
        nearest = distance.argmin(1)
        rows = torch.arange(len(active), device=device)
        w_l = w_diff[rows, nearest]
        r = per_example((f_diff[rows, nearest].abs() + 1e-4) / w_norm[rows, nearest] ** 2, w_l) * w_l
        total[active] += r
        x_adv[active] = (x[active] + (1 + overshoot) * total[active]).clamp(0.0, 1.0)
    return x_adv.detach()


def _lbfgs_minimise(model, x, target, c, max_iter) -> torch.Tensor:
    """argmin over x' ∈ [0,1]ᵈ of c‖x' − x‖₂² + CE(f(x'), t) for ONE example (x of shape (1, ...)).

    One L-BFGS-B run per example: a joint run over a batch would share one line search and one
    stopping rule, so an example's result would depend on the others in its batch.
    """
    shape, dtype, device = x.shape, x.dtype, x.device

    def objective(flat: np.ndarray):
        with torch.enable_grad():  # scipy calls this from inside whatever context the caller set up
            x_new = torch.from_numpy(flat).to(device=device, dtype=dtype).view(shape).requires_grad_(True)
            value = c * ((x_new - x) ** 2).sum() + F.cross_entropy(model(x_new), target, reduction="sum")
            (grad,) = torch.autograd.grad(value, x_new)
        return value.item(), grad.detach().cpu().double().numpy().ravel()

    start = x.detach().cpu().double().numpy().ravel()
    result = minimize(objective, start, jac=True, method="L-BFGS-B", bounds=Bounds(0.0, 1.0),
                      options={"maxiter": max_iter})
    return torch.from_numpy(result.x).to(device=device, dtype=dtype).view(shape)


@attack(eps=False, labels="target")
def lbfgs_attack(model: nn.Module, x: torch.Tensor, target: torch.Tensor, *, search_steps: int = 8,
                 initial_c: float = 1.0, max_iter: int = 100) -> torch.Tensor:
    """Box-constrained L-BFGS (Szegedy et al. 2014, §4.1), targeted.

    minimise c‖r‖₂² + loss_f(x + r, l)  subject to  x + r ∈ [0, 1]ᵈ,
    by L-BFGS-B (``max_iter`` iterations), once per example and per value of c, so that an example's
    result does not depend on the rest of its batch.  c is searched per example, ``search_steps``
    values in all: ×10 after a success (more weight on ‖r‖), ÷10 after a failure, and geometric
    bisection once a success and a failure bracket it.  Returned per example: of all the minimisers
    classified as the target l, the one with the smallest ‖r‖₂ (normally that of the largest
    successful c, since a larger c weighs ‖r‖ more); ``x`` itself where none was.
    """
    search_steps = check_positive_int(search_steps, "search_steps")
    max_iter = check_positive_int(max_iter, "max_iter")
    initial_c = check_positive(initial_c, "initial_c")
    device = x.device
    n = len(x)
    c = torch.full((n,), initial_c, device=device, dtype=x.dtype)
    low = torch.zeros(n, device=device, dtype=x.dtype)          # largest c known to succeed
    high = torch.full((n,), torch.inf, device=device, dtype=x.dtype)  # smallest c known to fail
    best = x.clone()
    best_norm = torch.full((n,), torch.inf, device=device, dtype=x.dtype)
    for _ in range(search_steps):
        candidate = torch.cat([_lbfgs_minimise(model, x[i:i + 1], target[i:i + 1], c[i], max_iter)
                               for i in range(n)])
        success = attack_succeeded(model(candidate), target, targeted=True)
        norms = l2_norms(candidate - x)
        improved = success & (norms < best_norm)
        best = torch.where(per_example(improved, x), candidate, best)
        best_norm = torch.where(improved, norms, best_norm)
        low = torch.where(success, torch.maximum(low, c), low)
        high = torch.where(success, high, torch.minimum(high, c))
        # more weight on ‖r‖ after a success, less after a failure; bisect geometrically once bracketed
        c = torch.where(torch.isinf(high), c * 10, torch.where(low > 0, (low * high).sqrt(), c / 10))
    return best.detach()
