"""Few-pixel attack by differential evolution (Su, Vargas & Sakurai 2019; bib key su2019onepixel): a black-box
attack that needs only the class probabilities.

A candidate is ``pixels`` tuples (row, column, value per channel); painting them into the image gives an
adversarial example that differs from it in at most ``pixels`` spatial positions (the L0 threat model of
:mod:`.sparse`, where a pixel is a position and all C channels there are set).  Differential evolution searches
that space with a population of candidates and no gradient: every generation, each member i gets a child,
built out of three other members, and the child replaces i when it is fitter.  So a defence that masks gradients does
not slow it down, and :func:`.sparse.one_pixel_exhaustive` (every position × a few values) is its exhaustive
counterpart on small images.

Queries are what a black-box attack pays for, so they are counted per image, as in :mod:`.square`: the clean
image costs one query (an image already fooled is not attacked further), the initial population ``population``
more, every generation ``population`` more.  An image leaves the search the moment one of its candidates fools
the model; the populations of all images still searched are queried together, one batch per generation.
"""
from __future__ import annotations

from numbers import Real

import numpy as np
import torch
from torch import nn

from .core import attack, attack_succeeded, clean_query
from ..validation import check_positive_int

__all__ = ["pixel_attack", "pixel_attack_with_stats"]

#: candidate images per forward pass, by device type: on a GPU a generation is one batch unless it is larger than
#: 16,384 (a large batch costs little more than a small one); on a CPU chunks of 512, small enough for a chunk's
#: activations to stay in the processor's caches (chapter 4's CNN on 2 cores: 12,600 images/s in chunks of 512,
#: 5,900 as one batch of 3,900, the generation of 100 digits) …
MAX_BATCH = {"cpu": 512}
MAX_BATCH_ELSEWHERE = 16_384
#: … or than this many input values (a few hundred ImageNet-sized candidates), to bound the memory of a batch
MAX_BATCH_VALUES = 2 ** 26


# --------------------------------------------------------------------------- candidates and their images
#
# A population is a tensor (images, members, pixels, 2 + C): per pixel its row, column and C channel values,
# real numbers inside the box [0, H − 1] × [0, W − 1] × [0, 1]^C; positions are rounded when painted.

def _box(shape, dtype) -> torch.Tensor:
    """The upper corner of the search box, (H − 1, W − 1, 1, …, 1); the lower corner is 0."""
    _, c, h, w = shape
    return torch.tensor([h - 1, w - 1] + [1] * c, dtype=dtype)


def _initial_population(images: int, population: int, pixels: int, shape, dtype, generator) -> torch.Tensor:
    """Positions uniform over the H × W pixels, values uniform in [0, 1] (drawn on the CPU)."""
    _, c, h, w = shape
    rows = torch.randint(0, h, (images, population, pixels, 1), generator=generator)
    cols = torch.randint(0, w, (images, population, pixels, 1), generator=generator)
    values = torch.rand((images, population, pixels, c), generator=generator, dtype=dtype)
    return torch.cat([rows.to(dtype), cols.to(dtype), values], 3)


def _three_others(images: int, population: int, generator) -> torch.Tensor:
    """For every member i of every population, three distinct random members r1, r2, r3, all ≠ i, as one
    (images, population, 3) tensor on the CPU.  r_t is uniform over the population − t members not taken yet:
    an index drawn in [0, population − t) is moved past each taken member, in increasing order, that it reaches."""
    taken = torch.arange(population).expand(images, population)[..., None]
    for t in range(1, 4):
        pick = torch.randint(0, population - t, (images, population), generator=generator)
        for member in taken.sort(2).values.unbind(2):
            pick += pick >= member
        taken = torch.cat([taken, pick[..., None]], 2)
    return taken[..., 1:]


def _members(population: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """population[n, index[n, i]] for every image n and member i."""
    return population.gather(1, index[..., None, None].expand_as(population))


def _mutate(population: torch.Tensor, mutation: float, box: torch.Tensor, generator) -> torch.Tensor:
    """DE/rand/1 without crossover: child_i = x_r1 + F·(x_r2 − x_r3), then brought back into the search box.

    A position that leaves the image is drawn again uniformly inside it (as scipy's differential evolution
    does): clipping it would pile children up on the border, which on MNIST is empty background.  A value
    outside [0, 1] is clipped, because there the border is where the useful values are (black and white).
    """
    r1, r2, r3 = _three_others(*population.shape[:2], generator).to(population.device).unbind(2)   # one copy
    child = _members(population, r1) + mutation * (_members(population, r2) - _members(population, r3))
    redrawn = (torch.rand(child[..., :2].shape, generator=generator, dtype=child.dtype).to(child.device)
               * box[:2].to(child.device))
    position = child[..., :2]
    outside = (position < 0) | (position > box[:2].to(child.device))
    child = torch.cat([torch.where(outside, redrawn, position), child[..., 2:]], -1)
    return torch.minimum(child.clamp_min(0.0), box.to(child.device))


def _paint(x: torch.Tensor, owner: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """The images x[owner[j]] with the pixels of candidates[j] (j, pixels, 2 + C) painted in: one gather and one
    index_put for the whole batch."""
    _, _, h, w = x.shape
    images = x.index_select(0, owner)      # a copy, and on the CPU ~8× faster than x[owner]
    rows = candidates[..., 0].round().long().clamp(0, h - 1)   # clamp: the box holds them already; cheap insurance
    cols = candidates[..., 1].round().long().clamp(0, w - 1)
    values = candidates[..., 2:].to(x.dtype)
    if candidates.shape[1] > 1:
        values = _last_write_wins(rows * w + cols, values)
    images[torch.arange(len(owner), device=x.device)[:, None], :, rows, cols] = values
    return images


def _last_write_wins(positions: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Two pixels of a candidate at one position must write the same value, or index_put (whose order among
    duplicates is unspecified, on CUDA in particular) would make the result depend on the device: each takes the
    value of the last pixel at its position."""
    same = positions[:, :, None] == positions[:, None, :]                       # (candidates, pixels, pixels)
    order = torch.arange(positions.shape[1], device=positions.device)
    last = torch.where(same, order, -1).amax(2)
    return values.gather(1, last[..., None].expand_as(values))


def _fitness(model: nn.Module, x: torch.Tensor, y: torch.Tensor, population: torch.Tensor, targeted: bool
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss to minimise, fooled), each (images, members), from one forward pass per chunk of candidates.

    The loss is log p_y (untargeted: push the true class's probability down) or −log p_t (targeted: push the
    target's up), with p the softmax of the model's outputs; logs order candidates as the probabilities do and
    tell apart the tiny ones that would all round to 0.
    """
    images, members = population.shape[:2]
    candidates = population.flatten(0, 1)
    owner = torch.arange(images, device=x.device).repeat_interleave(members)
    chunk = max(1, min(MAX_BATCH.get(x.device.type, MAX_BATCH_ELSEWHERE), MAX_BATCH_VALUES // x[0].numel()))
    losses, fooled = [], []
    for start in range(0, len(candidates), chunk):
        who = owner[start:start + chunk]
        logits = model(_paint(x, who, candidates[start:start + chunk]))
        log_p = logits.log_softmax(1).gather(1, y[who, None])[:, 0]
        losses.append(-log_p if targeted else log_p)
        fooled.append(attack_succeeded(logits, y[who], targeted))
    return torch.cat(losses).view(images, members), torch.cat(fooled).view(images, members)


# --------------------------------------------------------------------------- the search

def _evolve(model, x, y, targeted, pixels, population, iterations, mutation, generator, x_adv, success, used
            ) -> None:
    """Differential evolution on the images not fooled yet, writing their results into ``x_adv``, ``success``
    and ``used`` (queries per image).  Query 1 was the clean image."""
    rows = (~success).nonzero().flatten()
    x, y = x[rows], y[rows]
    dtype = torch.promote_types(x.dtype, torch.float32)   # half-precision positions would round badly
    box = _box(x.shape, dtype).to(x.device)
    members = _initial_population(len(rows), population, pixels, x.shape, dtype, generator).to(x.device)
    loss = None
    for generation in range(iterations + 1):
        candidates = members if generation == 0 else _mutate(members, mutation, box, generator)
        candidate_loss, fooled = _fitness(model, x, y, candidates, targeted)
        used[rows] += population
        if loss is None:
            loss = candidate_loss
        else:   # each child competes with its parent, the member of the same index; the fitter survives
            fitter = candidate_loss < loss
            members = torch.where(fitter[..., None, None], candidates, members)
            loss = torch.where(fitter, candidate_loss, loss)
        # an image leaves with its first candidate that fools the model, fitter than its parent or not
        finished = fooled.any(1)
        done = finished.nonzero().flatten()      # the one host sync of a generation
        if len(done):
            first = fooled[done].int().argmax(1)
            x_adv[rows[done]] = _paint(x[done], torch.arange(len(done), device=x.device), candidates[done, first])
            success[rows[done]] = True
            left = (~finished).nonzero().flatten()
            rows, x, y, members, loss = rows[left], x[left], y[left], members[left], loss[left]
            if len(rows) == 0:
                return
    # not fooled: the fittest member, the closest the search came
    best = members[torch.arange(len(rows), device=x.device), loss.argmin(1)]
    x_adv[rows] = _paint(x, torch.arange(len(rows), device=x.device), best)


def _check_arguments(x, pixels, population, iterations, mutation, targeted) -> tuple[int, int, int, float]:
    if x.dim() != 4:
        raise ValueError(f"x must be a batch of images (N, C, H, W), got shape {tuple(x.shape)}")
    pixels = check_positive_int(pixels, "pixels")
    if pixels > x.shape[2] * x.shape[3]:
        raise ValueError(f"pixels must be at most H·W = {x.shape[2] * x.shape[3]} (the image's positions), "
                         f"got {pixels}")
    if isinstance(population, bool) or not isinstance(population, (int, np.integer)) or population < 4:
        raise ValueError(f"population must be an integer >= 4 (DE/rand/1 combines three members other than "
                         f"the parent), got {population!r}")
    if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) or iterations < 0:
        raise ValueError(f"iterations must be an integer >= 0, got {iterations!r}")
    if isinstance(mutation, bool) or not isinstance(mutation, Real) or not 0 < mutation <= 2:
        raise ValueError(f"mutation must be a number in (0, 2], got {mutation!r}")
    if not isinstance(targeted, bool):
        raise ValueError(f"targeted must be True or False, got {targeted!r}")
    return pixels, int(population), int(iterations), float(mutation)


@attack(eps=False, labels_from="query")
def pixel_attack_with_stats(model: nn.Module, x: torch.Tensor, y: torch.Tensor, pixels: int = 1, *,
                            targeted: bool = False, population: int = 400, iterations: int = 100,
                            mutation: float = 0.5, seed: int = 0
                            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`pixel_attack`, also returning per-example success (bool) and the queries each image used (int64).

    An image uses at most 1 + ``population`` · (``iterations`` + 1) forward passes, the clean one included; an
    image the model already gets wrong (untargeted) or already puts in its target class (targeted) uses exactly
    one and comes back unchanged.
    """
    pixels, population, iterations, mutation = _check_arguments(x, pixels, population, iterations, mutation,
                                                                targeted)
    generator = torch.Generator().manual_seed(seed)
    _, y, success, used = clean_query(model, x, y, targeted=targeted)     # query 1: the clean image
    x_adv = x.clone()
    if not success.all():
        _evolve(model, x, y, targeted, pixels, population, iterations, mutation, generator, x_adv, success, used)
    return x_adv, success, used


@attack(eps=False, labels_from="query")
def pixel_attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, pixels: int = 1, *, targeted: bool = False,
                 population: int = 400, iterations: int = 100, mutation: float = 0.5, seed: int = 0
                 ) -> torch.Tensor:
    """Few-pixel attack by differential evolution (Su, Vargas & Sakurai 2019, "One pixel attack for fooling deep
    neural networks", IEEE TEVC; bib key su2019onepixel), black-box: it reads only the model's outputs.

    A candidate is ``pixels`` tuples (row, column, value of each channel).  A population of ``population``
    candidates per image evolves by DE/rand/1 with no crossover, as in Su et al.: in generation g every member
    x_i(g) gets the child

        c_i = x_r1(g) + F · (x_r2(g) − x_r3(g)),    r1, r2, r3 distinct random members ≠ i, F = ``mutation``,

    and x_i(g + 1) = c_i if c_i is fitter than x_i(g), else x_i(g).  Fitness is the softmax probability p_y of
    the true class, minimised, or with ``targeted=True`` (``y`` then holds the targets) the probability of the
    target, maximised.

    The search box: positions lie in [0, H − 1] × [0, W − 1] and are rounded to the nearest pixel when painted
    (all channels of that pixel are set), values lie in [0, 1]; a child's position that leaves the image is
    drawn again uniformly inside it (scipy's rule), a value outside [0, 1] is clipped.  The initial
    positions are uniform over the H × W pixels and the initial values uniform in [0, 1].  Su et al. draw RGB
    values from N(128, 127) on 0–255; on [0, 1] images that Gaussian, clipped, would put about a third of the
    values exactly on 0 or 1, so the uniform draw (scipy's 'random' init, torchattacks' choice too) covers the
    box more evenly; mutation and clipping still reach 0 and 1.

    An image stops the moment any candidate fools the model (untargeted: the prediction is not ``y``;
    targeted: it is ``y``) and comes back as that candidate; otherwise it comes back as the fittest member after
    ``iterations`` generations.  Either way it differs from ``x`` in at most ``pixels`` positions.  Queries:
    1 for the clean image, ``population`` for the initial population and ``population`` per generation; the
    populations of all images still searched are evaluated as one batch.  Random numbers come from a generator
    seeded by ``seed``, drawn on the CPU, so a seed gives the same search on every device.
    """
    x_adv, _, _ = pixel_attack_with_stats.inner(model, x, y, pixels, targeted=targeted, population=population,
                                          iterations=iterations, mutation=mutation, seed=seed)
    return x_adv
