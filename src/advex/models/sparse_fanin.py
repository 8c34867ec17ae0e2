"""Bram Cohen's "2N outputs, each reading a fixed random subset of the inputs" network (Cohen 2019).

Cohen, B. (2019), *Neural Networks as we know them are fundamentally flawed. Here are some thoughts on
how to improve them* (essay, 13 September 2019).  His argument: a network with a handful of outputs lets
the N inputs steer the direction of their sum, so give the network 2N output features instead, and keep
them from all saying the same thing by making each one see only a fixed subset of the inputs.  One
dense-ish layer of such units costs N^(5/3); his cheaper variant, built here, puts a layer of 2N
*middle* values in between:

* each of the 2N middle values is computed from a fixed set of about N^(1/3) inputs;
* each of the 2N final features is computed from a fixed set of about N^(1/3) middle values;
* "the training system is not allowed to alter which of the inputs are factored into which outputs but
  is free to structure the traditional neural networks in the middle however it wants."

Fixed (drawn once, from the model's ``seed``, stored as buffers): which inputs feed which unit.
Learned: every unit's own small network (here one hidden ReLU layer of ``hidden`` units) and the dense
read-out from the 2N final features to the classes.  Cost: 2 · 2N units × N^(1/3) inputs each, i.e.
O(N^(4/3)) weights and multiply-adds, against N^(5/3) for the one-layer version (and N² for a dense
layer of 2N features).

The essay offers two ways to choose the subsets, both here: partition the inputs into non-overlapping
groups of the right size and repeat with fresh partitions (:func:`partition_indices`, every input read
equally often), or draw each unit's inputs from a Gaussian around a point (:func:`gaussian_indices`,
spatially concentrated, like a receptive field).  :func:`dense_counterpart` builds the ordinary MLP with
the same number of parameters, the control for any comparison.
"""
from __future__ import annotations

import math
from numbers import Real

import torch
from torch import nn

from ..validation import check_positive_int

__all__ = ["SparseFanIn", "SparseFanInNet", "dense_counterpart", "gaussian_indices", "parameter_count",
           "partition_indices"]

LAYOUTS = ("partition", "gaussian")


def _check_fan_in(fan_in, in_features: int) -> int:
    fan_in = check_positive_int(fan_in, "fan_in")
    if fan_in > in_features:
        raise ValueError(f"fan_in must be at most the number of inputs ({in_features}), got {fan_in}")
    return fan_in


def _check_generator(generator) -> torch.Generator | None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    return generator


def partition_indices(in_features: int, out_features: int, fan_in: int,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Each unit's inputs from repeated random partitions of the inputs into disjoint groups of ``fan_in``.

    The inputs are shuffled and cut into consecutive groups of ``fan_in``; when a shuffle runs out, a fresh
    one continues the stream (Cohen: "partitioning the inputs into completely non-overlapping sets ...
    then repeating").  A group that straddles two shuffles takes the inputs it already holds from the end of
    the next shuffle, so every row is a set of distinct inputs and the stream is still a prefix of whole
    shuffles: every input is read ⌊out·fan_in / in⌋ or ⌈out·fan_in / in⌉ times.

    Returns an int64 tensor of shape (out_features, fan_in), each row sorted.  ``generator`` (a CPU
    ``torch.Generator``) fixes the draw; None uses torch's global generator.
    """
    in_features = check_positive_int(in_features, "in_features")
    out_features = check_positive_int(out_features, "out_features")
    fan_in = _check_fan_in(fan_in, in_features)
    generator = _check_generator(generator)
    total = out_features * fan_in
    pieces, length = [], 0
    while length < total:
        perm = torch.randperm(in_features, generator=generator)
        held = length % fan_in                       # inputs already in the group that straddles the seam
        if held:
            repeat = torch.isin(perm, pieces[-1][-held:])   # held < fan_in <= in_features: all in the last shuffle
            perm = torch.cat([perm[~repeat], perm[repeat]])
        pieces.append(perm)
        length += in_features
    return torch.cat(pieces)[:total].view(out_features, fan_in).sort(dim=1).values


def gaussian_indices(height: int, width: int, out_features: int, fan_in: int, spread: float,
                     generator: torch.Generator | None = None, *, return_centres: bool = False):
    """Each unit's inputs drawn around a random centre pixel of a height×width grid (Cohen's Gaussian option).

    For every unit a centre pixel is drawn uniformly, then ``fan_in`` *distinct* pixels are drawn without
    replacement with probability ∝ exp(−d² / (2 spread²)), d the Euclidean distance (in pixels) from the
    centre, i.e. exactly as if drawn one at a time from the remaining pixels with those weights (done at
    once with the Gumbel-top-k trick, in log space, so no weight underflows however small ``spread``).

    Returns int64 flat pixel indices (row · width + column) of shape (out_features, fan_in), each row
    sorted; with ``return_centres=True`` also the (out_features,) flat indices of the centres.
    ``generator`` (a CPU ``torch.Generator``) fixes the draw; None uses torch's global generator.
    """
    height = check_positive_int(height, "height")
    width = check_positive_int(width, "width")
    out_features = check_positive_int(out_features, "out_features")
    fan_in = _check_fan_in(fan_in, height * width)
    generator = _check_generator(generator)
    if isinstance(spread, bool) or not isinstance(spread, Real) or not math.isfinite(spread) or spread <= 0:
        raise ValueError(f"spread must be a finite number > 0 (pixels), got {spread!r}")
    pixels = height * width
    centres = torch.randint(0, pixels, (out_features,), generator=generator)
    rows = torch.arange(pixels) // width
    cols = torch.arange(pixels) % width
    d2 = ((rows[None] - rows[centres, None]).square() + (cols[None] - cols[centres, None]).square()).double()
    log_weight = -d2 / (2.0 * float(spread) ** 2)
    uniform = torch.rand(out_features, pixels, generator=generator, dtype=torch.float64)
    gumbel = -torch.log(-torch.log(uniform.clamp(min=1e-300)))
    chosen = (log_weight + gumbel).topk(fan_in, dim=1).indices.sort(dim=1).values
    return (chosen, centres) if return_centres else chosen


class SparseFanIn(nn.Module):
    """``out_features`` units, unit j a tiny MLP of the fixed inputs ``indices[j]`` only.

    h_j = relu(W1_j · x[indices[j]] + b1_j)  (``hidden`` units),  out_j = w2_j · h_j + b2_j.

    indices:   int64 (out_features, fan_in), each row distinct inputs in [0, in_features); default
               :func:`partition_indices` drawn from ``generator`` (None: torch's global generator).  Stored
               as a buffer: saved in the state_dict, moved by ``.to(device)``, never touched by training.
    Weights are initialised like ``nn.Linear`` (uniform in ±1/√fan-in of each small layer) from torch's
    global generator.  Input (B, in_features) or (B, ...) with that many values; output (B, out_features).
    All units are computed together (a gather and two batched matrix products), on the input's device.
    """

    def __init__(self, in_features: int, out_features: int, fan_in: int, *, hidden: int = 4,
                 indices: torch.Tensor | None = None, generator: torch.Generator | None = None):
        super().__init__()
        self.in_features = check_positive_int(in_features, "in_features")
        self.out_features = check_positive_int(out_features, "out_features")
        self.fan_in = _check_fan_in(fan_in, in_features)
        self.hidden = check_positive_int(hidden, "hidden")
        if indices is None:
            indices = partition_indices(in_features, out_features, fan_in, generator)
        self.register_buffer("indices", self._checked_indices(indices))
        bound_in, bound_hidden = 1.0 / math.sqrt(fan_in), 1.0 / math.sqrt(hidden)
        shape = (out_features, hidden)
        self.weight1 = nn.Parameter(torch.empty(*shape, fan_in).uniform_(-bound_in, bound_in))
        self.bias1 = nn.Parameter(torch.empty(shape).uniform_(-bound_in, bound_in))
        self.weight2 = nn.Parameter(torch.empty(shape).uniform_(-bound_hidden, bound_hidden))
        self.bias2 = nn.Parameter(torch.empty(out_features).uniform_(-bound_hidden, bound_hidden))

    def _checked_indices(self, indices) -> torch.Tensor:
        shape = (self.out_features, self.fan_in)
        if not isinstance(indices, torch.Tensor) or indices.dtype.is_floating_point or indices.dtype.is_complex \
                or indices.dtype == torch.bool:
            raise ValueError(f"indices must be an integer torch.Tensor of shape {shape}, got {indices!r}")
        if tuple(indices.shape) != shape:
            raise ValueError(f"indices must have shape {shape} (one row of fan_in inputs per unit), "
                             f"got {tuple(indices.shape)}")
        indices = indices.detach().long().cpu().clone()
        if indices.min() < 0 or indices.max() >= self.in_features:
            raise ValueError(f"indices must lie in [0, {self.in_features - 1}], got values in "
                             f"[{indices.min().item()}, {indices.max().item()}]")
        ordered = indices.sort(dim=1).values
        if (ordered[:, 1:] == ordered[:, :-1]).any():
            raise ValueError("indices must hold distinct inputs in every row (each unit reads a set of inputs)")
        return indices

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)
        if flat.shape[1] != self.in_features:
            raise ValueError(f"x must hold {self.in_features} values per example, got shape {tuple(x.shape)}")
        # unit-major layout: gather the rows of xᵀ into (units, fan_in, B), then one batched matrix product
        # per small layer over all units at once (the batch-first layout flat[:, indices] with einsum is
        # about five times slower on a CPU)
        gathered = flat.t().contiguous().index_select(0, self.indices.flatten())
        gathered = gathered.view(self.out_features, self.fan_in, flat.shape[0])
        h = torch.baddbmm(self.bias1[:, :, None], self.weight1, gathered).relu_()      # (units, hidden, B)
        out = torch.baddbmm(self.bias2[:, None, None], self.weight2[:, None, :], h)    # (units, 1, B)
        return out.view(self.out_features, flat.shape[0]).t().contiguous()

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, fan_in={self.fan_in}, " \
               f"hidden={self.hidden}"


class SparseFanInNet(nn.Module):
    """N inputs → 2N middle values → 2N final features → dense read-out to the classes (Cohen 2019, N^(4/3) variant).

    input_shape:   the shape of one input (default MNIST's (1, 28, 28)); N = its number of values.
    width_factor:  middle values and final features per input (Cohen: 2, i.e. 2N of each).
    fan_in:        inputs per unit in both sparse layers; default round(N^(1/3)) (9 for N = 784).
    hidden:        hidden ReLU units inside every unit's own small network.
    layout:        how layer 1 picks its inputs: ``'partition'`` (:func:`partition_indices` over the flattened
                   input) or ``'gaussian'`` (:func:`gaussian_indices` on the H×W pixel grid, width ``spread``
                   pixels; needs a single channel).  Layer 2 always partitions the middle values.
    seed:          the index sets come from ``torch.Generator().manual_seed(seed)``: fixed by the seed and
                   independent of torch's global generator, which initialises the weights as usual.

    No ReLU between the layers: each unit already is a one-hidden-layer ReLU network of its inputs, so
    the stack is nonlinear without one, and the middle values are the units' signed linear outputs, as
    Cohen's "neural network for that output" would give.  A ReLU on them would add little (the next
    unit's first operation is linear anyway) but could silence a middle value for good, cutting its
    inputs off from every final feature that reads it.

    :meth:`middle` and :meth:`features` return the 2N middle values and the 2N final features.
    """

    def __init__(self, input_shape: tuple[int, ...] = (1, 28, 28), num_classes: int = 10, *, width_factor: int = 2,
                 fan_in: int | None = None, hidden: int = 4, layout: str = "partition", spread: float = 3.0,
                 seed: int = 0):
        super().__init__()
        if not isinstance(input_shape, (tuple, list)) or not input_shape:
            raise ValueError(f"input_shape must be a non-empty tuple of positive integers, got {input_shape!r}")
        self.input_shape = tuple(check_positive_int(s, "input_shape") for s in input_shape)
        self.num_classes = check_positive_int(num_classes, "num_classes")
        width_factor = check_positive_int(width_factor, "width_factor")
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        if isinstance(spread, bool) or not isinstance(spread, Real) or not math.isfinite(spread) or spread <= 0:
            raise ValueError(f"spread must be a finite number > 0 (pixels), got {spread!r}")
        n = math.prod(self.input_shape)
        width = width_factor * n
        fan_in = max(1, round(n ** (1 / 3))) if fan_in is None else fan_in
        fan_in = _check_fan_in(fan_in, n)
        self.layout, self.fan_in = layout, fan_in
        generator = torch.Generator().manual_seed(seed)
        if layout == "gaussian":
            if len(self.input_shape) == 3 and self.input_shape[0] == 1:
                height, grid_width = self.input_shape[1:]
            elif len(self.input_shape) == 2:
                height, grid_width = self.input_shape
            else:
                raise ValueError(f"layout='gaussian' needs a single-channel input_shape (1, H, W) or (H, W), "
                                 f"got {self.input_shape}")
            first = gaussian_indices(height, grid_width, width, fan_in, spread, generator)
        else:
            first = partition_indices(n, width, fan_in, generator)
        second = partition_indices(width, width, fan_in, generator)
        self.layer1 = SparseFanIn(n, width, fan_in, hidden=hidden, indices=first)
        self.layer2 = SparseFanIn(width, width, fan_in, hidden=hidden, indices=second)
        self.readout = nn.Linear(width, num_classes)

    def middle(self, x: torch.Tensor) -> torch.Tensor:
        """The 2N middle values, (B, width_factor · N)."""
        return self.layer1(x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The 2N final features, (B, width_factor · N)."""
        return self.layer2(self.layer1(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.features(x))


def parameter_count(model: nn.Module) -> int:
    """The number of values in ``model``'s parameters (buffers such as the fixed index sets are not counted)."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters())


def dense_counterpart(model: nn.Module, input_shape: tuple[int, ...] = (1, 28, 28), num_classes: int = 10
                      ) -> nn.Module:
    """Flatten → Linear(N, H) → ReLU → Linear(H, num_classes), with as many parameters as ``model`` as possible.

    The MLP has H(N + 1) + num_classes(H + 1) = H(N + 1 + num_classes) + num_classes parameters, linear
    in H, so H = max(1, round((P − num_classes) / (N + 1 + num_classes))) with P = :func:`parameter_count`
    of ``model`` is the closest: within half a hidden unit's worth, (N + 1 + num_classes) / 2.  Its weights
    are initialised from torch's global generator.
    """
    if not isinstance(input_shape, (tuple, list)) or not input_shape:
        raise ValueError(f"input_shape must be a non-empty tuple of positive integers, got {input_shape!r}")
    n = math.prod(check_positive_int(s, "input_shape") for s in input_shape)
    num_classes = check_positive_int(num_classes, "num_classes")
    target = parameter_count(model)
    hidden = max(1, round((target - num_classes) / (n + 1 + num_classes)))
    return nn.Sequential(nn.Flatten(), nn.Linear(n, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
