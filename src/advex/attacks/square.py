"""Square attack (Andriushchenko, Croce, Flammarion & Hein 2020; bib key andriushchenko2020square): a black-box
attack that needs only scores, in the L∞ or the L2 ball.

No gradient is ever computed, so a defence that breaks or hides gradients (gradient masking) does not
slow it down: if a model is robust to PGD but not to Square, its robustness was an artefact of its
gradients.  It is a random search (their Algorithm 1) that changes one small window of the perturbation at
a time and keeps the change when it lowers the margin of the true class; the windows shrink as the search
goes on.

* L∞ (their Algorithm 2): a search over the corners of the ball.  Start from vertical stripes of ±ε, then
  repeatedly paint a random square of the perturbation with a random ±ε per channel.
* L2 (their Algorithm 3): corners of the L2 ball spread ε over few pixels, so the perturbation is built from
  smooth bumps instead.  A window holds η, two "pseudo-Gaussian" halves of opposite sign (concentric squares
  whose values fall off like 1/(k+1)² summed from the outside in).  Start from a 5 × 5 grid of such windows
  with random signs, scaled to ‖δ‖₂ = ε; then repeatedly pick two windows W₁ and W₂, empty W₂ and put its
  mass into W₁ as ±η plus W₁'s old content, so that ‖δ‖₂ stays ε: the search moves mass around the image
  rather than adding it.

Queries are what a black-box attack pays for, so they are counted per image: the clean image costs one
query (an image already misclassified is not attacked further), the initialisation one more, every
iteration one per image still attacked; fooled images leave the batch, and the images left are queried
together, one forward pass per iteration.
"""
from __future__ import annotations

import functools
import math
from numbers import Real

import torch
from torch import nn

from .core import (attack, attack_succeeded, clean_query, l2_norms, logit_margins, per_example,
                   )
from ..validation import check_norm, check_positive_int

__all__ = ["square_attack", "square_attack_with_stats", "square_fraction", "square_side"]

#: iterations, out of a budget of 10,000 queries, after which the square's share p of the image halves
#: (Andriushchenko et al. 2020, and ``p_selection`` in their code); other budgets are rescaled to it
P_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)

#: the first share p of the image a square covers, per norm, when ``p_init`` is None: 0.8 in the L∞ ball (this
#: package's default since the L∞ attack came), 0.1 in the L2 ball (the paper's value for the L2 attack)
P_INIT = {"inf": 0.8, "2": 0.1}

#: the L2 attack starts from a GRID × GRID tiling of windows (Andriushchenko et al. 2020, §3.2)
GRID = 5


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


def _square_proposal(signs: torch.Tensor, side: int, generator: torch.Generator) -> torch.Tensor:
    """``signs`` (N, C, H, W of ±1) with a random side × side square of each image set to a random ±1 per channel
    (the L∞ sampling distribution, Andriushchenko et al. 2020, Algorithm 2).

    A colour the square already holds everywhere would change nothing and waste a query: those images get
    another colour (the authors' code draws again until it differs).  ±ε always differ after clipping to
    [0, 1] (for ε > 0), so comparing signs is comparing images.
    """
    n, c, h, w = signs.shape
    # every random number of the proposal drawn on the CPU (the same search on every device), in this order
    top = torch.randint(0, h - side + 1, (n, 1), generator=generator)
    left = torch.randint(0, w - side + 1, (n, 1), generator=generator)
    colour = 2 * torch.randint(0, 2, (n, c), generator=generator) - 1
    # the other colour, for a square that already holds this one: a random non-empty set of its channels
    # flipped (the set drawn as the bits of an integer in [1, 2^C)), so every other colour is equally likely
    flips = torch.randint(1, 2 ** c, (n, 1), generator=generator) >> torch.arange(c) & 1
    other = colour * (1 - 2 * flips)
    # ... and sent to the device in one copy: on a GPU each small operation costs a launch, and the proposal's
    # launches, not its arithmetic, set the speed of the search
    corners, colours = torch.cat([top, left, colour, other], 1).to(signs.device).split([2, 2 * c], 1)
    inside = (_window_lines(side, h, signs.device)[corners[:, 0]][:, None, :, None]
              & _window_lines(side, w, signs.device)[corners[:, 1]][:, None, None, :])     # (N, 1, H, W)
    colour, other = colours.to(signs.dtype).view(n, 2 * c, 1, 1).split(c, 1)
    changes = ((signs != colour) & inside).flatten(1).any(1)
    return torch.where(inside, torch.where(per_example(changes, colour), colour, other), signs)


@functools.lru_cache(maxsize=64)
def _window_lines(side: int, size: int, device: torch.device) -> torch.Tensor:
    """Row k (k = 0 … size − side) marks the lines k … k + side − 1 of an image ``size`` lines long: the rows (or
    columns) a square of this side with its corner at line k covers, looked up instead of computed."""
    lines = torch.arange(size)
    first = torch.arange(size - side + 1)[:, None]
    return ((lines >= first) & (lines < first + side)).to(device)


def _concentric_squares(rows: int, cols: int) -> torch.Tensor:
    """M(rows, cols), float64, of unit L2 norm: concentric squares about the pixel (⌊rows/2⌋, ⌊cols/2⌋).

    Square k (side 2k + 1, k = 0 … K − 1, K = max(⌊rows/2⌋, ⌊cols/2⌋) + 1, cut to the rectangle) adds 1/(k+1)²
    to the pixels it covers, so the pixel at Chebyshev distance d from the centre holds Σ_{k=d}^{K−1} 1/(k+1)²:
    a bump that falls off like a Gaussian's and has no width to tune.  ``rows`` = 0 gives an empty (0, cols).
    """
    distance = torch.maximum((torch.arange(rows) - rows // 2).abs()[:, None],
                             (torch.arange(cols) - cols // 2).abs()[None, :])
    k = torch.arange(max(rows // 2, cols // 2) + 1, dtype=torch.float64)
    from_outside_in = (1 / (k + 1) ** 2).flip(0).cumsum(0).flip(0)    # [d] = Σ_{k ≥ d} 1/(k+1)²
    values = from_outside_in[distance]
    return values / values.norm()


def _window_pattern(side: int) -> torch.Tensor:
    """η of a side × side window (Andriushchenko et al. 2020, §3.2), float64 of unit L2 norm: the top ⌊side/2⌋
    rows a bump M of sign +, the other rows a bump of sign −, the two halves of equal energy (as the authors'
    ``meta_pseudo_gaussian_pert``)."""
    half = side // 2
    eta = torch.cat([_concentric_squares(half, side), -_concentric_squares(side - half, side)])
    return eta / eta.norm()


def _random_patterns(n: int, c: int, side: int, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """n windows (N, C, side, side) of ±η: η or its transpose (a coin per window, as the authors' code turns η
    with probability 1/2) times a random sign per window and channel."""
    eta = _window_pattern(side)
    turned = torch.randint(0, 2, (n, 1, 1), generator=generator).bool()
    patterns = torch.where(turned, eta.T, eta).to(device=like.device, dtype=like.dtype)
    return patterns[:, None] * _random_signs((n, c, 1, 1), generator, like)


def _window_mask(top: torch.Tensor, left: torch.Tensor, side: int, h: int, w: int) -> torch.Tensor:
    """Per image, the pixels of the side × side window with corner (top, left) (N,), as a mask (N, 1, H, W);
    the part of a window beyond the image's edges is cut off."""
    rows = torch.arange(h, device=top.device) - top[:, None]            # (N, H): row within the window
    cols = torch.arange(w, device=top.device) - left[:, None]
    return (((rows >= 0) & (rows < side))[:, None, :, None]
            & ((cols >= 0) & (cols < side))[:, None, None, :])


def _paste(patterns: torch.Tensor, top: torch.Tensor, left: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Windows (N, C, s, s) put with their corners at (top, left) (N,) into zero images (N, C, H, W), cut at the
    image's edges."""
    n, c, side, _ = patterns.shape
    rows = (torch.arange(h, device=top.device) - top[:, None]).clamp(0, side - 1)
    cols = (torch.arange(w, device=top.device) - left[:, None]).clamp(0, side - 1)
    picked = patterns.gather(2, rows[:, None, :, None].expand(n, c, h, side))
    picked = picked.gather(3, cols[:, None, None, :].expand(n, c, h, w))
    return torch.where(_window_mask(top, left, side, h, w), picked, 0.0)


def _channel_norms(t: torch.Tensor) -> torch.Tensor:
    """‖t_{n,i}‖₂ of every image n and channel i, shaped (N, C, 1, 1)."""
    return t.flatten(2).norm(dim=2)[:, :, None, None]


def _move_mass(delta: torch.Tensor, eps: float, first: torch.Tensor, second: torch.Tensor,
               pattern: torch.Tensor) -> torch.Tensor:
    """δ (N, C, H, W) with window W₂ = ``second`` emptied and its mass put into W₁ = ``first`` with the budget left
    unused (Andriushchenko et al. 2020, Algorithm 3).  Per image and channel i:

        ε_i² = ‖δ_{W₁∪W₂, i}‖² + max(ε² − ‖δ‖², 0) / c,
        δ_{W₁, i} ← ε_i u_i / ‖u_i‖  with  u_i = η_i + δ_{W₁, i} / ‖δ_{W₁, i}‖,    δ_{W₂∖W₁, i} ← 0,

    where η_i = ``pattern`` (±η in W₁ per channel, unit norm, zero elsewhere).  The rest of δ is kept, so
    ‖δ_new‖² = ‖δ‖² + max(ε² − ‖δ‖², 0), which is ε² whenever ‖δ‖ ≤ ε, whatever the masks (N, 1, H, W):
    overlapping, equal or cut at the image's edges.
    """
    windows = first | second
    # what clipping to the box took from ‖δ‖ is spent again, shared equally by the channels
    unused = (eps ** 2 - l2_norms(delta) ** 2).clamp(min=0)
    available = (_channel_norms(delta * windows) ** 2 + per_example(unused, delta) / delta.shape[1]).sqrt()
    old = delta * first
    old_norms = _channel_norms(old)
    u = pattern + old / torch.where(old_norms > 0, old_norms, 1.0)
    # u vanishes where W₁ held exactly −η_i (up to rounding): there the window turns over to η_i
    u_norms = _channel_norms(u)
    cancelled = u_norms <= torch.finfo(u.dtype).eps ** 0.5
    u = torch.where(cancelled, pattern, u) / torch.where(cancelled, _channel_norms(pattern), u_norms)
    return torch.where(windows, 0.0, delta) + available * u


def _l2_window_side(p: float, h: int, w: int) -> int:
    """The side of the L2 attack's windows: :func:`square_side`, but odd and at least 3 as in the authors' code
    (so η has a centre pixel and two halves), and no larger than the image (then the largest odd side that fits)."""
    largest = min(h, w) - 1 + min(h, w) % 2
    return min(max(square_side(p, h, w), 3) | 1, largest)   # | 1: an even side becomes the odd one above


def _l2_proposal(delta: torch.Tensor, eps: float, side: int, generator: torch.Generator) -> torch.Tensor:
    """A new perturbation from the L2 sampling distribution (Andriushchenko et al. 2020, Algorithm 3): per image,
    two windows W₁, W₂ of side ``side`` placed uniformly inside the image and ±η (random sign per channel) in W₁,
    then :func:`_move_mass`.  For ‖δ‖ ≤ ε the result has ‖·‖₂ = ε."""
    n, c, h, w = delta.shape
    top1, left1, top2, left2 = (torch.randint(0, room + 1, (n,), generator=generator).to(delta.device)
                                for room in (h - side, w - side, h - side, w - side))
    pattern = _paste(_random_patterns(n, c, side, generator, delta), top1, left1, h, w)
    moved = _move_mass(delta, eps, _window_mask(top1, left1, side, h, w), _window_mask(top2, left2, side, h, w),
                       pattern)
    # ‖moved‖ is ε but for rounding: scale what rounding added back into the ball (a zero δ, from an ε whose
    # square underflows, stays zero)
    norms = l2_norms(moved)
    return moved * per_example(torch.where(norms > eps, eps / norms, 1.0), moved)


def _l2_start(x: torch.Tensor, eps: float, generator: torch.Generator) -> torch.Tensor:
    """The first x̂ of the L2 attack (Andriushchenko et al. 2020, §3.2): a centred GRID × GRID tiling of windows ±η
    of side ⌊min(h, w) / GRID⌋, scaled to ‖δ‖₂ = ε and clipped to the box."""
    n, c, h, w = x.shape
    side = max(min(h, w) // GRID, 1)
    down, across = min(h // side, GRID), min(w // side, GRID)   # fewer tiles only on an image under GRID pixels
    tiles = _random_patterns(n * down * across, c, side, generator, x).view(n, down, across, c, side, side)
    grid = tiles.permute(0, 3, 1, 4, 2, 5).reshape(n, c, down * side, across * side)
    top, left = (h - down * side) // 2, (w - across * side) // 2
    delta = nn.functional.pad(grid, (left, w - left - across * side, top, h - top - down * side))
    return (x + eps * delta / per_example(l2_norms(delta), delta)).clamp(0.0, 1.0)


# The search keeps one state per image: ``start(x)`` the first, ``propose(state, x, iteration)`` a candidate at
# iteration 0, 1, … of the proposals, ``image(state, x)`` the image the state stands for.

def _linf_search(eps: float, p_init: float, queries: int, generator: torch.Generator):
    """The L∞ attack's state: the signs (N, C, H, W) of the perturbation ε · signs."""
    def start(x):
        # vertical stripes: one ±ε per channel and column (the initialisation of the L∞ attack)
        n, c, h, w = x.shape
        return _random_signs((n, c, 1, w), generator, x).expand(-1, -1, h, -1)

    def propose(signs, x, iteration):
        return _square_proposal(signs, square_side(square_fraction(p_init, iteration, queries), *x.shape[2:]),
                                generator)

    def image(signs, x):
        return torch.add(x, signs, alpha=eps).clamp_(0.0, 1.0)
    return start, propose, image


def _l2_search(eps: float, p_init: float, queries: int, generator: torch.Generator):
    """The L2 attack's state: the image x̂ itself.  Algorithm 3 changes δ = x̂ − x, the perturbation after clipping
    to the box, so that what clipping took is known and spent again (see :func:`_move_mass`)."""
    def start(x):
        return _l2_start(x, eps, generator)

    def propose(x_hat, x, iteration):
        side = _l2_window_side(square_fraction(p_init, iteration, queries), *x.shape[2:])
        return (x + _l2_proposal(x_hat - x, eps, side, generator)).clamp(0.0, 1.0)

    def image(x_hat, x):
        return x_hat
    return start, propose, image


def _search(model, x, y, queries, search, x_adv, success, used) -> None:
    """Random search (Andriushchenko et al. 2020, Algorithm 1) on the images not fooled yet, writing their
    results into ``x_adv``, ``success`` and ``used`` (queries per image).  Query 1 was the clean image;
    ``search`` is (start, propose, image) of :func:`_linf_search` or :func:`_l2_search`."""
    start, propose, image = search
    rows = (~success).nonzero().flatten()
    x_left, y_left = x[rows], y[rows]                  # the images still attacked
    state = candidate = start(x_left)                  # queried first
    margin = torch.full((len(rows),), torch.inf, device=x.device, dtype=x.dtype)
    for iteration in range(queries - 1):
        if iteration > 0:
            candidate = propose(state, x_left, iteration - 1)
        logits = model(image(candidate, x_left))
        new_margin, fooled = logit_margins(logits, y_left), attack_succeeded(logits, y_left, False)
        accept = (new_margin < margin) | fooled   # the margin logit_y − max other logit is minimised
        state = torch.where(per_example(accept, state), candidate, state)
        margin = torch.where(accept, new_margin, margin)
        # fooled images leave the batch with their adversarial example and the iteration + 1 queries this
        # search spent on them (one synchronisation with a GPU per iteration: the indices of the fooled,
        # usually none)
        done = fooled.nonzero().flatten()
        if len(done):
            x_adv[rows[done]] = image(state[done], x_left[done])
            success[rows[done]] = True
            used[rows[done]] += iteration + 1
            left = (~fooled).nonzero().flatten()
            rows, state, margin, x_left, y_left = rows[left], state[left], margin[left], x_left[left], y_left[left]
            if len(rows) == 0:
                return
    x_adv[rows] = image(state, x_left)
    used[rows] += queries - 1


def _check_square_arguments(x, norm, queries, p_init) -> tuple[str, int, float]:
    """norm ('inf' or '2'), queries and p_init (its default for the norm when None), checked."""
    norm = check_norm(norm)
    queries = check_positive_int(queries, "queries")
    p_init = P_INIT[norm] if p_init is None else p_init
    if isinstance(p_init, bool) or not isinstance(p_init, Real) or not 0 < p_init <= 1:
        raise ValueError(f"p_init must be a number in (0, 1] or None, got {p_init!r}")
    # the colours of an L∞ square are drawn as the bits of an int64
    channels = " with at most 62 channels" if norm == "inf" else ""
    if x.dim() != 4 or (norm == "inf" and x.shape[1] > 62):
        raise ValueError(f"x must be a batch of images (N, C, H, W){channels}, got shape {tuple(x.shape)}")
    return norm, queries, float(p_init)


@attack(labels_from="query")
def square_attack_with_stats(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, norm="inf",
                             queries: int = 5000, p_init: float | None = None, seed: int = 0
                             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`square_attack`, also returning per-example success (bool) and the queries each image used (int64).

    An image uses at most ``queries`` forward passes, the clean one included; an image misclassified when
    clean uses exactly one and comes back unchanged.
    """
    norm, queries, p_init = _check_square_arguments(x, norm, queries, p_init)
    generator = torch.Generator().manual_seed(seed)
    _, y, success, used = clean_query(model, x, y)               # query 1: the clean image
    x_adv = x.clone()
    if eps > 0 and queries > 1 and not success.all():          # with ε = 0 there is nothing to search
        search = (_linf_search if norm == "inf" else _l2_search)(eps, p_init, queries, generator)
        _search(model, x, y, queries, search, x_adv, success, used)
    return x_adv, success, used


@attack(labels_from="query")
def square_attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, norm="inf",
                  queries: int = 5000, p_init: float | None = None, seed: int = 0) -> torch.Tensor:
    """Square attack in the L∞ or L2 ball (Andriushchenko, Croce, Flammarion & Hein 2020, Algorithm 1 with the
    sampling distribution of Algorithm 2 or 3), untargeted and gradient-free.

    Each iteration proposes a change of x̂ and keeps it when the margin loss L(x̂) = z_y(x̂) − max_{k≠y} z_k(x̂)
    decreases (or the image is fooled).  The changes are windows covering a share p of the image, p starting at
    ``p_init`` and halving on the schedule of :func:`square_fraction`.

    * ``norm="inf"``: x̂ starts at clip(x + ε·stripes), vertical stripes of random ±1 per channel and column;
      a proposal sets a random square of side round(√(p h w)) to a random ±ε per channel.
    * ``norm="2"``: x̂ starts at clip(x + ε δ₀/‖δ₀‖₂), δ₀ a centred 5 × 5 grid of windows ±η, η two bumps of
      opposite sign (concentric squares).  A proposal draws two windows W₁, W₂ of side round(√(p h w)) (odd, at
      least 3) and, per channel i, with δ = x̂ − x and ρ_i = ±1 at random, sets δ_{W₂,i} to 0 and
      δ_{W₁,i} to ε_i (ρ_i η + δ_{W₁,i}/‖δ_{W₁,i}‖) / ‖ρ_i η + δ_{W₁,i}/‖δ_{W₁,i}‖‖, where
      ε_i² = ‖δ_{W₁∪W₂,i}‖² + (ε² − ‖δ‖²)/c: the mass of both windows, and what clipping to the box left
      unused, goes to W₁, so ‖δ‖₂ = ε again before x̂ = clip(x + δ).

    ``p_init=None`` (the default) means 0.8 for L∞ (as before L2 came) and 0.1 for L2 (the paper's value).  Fooled
    images stop; each image uses at most ``queries`` forward passes, the clean one included.  Random numbers
    come from a generator seeded by ``seed``, drawn on the CPU, so a seed gives the same search on every device.
    """
    x_adv, _, _ = square_attack_with_stats.inner(model, x, y, eps, norm=norm, queries=queries, p_init=p_init, seed=seed)
    return x_adv
