"""Gradient estimation from scores: NES (Ilyas, Engstrom, Athalye & Lin 2018; bib key ilyas2018blackbox).

An attacker who sees the model's scores (logits or probabilities) but not its gradient can estimate the
gradient from finite differences along random directions.  Natural evolution strategies (NES) with
antithetic Gaussian samples give, for a loss L and n samples in n/2 pairs ±u_i (their Algorithm 1),

    ĝ = 1/(σ n) Σ_{i=1}^{n/2} [L(x + σu_i) − L(x − σu_i)] u_i  ≈  ∇ₓ L(x)   (u_i ~ N(0, I)),

and projected gradient ascent uses ĝ where PGD would use the true gradient.  Nothing here calls autograd,
so the attack works on :class:`~advex.attacks.queries.ScoresOnly` (detached probabilities) as on logits.

Queries are counted per image, as in :mod:`.square`: the clean image is query 1 (an image already
misclassified stops there); every iteration costs ``samples`` queries for the estimate and one for the new
iterate, to see whether it fools the model.  An image that is fooled stops; an image that cannot pay for
another whole iteration stops.  So an image uses 1 + k (samples + 1) ≤ ``queries`` queries after k
iterations.  All samples of all images still attacked are one forward batch per iteration.
"""
from __future__ import annotations

from numbers import Integral

import torch
from torch import nn

from .core import attack, attack_succeeded, clean_query, logit_margins, project, steepest_ascent
from ..validation import check_norm, check_positive, check_positive_int

__all__ = ["margin_loss", "nes_attack", "nes_attack_with_stats", "nes_gradient"]


def margin_loss(outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """L = max_{k≠y} s_k − s_y on the model's outputs s as given (logits or probabilities): > 0 when fooled."""
    return -logit_margins(outputs, y)


def nes_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, samples: int, sigma: float,
                 generator: torch.Generator) -> torch.Tensor:
    """ĝ = 1/(σ n) Σ_{i ≤ n/2} [L(x + σu_i) − L(x − σu_i)] u_i for every image of ``x`` (Ilyas et al. 2018,
    Algorithm 1, antithetic), L the :func:`margin_loss`, n = ``samples``: one forward pass of n points per image.

    The points are clipped to the box (a black box takes images), so ĝ estimates the gradient of L∘clip;
    its component out of the box at a face is lost, which costs nothing, as every iterate is clipped too.
    The u_i are drawn on the CPU from ``generator``, so a seed gives the same estimate on every device.  The
    model's mode is left alone (call it inside :func:`.core.attack_mode` and ``torch.no_grad()``).
    """
    n, pairs = len(x), samples // 2
    u = torch.randn((n, pairs, *x.shape[1:]), generator=generator).to(x)
    points = torch.cat([x[:, None] + sigma * u, x[:, None] - sigma * u], 1).clamp(0.0, 1.0)   # (n, samples, ...)
    loss = margin_loss(model(points.flatten(0, 1)), y.repeat_interleave(samples)).view(n, samples)
    difference = loss[:, :pairs] - loss[:, pairs:]                                              # (n, n/2)
    return (difference.view(n, pairs, *[1] * (x.dim() - 1)) * u).sum(1) / (sigma * samples)


def _check_nes_arguments(x, norm, queries, samples, sigma, step_size, eps):
    norm = check_norm(norm)
    queries = check_positive_int(queries, "queries")
    if isinstance(samples, bool) or not isinstance(samples, Integral) or samples < 2 or samples % 2:
        raise ValueError(f"samples must be an even integer >= 2 (antithetic pairs), got {samples!r}")
    sigma = check_positive(sigma, "sigma")
    step_size = eps / 5 if step_size is None else check_positive(step_size, "step_size")
    return norm, queries, int(samples), sigma, float(step_size)


@attack(labels_from="query")
def nes_attack_with_stats(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, norm="inf",
                          queries: int = 1000, samples: int = 50, sigma: float = 0.001,
                          step_size: float | None = None, seed: int = 0
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`nes_attack`, also returning per-example success (bool) and the queries each image used (int64).

    An image uses at most ``queries`` forward passes: 1 for the clean image, then ``samples`` + 1 per
    iteration (the estimate, then the new iterate), and only while a whole iteration fits in the budget.
    An image misclassified when clean uses exactly one and comes back unchanged; a fooled image stops.
    """
    norm, queries, samples, sigma, step_size = _check_nes_arguments(x, norm, queries, samples, sigma, step_size, eps)
    generator = torch.Generator().manual_seed(seed)
    _, y, success, used = clean_query(model, x, y)              # query 1: the clean image
    x_adv = x.clone()
    rows = (~success).nonzero().flatten() if eps > 0 else success.nonzero().flatten()[:0]
    # the images still attacked have all used the same queries: 1 + k (samples + 1) after k iterations
    for _ in range((queries - 1) // (samples + 1)):
        if len(rows) == 0:
            break
        g = nes_gradient(model, x_adv[rows], y[rows], samples, sigma, generator)
        x_adv[rows] = project(x_adv[rows] + step_size * steepest_ascent(g, norm), x[rows], eps, norm)
        fooled = attack_succeeded(model(x_adv[rows]), y[rows], False)   # query the new iterate
        used[rows] += samples + 1
        success[rows] = fooled
        rows = rows[~fooled]
    return x_adv, success, used


@attack(labels_from="query")
def nes_attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, norm="inf",
               queries: int = 1000, samples: int = 50, sigma: float = 0.001, step_size: float | None = None,
               seed: int = 0) -> torch.Tensor:
    """Untargeted score-based attack with NES gradient estimates (Ilyas, Engstrom, Athalye & Lin 2018), in the
    L∞ or L2 ε-ball: projected gradient ascent on the margin loss L = max_{k≠y} s_k − s_y of the model's
    outputs s, with the gradient replaced by the antithetic NES estimate ĝ of :func:`nes_gradient`,

        x̂ ← Π_{B_ε(x) ∩ [0,1]^d}(x̂ + α sign(ĝ))     (L∞)
        x̂ ← Π_{B_ε(x) ∩ [0,1]^d}(x̂ + α ĝ/‖ĝ‖₂)      (L2),

    starting at x̂ = x.  α = ``step_size`` defaults to ε/5, the ratio of Ilyas et al.'s ImageNet setting
    (η = 0.01 at ε = 0.05), as is σ = 0.001 and n = ``samples`` = 50.  The outputs are used as given
    (logits, or the probabilities of :class:`~advex.attacks.queries.ScoresOnly`).  No momentum and no
    step-size schedule: the plain update above.  An image stops when fooled; each uses at most ``queries`` forward
    passes (:func:`nes_attack_with_stats` says how many).  Random numbers come from a CPU generator seeded
    by ``seed``, so a seed gives the same search on every device.
    """
    x_adv, _, _ = nes_attack_with_stats.inner(model, x, y, eps, norm=norm, queries=queries, samples=samples, sigma=sigma,
                                        step_size=step_size, seed=seed)
    return x_adv
