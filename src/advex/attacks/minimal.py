"""Minimal-perturbation attacks: they look for the smallest L2 change that flips the prediction.

* :func:`lbfgs_attack`: Szegedy et al. (2014, §4.1), box-constrained L-BFGS on c‖r‖² + loss_f(x + r, l);
* :func:`deepfool`: Moosavi-Dezfooli, Fawzi & Frossard (2016, Algorithm 2), the multi-class linearisation.

Both return adversarial images in [0, 1] with no ε: the size of ``x_adv − x`` is the result.
Inputs are never modified, the model's mode is restored and no gradient is left on its parameters.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize
from torch import nn
from torch.nn import functional as F

from .core import attack_inputs, attack_mode, attack_succeeded, l2_norms, per_example
from ..validation import check_eps, check_positive_int


def _class_gradients(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits f(x) (N, K) and their input gradients ∇ₓ f_k(x) (N, K, ...), one backward pass per class."""
    x = x.detach().requires_grad_(True)
    logits = model(x)
    grads = [torch.autograd.grad(logits[:, k].sum(), x, retain_graph=k + 1 < logits.shape[1])[0]
             for k in range(logits.shape[1])]
    return logits.detach(), torch.stack(grads, dim=1)


def deepfool(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, steps: int = 50, overshoot: float = 0.02) -> torch.Tensor:
    """DeepFool (Moosavi-Dezfooli et al. 2016, Algorithm 2), untargeted, L2.

    At xᵢ, with f'_k = f_k − f_y and w'_k = ∇f_k − ∇f_y, step to the nearest linearised boundary:
    l = argmin_{k≠y} |f'_k| / ‖w'_k‖₂,  rᵢ = (|f'_l| / ‖w'_l‖₂²) · w'_l,  and
    x_adv = clip₍₀,₁₎(x + (1 + overshoot) Σ rᵢ), until the label changes or ``steps`` run out.
    """
    x, y, _ = attack_inputs(model, x, y)
    steps = check_positive_int(steps, "steps")
    overshoot = check_eps(overshoot, "overshoot")
    device = x.device
    total = torch.zeros_like(x)
    x_adv = x.clone()
    active = torch.arange(len(x), device=device)
    with attack_mode(model):
        for _ in range(steps):
            logits, grads = _class_gradients(model, x_adv[active])
            still_correct = ~attack_succeeded(logits, y[active], targeted=False)
            active, logits, grads = active[still_correct], logits[still_correct], grads[still_correct]
            if len(active) == 0:
                break
            rows = torch.arange(len(active), device=device)
            f_diff = logits - logits[rows, y[active]].unsqueeze(1)                      # f'_k
            w_diff = grads - grads[rows, y[active]].unsqueeze(1)                        # w'_k
            w_norm = w_diff.flatten(2).norm(dim=2).clamp_min(1e-8)                      # ‖w'_k‖₂
            distance = f_diff.abs() / w_norm
            distance[rows, y[active]] = torch.inf                                        # k ≠ y
            nearest = distance.argmin(1)
            w_l = w_diff[rows, nearest]
            r = per_example((f_diff[rows, nearest].abs() + 1e-4) / w_norm[rows, nearest] ** 2, w_l) * w_l
            total[active] += r
            x_adv[active] = (x[active] + (1 + overshoot) * total[active]).clamp(0.0, 1.0)
    return x_adv.detach()


def _lbfgs_minimise(model, x, target, c, max_iter) -> torch.Tensor:
    """argmin over x' ∈ [0,1]ᵈ of Σᵢ cᵢ‖x'ᵢ − xᵢ‖² + CE(f(x'ᵢ), tᵢ) (separable, so one L-BFGS-B run solves all)."""
    shape, dtype, device = x.shape, x.dtype, x.device
    weights = per_example(c, x)

    def objective(flat: np.ndarray):
        x_new = torch.from_numpy(flat).to(device=device, dtype=dtype).view(shape).requires_grad_(True)
        value = (weights * (x_new - x) ** 2).sum() + F.cross_entropy(model(x_new), target, reduction="sum")
        (grad,) = torch.autograd.grad(value, x_new)
        return value.item(), grad.detach().cpu().double().numpy().ravel()

    start = x.detach().cpu().double().numpy().ravel()
    result = minimize(objective, start, jac=True, method="L-BFGS-B", bounds=[(0.0, 1.0)] * start.size,
                      options={"maxiter": max_iter})
    return torch.from_numpy(result.x).to(device=device, dtype=dtype).view(shape)


def lbfgs_attack(model: nn.Module, x: torch.Tensor, target: torch.Tensor, *, search_steps: int = 8,
                 initial_c: float = 1.0, max_iter: int = 100) -> torch.Tensor:
    """Box-constrained L-BFGS (Szegedy et al. 2014, §4.1), targeted.

    minimise c‖r‖₂² + loss_f(x + r, l)  subject to  x + r ∈ [0, 1]ᵈ,
    with a search over c per example: the larger c, the smaller r; we keep the largest c
    (found by ×10 / geometric bisection, ``search_steps`` tries) whose minimiser is classified as l,
    and return that minimiser.  Examples never classified as l come back unchanged.
    """
    x, target, _ = attack_inputs(model, x, target)
    search_steps = check_positive_int(search_steps, "search_steps")
    max_iter = check_positive_int(max_iter, "max_iter")
    if not initial_c > 0:
        raise ValueError(f"initial_c must be > 0, got {initial_c!r}")
    device = x.device
    n = len(x)
    c = torch.full((n,), float(initial_c), device=device, dtype=x.dtype)
    low = torch.zeros(n, device=device, dtype=x.dtype)          # largest c known to succeed
    high = torch.full((n,), torch.inf, device=device, dtype=x.dtype)  # smallest c known to fail
    best = x.clone()
    best_norm = torch.full((n,), torch.inf, device=device, dtype=x.dtype)
    with attack_mode(model):
        for _ in range(search_steps):
            candidate = _lbfgs_minimise(model, x, target, c, max_iter)
            with torch.no_grad():
                success = attack_succeeded(model(candidate), target, targeted=True)
            norms = l2_norms(candidate - x)
            improved = success & (norms < best_norm)
            best[improved], best_norm[improved] = candidate[improved], norms[improved]
            low = torch.where(success, torch.maximum(low, c), low)
            high = torch.where(success, high, torch.minimum(high, c))
            # more weight on ‖r‖ after a success, less after a failure; bisect geometrically once bracketed
            c = torch.where(torch.isinf(high), c * 10, torch.where(low > 0, (low * high).sqrt(), c / 10))
    return best.detach()
