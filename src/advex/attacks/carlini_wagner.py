"""The Carlini–Wagner L2 attack (Carlini & Wagner 2017, "Towards evaluating the robustness of neural networks").

Like :mod:`.minimal`, it has no ε: it looks for the smallest L2 change that reaches its goal, and
the size of ``x_adv − x`` is the result.  Conventions as in :mod:`advex.attacks`.
"""
from __future__ import annotations

import torch
from torch import nn

from .core import attack, attack_succeeded, logit_margins, per_example
from ..validation import check_non_negative, check_positive, check_positive_int

__all__ = ["cw_l2"]


@attack(eps=False)
def cw_l2(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, targeted: bool = False, confidence: float = 0.0,
          initial_c: float = 1.0, search_steps: int = 5, steps: int = 100, lr: float = 0.01) -> torch.Tensor:
    """Carlini & Wagner's L2 attack (2017, §V.A): their objective f₆ (§IV.A) and change of variables (§IV.B).

    With x' = ½(tanh(w) + 1) (always inside [0, 1]ᵈ, so the box constraint disappears), minimise over w

        ‖x' − x‖₂² + c · f(x'),
        f(x') = max(max_{i≠t} Z(x')_i − Z(x')_t, −κ)   (targeted: ``y`` holds the targets t),
        f(x') = max(Z(x')_y − max_{i≠y} Z(x')_i, −κ)   (untargeted),

    where Z are the logits and κ = ``confidence``, by Adam (``steps`` steps of size ``lr``) from
    x' = x.  c is searched per example (``search_steps`` runs, from ``initial_c``): ×10 until a run
    succeeds, then bisection between the largest c that failed and the smallest that succeeded.
    Every iterate that succeeds (classified as t, resp. not as y, with logit margin ≥ κ) is a
    candidate; each example gets back its candidate with the smallest ‖x' − x‖₂, or ``x`` itself
    where there was none.
    """
    confidence = check_non_negative(confidence, "confidence")
    initial_c = check_positive(initial_c, "initial_c")
    search_steps = check_positive_int(search_steps, "search_steps")
    steps = check_positive_int(steps, "steps")
    lr = check_positive(lr, "lr")
    n = len(x)
    c = torch.full((n,), initial_c, device=x.device, dtype=x.dtype)
    low = torch.zeros_like(c)                        # largest c known to fail
    high = torch.full_like(c, torch.inf)             # smallest c known to succeed
    best, best_distance = x.clone(), torch.full_like(c, torch.inf)
    w_start = torch.atanh((2 * x - 1) * (1 - 1e-6))  # x = ½(tanh(w) + 1), pulled off ±1 so that w is finite
    with torch.enable_grad():
        for _ in range(search_steps):
            w = w_start.clone().requires_grad_(True)
            adam = torch.optim.Adam([w], lr=lr)
            found = torch.zeros(n, dtype=torch.bool, device=x.device)
            for _ in range(steps):
                x_new = (torch.tanh(w) + 1) / 2
                logits = model(x_new)
                distance = ((x_new - x) ** 2).flatten(1).sum(1)                         # ‖x' − x‖₂²
                # Z_t − max_{i≠t} Z_i (targeted), max_{i≠y} Z_i − Z_y (untargeted): ≥ κ means success
                margin = logit_margins(logits, y) * (1 if targeted else -1)
                f = -margin.clamp(max=confidence)                                       # max(−margin, −κ)
                adam.zero_grad()
                (distance + c * f).sum().backward()
                adam.step()
                with torch.no_grad():
                    success = attack_succeeded(logits, y, targeted) & (margin >= confidence)
                    improved = success & (distance < best_distance)
                    best = torch.where(per_example(improved, x), x_new, best)
                    best_distance = torch.where(improved, distance, best_distance)
                    found |= success
            # binary search on c, per example, without leaving the device
            high = torch.where(found, torch.minimum(high, c), high)
            low = torch.where(found, low, torch.maximum(low, c))
            c = torch.where(torch.isinf(high), c * 10, (low + high) / 2)
    return best.detach().clamp(0.0, 1.0)
