"""HopSkipJump (Chen, Jordan & Wainwright 2020; bib key chen2020hopskipjump): a decision-based attack, which
sees nothing but the model's predicted label.

A label changes only across the decision boundary, so the attack lives on it.  It starts from any
adversarial image (random noise for an untargeted attack, an image of the target class for a targeted one)
and binary-searches the segment to the clean image x for the boundary.  Then it repeats three moves, the L2
version of their algorithm:

* *estimate*: the sign of the decision at B_t random points around the boundary point x_t gives a direction
  v_t that leads away from the boundary, into the adversarial side (their eq. 16, Monte Carlo);
* *jump*: step from x_t along v_t by ξ_t = ‖x_t − x‖₂/√t, halved until the label is still adversarial (their
  geometric step-size search);
* *hop*: binary-search the segment from the new point back to x for the boundary: x_{t+1}.

Each round lands on the boundary closer to x, so it is a minimal-perturbation attack: there is no ε, and
‖x_adv − x‖₂ shrinks as the attacker spends more queries.

Queries are counted per image, as in :mod:`.square`: the clean image is query 1 (an image already fooled
stops there), then the starting point(s), the binary searches, the probes and the step-size search; every
one of them counts, and an image never uses more than ``queries``.  All images still attacked are asked
together, one forward pass per round (the B_t probes of all images are one batch).  The result is the
closest adversarial image the model confirmed, whatever round it came from.
"""
from __future__ import annotations

import math
from numbers import Integral

import torch
from torch import nn

from .core import attack, attack_succeeded, clean_query, l2_norms, per_example
from ..validation import check_eps, check_images, check_positive_int

__all__ = ["hop_skip_jump", "hop_skip_jump_with_stats"]


class _Oracle:
    """φ(x') = 1 when the model's label for x' is adversarial (≠ y, or = the target), and nothing else.

    It counts the queries of every image (``used``), refuses to exceed the budget, and keeps the closest
    adversarial point it has been asked about for every image (``best``, ``best_distance``).  Points are
    flat (M, d), shaped like the images (``shape``) for the model; ``rows`` says which image each point
    belongs to.
    """

    def __init__(self, model, x, y, targeted, budget, clean_logits, shape):
        self.model, self.x, self.y, self.targeted, self.budget, self.shape = model, x, y, targeted, budget, shape
        self.used = torch.ones(len(x), dtype=torch.int64, device=x.device)   # query 1 was the clean image
        fooled = attack_succeeded(clean_logits, y, targeted)
        self.best = x.clone()
        self.best_distance = torch.where(fooled, 0.0, torch.inf).to(x)

    def remaining(self, rows: torch.Tensor) -> torch.Tensor:
        return self.budget - self.used[rows]

    def __call__(self, rows: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        asked = torch.bincount(rows, minlength=len(self.x))
        assert (self.used + asked <= self.budget).all(), "query budget exceeded"
        logits = self.model(points.view(-1, *self.shape))
        self.used += asked
        adversarial = attack_succeeded(logits, self.y[rows], self.targeted)
        self._keep_closest(rows[adversarial], points[adversarial])
        return adversarial

    def _keep_closest(self, rows, points) -> None:
        if len(rows) == 0:
            return
        distance = l2_norms(points - self.x[rows])
        closest = torch.full_like(self.best_distance, torch.inf).scatter_reduce(0, rows, distance, "amin")
        # of the points at an image's smallest distance, the first (deterministic, unlike index_put with repeats)
        at_min = (distance == closest[rows]).nonzero().flatten()
        first = torch.full((len(self.x),), len(rows), device=rows.device).scatter_reduce(0, rows[at_min], at_min,
                                                                                           "amin")
        better = (closest < self.best_distance).nonzero().flatten()
        self.best[better] = points[first[better]]
        self.best_distance[better] = closest[better]


def _blend(x, p, alpha):
    """(1 − α) x + α p per example: the segment from x (α = 0) to p (α = 1), exactly p at α = 1."""
    alpha = per_example(alpha.to(x), x)
    return (1 - alpha) * x + alpha * p


def _boundary_search(ask, rows, x, p, theta):
    """The point of the segment [x, p] next to the decision boundary, on p's (adversarial) side: a binary search
    over the blend factor α until high − low ≤ θ (Chen et al. 2020, their Bin-Search, L2 version).  x is not
    adversarial and p is; if the budget runs out the search stops early, still on the adversarial side."""
    low = torch.zeros(len(rows), dtype=torch.float64, device=x.device)   # α is exact: halves of 1
    high = torch.ones_like(low)
    on_boundary = p.clone()
    while True:
        searching = ((high - low > theta) & (ask.remaining(rows) > 0)).nonzero().flatten()
        if len(searching) == 0:
            return on_boundary
        mid = (low[searching] + high[searching]) / 2
        point = _blend(x[searching], p[searching], mid)
        adversarial = ask(rows[searching], point)
        high[searching] = torch.where(adversarial, mid, high[searching])
        low[searching] = torch.where(adversarial, low[searching], mid)
        on_boundary[searching[adversarial]] = point[adversarial]


def _halvings(theta: float) -> int:
    """How many halvings take an interval of length 1 to length ≤ θ: the queries of a full binary search."""
    steps, width = 0, 1.0
    while width > theta:
        steps, width = steps + 1, width / 2
    return steps


def _gradient_direction(ask, rows, x_t, delta, probes, generator):
    """v_t = ĝ/‖ĝ‖₂ with the baseline-subtracted Monte Carlo estimate of Chen et al. (2020, eq. 16)

        ĝ = 1/(B − 1) Σ_b (φ(x_t + δ u_b) − φ̄) u_b,   φ = ±1,   φ̄ = (1/B) Σ_b φ(x_t + δ u_b),

    u_b uniform on the unit sphere, B = ``probes[i]`` for image i.  Probes are clipped to the box and u_b
    recomputed from the clipped point, as in the authors' code; when every probe gets the same answer
    φ̄ = ±1 and the estimate is ±(mean of the u_b), again as in their code."""
    n, d, most = len(rows), x_t.shape[1], int(probes.max())
    u = torch.randn((n, most, d), generator=generator).to(x_t)
    u = u / l2_norms(u.flatten(0, 1)).clamp_min(1e-12).view(n, most, 1)
    points = (x_t[:, None] + per_example(delta, x_t)[:, None] * u).clamp(0.0, 1.0)
    u = (points - x_t[:, None]) / per_example(delta, x_t)[:, None]
    asked = torch.arange(most, device=x_t.device) < probes[:, None]                 # (n, most)
    phi = torch.zeros((n, most), device=x_t.device, dtype=x_t.dtype)
    phi[asked] = 2 * ask(rows[:, None].expand(n, most)[asked], points[asked]).to(x_t) - 1
    u = u * asked[..., None]
    mean = phi.sum(1) / probes
    g = ((phi - per_example(mean, phi)) * asked)[..., None].mul(u).sum(1)
    g = torch.where(per_example(mean.abs() == 1, g), per_example(mean, g) * u.sum(1), g)
    return g / per_example(l2_norms(g).clamp_min(1e-12), g)


def _step_size_search(ask, rows, x_t, v, xi):
    """x_t + ξ v with ξ = ξ_t halved until the model's label there is still adversarial (Chen et al. 2020,
    geometric progression).  Returns the points and whether each was found before the budget ran out."""
    stepped, found = x_t.clone(), torch.zeros(len(rows), dtype=torch.bool, device=x_t.device)
    while True:
        searching = (~found & (ask.remaining(rows) > 0)).nonzero().flatten()
        if len(searching) == 0:
            return stepped, found
        point = (x_t[searching] + per_example(xi[searching], v) * v[searching]).clamp(0.0, 1.0)
        adversarial = ask(rows[searching], point)
        stepped[searching[adversarial]] = point[adversarial]
        found[searching[adversarial]] = True
        xi[searching] = torch.where(adversarial, xi[searching], xi[searching] / 2)


def _random_starts(ask, rows, d, tries, generator, dtype):
    """Untargeted start: uniform random images, up to ``tries`` per image, until the label is not y.
    Returns the adversarial noise images and which images got one."""
    starts = torch.zeros((len(rows), d), dtype=dtype, device=ask.x.device)
    found = torch.zeros(len(rows), dtype=torch.bool, device=ask.x.device)
    for _ in range(tries):
        searching = (~found & (ask.remaining(rows) > 0)).nonzero().flatten()
        if len(searching) == 0:
            break
        noise = torch.rand((len(searching), d), generator=generator).to(starts)
        adversarial = ask(rows[searching], noise)
        starts[searching[adversarial]] = noise[adversarial]
        found[searching[adversarial]] = True
    return starts, found


def _check_hsj_arguments(x, targeted, queries, init_x, init_tries, probes, eps):
    if not isinstance(targeted, bool):
        raise ValueError(f"targeted must be True or False, got {targeted!r}")
    if isinstance(queries, bool) or not isinstance(queries, Integral) or queries < 2:
        raise ValueError(f"queries must be an integer >= 2 (the clean image and a starting point), got {queries!r}")
    init_tries = check_positive_int(init_tries, "init_tries")
    if isinstance(probes, bool) or not isinstance(probes, Integral) or probes < 2:
        raise ValueError(f"probes must be an integer >= 2, got {probes!r}")
    if targeted and init_x is None:
        raise ValueError("init_x must be given for a targeted attack: images the model classifies as the targets")
    if init_x is not None:
        check_images(init_x, "init_x")
        if init_x.shape != x.shape:
            raise ValueError(f"init_x must have the shape of x, {tuple(x.shape)}, got {tuple(init_x.shape)}")
    return int(queries), init_tries, int(probes), None if eps is None else check_eps(eps)


@attack(eps=False, labels_from="query")
def hop_skip_jump_with_stats(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, targeted: bool = False,
                             queries: int = 1000, init_x: torch.Tensor | None = None, init_tries: int = 100,
                             probes: int = 100, eps: float | None = None, seed: int = 0
                             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`hop_skip_jump`, also returning per-example success (bool) and the queries each image used (int64).

    An image uses at most ``queries`` forward passes (``queries`` >= 2: the clean image and a starting
    point).  Query 1 is the clean image: an image already adversarial (misclassified; or classified as its
    target when ``targeted``) uses exactly one and comes back unchanged.  Then the starting point: up to
    ``init_tries`` uniform noise images (one query each), or one query to check ``init_x``.  An image with no
    adversarial start comes back unchanged, not a success.  Every later query is counted as it is made; when
    the budget runs out, mid-iteration or not, the image stops with the closest adversarial point found.
    An iteration starts only while the budget left pays for 2 probes, a step and a full binary search
    (3 + ⌈1.5 log₂ d⌉ queries, d the number of pixels); the probes B_t are cut to what is left after those.
    Success means the returned image is adversarial (within L2 distance ``eps`` of x, when ``eps`` is given).
    """
    queries, init_tries, probes, eps = _check_hsj_arguments(x, targeted, queries, init_x, init_tries, probes, eps)
    shape, d = x.shape[1:], x[0].numel()
    generator = torch.Generator().manual_seed(seed)
    theta = 1 / (d * math.sqrt(d))                     # θ = d^(−3/2), their binary-search tolerance for L2
    search_steps = _halvings(theta)                    # queries in one full binary search
    logits, y, _, _ = clean_query(model, x, y, targeted=targeted, name="target" if targeted else "y")   # query 1
    x = x.flatten(1)
    ask = _Oracle(model, x, y, targeted, queries, logits, shape)
    rows = (ask.best_distance > 0).nonzero().flatten()    # images not adversarial yet
    if len(rows):
        if init_x is not None:
            starts = init_x.detach().to(x).flatten(1)[rows]
            found = ask(rows, starts)
            if not found.all():
                bad = rows[~found].tolist()
                raise ValueError(f"init_x must be adversarial for every image attacked (classified as "
                                 f"{'the target' if targeted else 'a class other than y'}); it is not for "
                                 f"images {bad}")
        else:
            starts, found = _random_starts(ask, rows, d, init_tries, generator, x.dtype)
        rows, starts = rows[found], starts[found]
        x_t = _boundary_search(ask, rows, x[rows], starts, theta)
        _attack(ask, rows, x, x_t, theta, search_steps, probes, eps, generator)
    success = ask.best_distance < torch.inf if eps is None else ask.best_distance <= eps
    return ask.best.view(-1, *shape), success, ask.used


def _attack(ask, rows, x, x_t, theta, search_steps, probes, eps, generator) -> None:
    """HopSkipJumpAttack (Chen et al. 2020, L2) from the boundary points x_t of the images ``rows``."""
    d, t = x.shape[1], 1
    while True:
        # an image goes on while it can pay for ≥ 2 probes, a step and a binary search (and is not within ε)
        keep = ask.remaining(rows) >= 2 + 1 + search_steps
        if eps is not None:
            keep &= ask.best_distance[rows] > eps
        rows, x_t = rows[keep], x_t[keep]
        if len(rows) == 0:
            return
        distance = l2_norms(x_t - x[rows])
        # δ_t, the probes' radius: 0.1 (a tenth of the box) at first, then √d θ ‖x_t − x‖ (γ = 1; the authors'
        # code measures that distance before the binary search, a slightly larger δ)
        delta = torch.full_like(distance, 0.1) if t == 1 else math.sqrt(d) * theta * distance
        # B_t = B₀ √t probes, fewer when the budget left must also pay for the step and the binary search
        wanted = torch.full_like(rows, int(probes * math.sqrt(t)))
        count = torch.minimum(wanted, ask.remaining(rows) - 1 - search_steps)
        v = _gradient_direction(ask, rows, x_t, delta, count, generator)
        stepped, found = _step_size_search(ask, rows, x_t, v, distance / math.sqrt(t))
        rows, stepped = rows[found], stepped[found]
        x_t = _boundary_search(ask, rows, x[rows], stepped, theta)
        t += 1


@attack(eps=False, labels_from="query")
def hop_skip_jump(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, targeted: bool = False,
                  queries: int = 1000, init_x: torch.Tensor | None = None, init_tries: int = 100,
                  probes: int = 100, eps: float | None = None, seed: int = 0) -> torch.Tensor:
    """HopSkipJump, L2 (Chen, Jordan & Wainwright 2020, their algorithm with its Bin-Search):
    a decision-based attack that reads only the model's top-1 label (it gives the same result on
    :class:`~advex.attacks.queries.LabelsOnly`), untargeted or, with ``targeted=True``, towards the classes
    ``y`` from the images ``init_x`` the model classifies as those classes.

    Let φ(x') = +1 when the label of x' is adversarial, −1 otherwise, and d the number of pixels.  From an
    adversarial start (``init_x``, or uniform noise, up to ``init_tries`` images), a binary search on the
    segment to x gives the boundary point x_1 (tolerance θ = d^(−3/2) on the blend factor).  Iteration t:

        v_t = ĝ/‖ĝ‖₂,  ĝ = 1/(B_t − 1) Σ_b (φ(x_t + δ_t u_b) − φ̄) u_b   (B_t = B₀√t, B₀ = ``probes``; eq. 16)
        x̃_t = x_t + ξ_t v_t,   ξ_t = ‖x_t − x‖₂/√t, halved until φ(x̃_t) = +1
        x_{t+1} = the boundary point of the segment [x, x̃_t] (binary search)

    with u_b uniform on the unit sphere and δ_1 = 0.1, δ_t = √d θ ‖x_t − x‖₂ (after the authors' code).  There is no
    ε: the attack returns the closest adversarial image it found, and its L2 distance ‖x_adv − x‖₂ shrinks
    as ``queries`` grows.  With ``eps`` (an L2 radius) an image stops as soon as it is fooled within ε and
    counts as a success only then; the returned image is still the closest one found, which may lie outside
    the ε-ball.  Images with no adversarial start come back unchanged.  Every image uses at most ``queries``
    model evaluations (:func:`hop_skip_jump_with_stats` says how many).  Random numbers come from a CPU
    generator seeded by ``seed``, so a seed gives the same search on every device.
    """
    x_adv, _, _ = hop_skip_jump_with_stats.inner(model, x, y, targeted=targeted, queries=queries, init_x=init_x,
                                           init_tries=init_tries, probes=probes, eps=eps, seed=seed)
    return x_adv
