"""Square attack (Andriushchenko, Croce, Flammarion & Hein 2020; bib key andriushchenko2020square): a black-box
attack that needs only scores.

No gradient is ever computed, so a defence that breaks or hides gradients (gradient masking) does not
slow it down: if a model is robust to PGD but not to Square, its robustness was an artefact of its
gradients.  It is a random search over the corners of the L∞ ball: start from vertical stripes of ±ε,
then repeatedly paint a random square of the perturbation with a random ±ε per channel, and keep the
change when it lowers the margin of the true class.  The squares shrink as the search goes on.

Queries are what a black-box attack pays for, so they are counted per image: the clean image costs one
query (an image already misclassified is not attacked further), the initialisation one more, every
iteration one per image still attacked; fooled images leave the batch, and the images left are queried
together, one forward pass per iteration.
"""
from __future__ import annotations

import math
from numbers import Real

import torch
from torch import nn

from .core import attack_mode, attack_succeeded, logit_margins, per_example, returns_on_input_device
from ..device import device_of
from ..validation import check_eps, check_images, check_labels, check_norm, check_positive_int

__all__ = ["square_attack", "square_attack_with_stats", "square_fraction", "square_side"]

#: iterations, out of a budget of 10,000 queries, after which the square's share p of the image halves
#: (Andriushchenko et al. 2020, and ``p_selection`` in their code); other budgets are rescaled to it
P_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def square_fraction(p_init: float, iteration: int, queries: int) -> float:
    """p, the share of the image the square covers at ``iteration`` (0, 1, …) of a budget of ``queries``:
    ``p_init`` halved at every point of :data:`P_HALVINGS` passed, as in the authors' code."""
    scaled = int(iteration / queries * 10_000)
    return p_init / 2 ** sum(scaled > point for point in P_HALVINGS)


def square_side(p: float, h: int, w: int) -> int:
    """The side of a square covering a share p of an h × w image: round(√(p h w)), from 1 to min(h, w)."""
    return min(max(round(math.sqrt(p * h * w)), 1), min(h, w))


def _random_signs(shape, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """±1 uniformly (drawn on the CPU, so that a seed gives the same search on every device)."""
    return (2 * torch.randint(0, 2, shape, generator=generator) - 1).to(device=like.device, dtype=like.dtype)


def _another_colour(colour: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per image, a ±1 colour (N, C, 1, 1) drawn uniformly among those other than ``colour``: ``colour`` with a
    random non-empty set of channels flipped, the set drawn as the bits of an integer in [1, 2^C)."""
    n, c = colour.shape[:2]
    channels = torch.randint(1, 2 ** c, (n, 1), generator=generator) >> torch.arange(c) & 1
    return colour * (1 - 2 * channels).to(colour).view(n, c, 1, 1)


def _square_proposal(signs: torch.Tensor, side: int, generator: torch.Generator) -> torch.Tensor:
    """``signs`` (N, C, H, W of ±1) with a random side × side square of each image set to a random ±1 per channel
    (the L∞ sampling distribution, Andriushchenko et al. 2020, Algorithm 2).

    A colour the square already holds everywhere would change nothing and waste a query: those images get
    another colour (the authors' code draws again until it differs).  ±ε always differ after clipping to
    [0, 1] (for ε > 0), so comparing signs is comparing images.
    """
    n, c, h, w = signs.shape
    top = torch.randint(0, h - side + 1, (n, 1), generator=generator).to(signs.device)
    left = torch.randint(0, w - side + 1, (n, 1), generator=generator).to(signs.device)
    rows, cols = torch.arange(h, device=signs.device), torch.arange(w, device=signs.device)
    in_rows, in_cols = (rows >= top) & (rows < top + side), (cols >= left) & (cols < left + side)
    inside = in_rows[:, None, :, None] & in_cols[:, None, None, :]                   # (N, 1, H, W)
    colour = _random_signs((n, c, 1, 1), generator, signs)
    unchanged = ((signs == colour) | ~inside).flatten(1).all(1)
    colour = torch.where(per_example(unchanged, colour), _another_colour(colour, generator), colour)
    return torch.where(inside, colour, signs)


def _search(model, x, y, eps, queries, p_init, generator, x_adv, success, used) -> None:
    """Random search (Andriushchenko et al. 2020, Algorithm 1) on the images not fooled yet, writing their
    results into ``x_adv``, ``success`` and ``used`` (queries per image).  Query 1 was the clean image."""
    _, c, h, w = x.shape
    rows = (~success).nonzero().flatten()
    # vertical stripes: one ±ε per channel and column (the initialisation of the L∞ attack), queried first
    signs = _random_signs((len(rows), c, 1, w), generator, x).expand(-1, -1, h, -1)
    candidate = signs
    margin = torch.full((len(rows),), torch.inf, device=x.device, dtype=x.dtype)
    for iteration in range(queries - 1):
        if iteration > 0:
            side = square_side(square_fraction(p_init, iteration - 1, queries), h, w)
            candidate = _square_proposal(signs, side, generator)
        logits = model((x[rows] + eps * candidate).clamp(0.0, 1.0))
        used[rows] += 1
        new_margin, fooled = logit_margins(logits, y[rows]), attack_succeeded(logits, y[rows], False)
        accept = (new_margin < margin) | fooled   # the margin logit_y − max other logit is minimised
        signs = torch.where(per_example(accept, signs), candidate, signs)
        margin = torch.where(accept, new_margin, margin)
        # fooled images leave the batch with their adversarial example
        done, left = fooled.nonzero().flatten(), (~fooled).nonzero().flatten()
        x_adv[rows[done]] = (x[rows[done]] + eps * signs[done]).clamp(0.0, 1.0)
        success[rows[done]] = True
        rows, signs, margin = rows[left], signs[left], margin[left]
        if len(rows) == 0:
            return
    x_adv[rows] = (x[rows] + eps * signs).clamp(0.0, 1.0)


def _check_square_arguments(x, norm, queries, p_init) -> int:
    if check_norm(norm) != "inf":
        raise ValueError(f"norm must be 'inf': only the L∞ square attack is implemented, got {norm!r}")
    queries = check_positive_int(queries, "queries")
    if isinstance(p_init, bool) or not isinstance(p_init, Real) or not 0 < p_init <= 1:
        raise ValueError(f"p_init must be a number in (0, 1], got {p_init!r}")
    if x.dim() != 4 or x.shape[1] > 62:   # the colours of a square are drawn as the bits of an int64
        raise ValueError(f"x must be a batch of images (N, C, H, W) with at most 62 channels, "
                         f"got shape {tuple(x.shape)}")
    return queries


@returns_on_input_device
def square_attack_with_stats(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, norm="inf",
                             queries: int = 5000, p_init: float = 0.8, seed: int = 0
                             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`square_attack`, also returning per-example success (bool) and the queries each image used (int64).

    An image uses at most ``queries`` forward passes, the clean one included; an image misclassified when
    clean uses exactly one and comes back unchanged.
    """
    # attack_inputs would spend a forward pass on counting the classes: here the labels are checked against
    # the logits of the clean query instead, so that validation costs the black-box attacker nothing
    eps = check_eps(eps)
    check_images(x, "x")
    queries = _check_square_arguments(x, norm, queries, p_init)
    x, generator = x.detach().to(device_of(model)), torch.Generator().manual_seed(seed)
    with attack_mode(model), torch.no_grad():
        logits = model(x)                                         # query 1: the clean image
        y = check_labels(y, logits.shape[1], batch_size=len(x)).to(x.device)
        success = attack_succeeded(logits, y, False)
        used = torch.ones(len(x), dtype=torch.int64, device=x.device)
        x_adv = x.clone()
        if eps > 0 and queries > 1 and not success.all():      # with ε = 0 there is nothing to search
            _search(model, x, y, eps, queries, float(p_init), generator, x_adv, success, used)
    return x_adv, success, used


@returns_on_input_device
def square_attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, norm="inf",
                  queries: int = 5000, p_init: float = 0.8, seed: int = 0) -> torch.Tensor:
    """Square attack in the L∞ ball (Andriushchenko, Croce, Flammarion & Hein 2020, Algorithm 1 with the
    sampling distribution of Algorithm 2), untargeted and gradient-free.

    x̂ starts at clip(x + ε·stripes), vertical stripes of random ±1 per channel and column; each iteration
    proposes x̂ with a random square of side round(√(p h w)) set to a random ±ε per channel, and keeps it when
    the margin loss L(x̂) = z_y(x̂) − max_{k≠y} z_k(x̂) decreases (or the image is fooled).  p starts at
    ``p_init`` and halves on the schedule of :func:`square_fraction`.  Fooled images stop; each image uses
    at most ``queries`` forward passes, the clean one included.  Random numbers come from a generator seeded
    by ``seed``, drawn on the CPU.
    """
    x_adv, _, _ = square_attack_with_stats(model, x, y, eps, norm=norm, queries=queries, p_init=p_init, seed=seed)
    return x_adv
