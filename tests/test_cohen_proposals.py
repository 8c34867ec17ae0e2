"""Bram Cohen's (2019) proposals: the sparse fan-in network (advex.models.sparse_fanin) and the shrink /
mosaic training-set augmentations (advex.defences.augmentations).  The wiring is checked by gradients
(a unit must not depend on an input it is not given, and a planted dense layer fails the same check),
the index sets by counting, the augmentations by their ink, labels and arguments."""
from __future__ import annotations

import functools
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from advex.defences.augmentations import (cohen_augmented_loss, mosaic, shrink_confidence, shrink_digits,
                                          soft_cross_entropy)
from advex.models import trained
from advex.models.sparse_fanin import (SparseFanIn, SparseFanInNet, dense_counterpart, gaussian_indices,
                                       parameter_count, partition_indices)

torch.set_num_threads(1)


# --------------------------------------------------------------------------- wiring, by gradients

def input_gradient(fn, x: torch.Tensor, unit: int) -> torch.Tensor:
    """∂(Σ_batch fn(x)[:, unit]) / ∂x, flattened to (B, values)."""
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(fn(x)[:, unit].sum(), x)
    return grad.flatten(1)


def outside_and_inside(grad: torch.Tensor, allowed: torch.Tensor) -> tuple[float, float]:
    """The largest |gradient| on the inputs not in ``allowed`` and on those in it."""
    mask = torch.zeros(grad.shape[1], dtype=torch.bool)
    mask[allowed.flatten()] = True
    return grad[:, ~mask].abs().max().item(), grad[:, mask].abs().max().item()


class DenseImposter(nn.Module):
    """Carries a SparseFanIn's index buffer but computes a dense layer: the wiring check must catch it."""

    def __init__(self, sparse: SparseFanIn):
        super().__init__()
        self.register_buffer("indices", sparse.indices.clone())
        self.linear = nn.Linear(sparse.in_features, sparse.out_features)

    def forward(self, x):
        return self.linear(x.flatten(1))


def test_each_unit_reads_only_its_fixed_inputs_and_a_dense_imposter_does_not():
    torch.manual_seed(0)
    layer = SparseFanIn(30, 12, 4, hidden=4, generator=torch.Generator().manual_seed(1))
    x = torch.rand(64, 30)
    for unit in range(layer.out_features):
        outside, inside = outside_and_inside(input_gradient(layer, x, unit), layer.indices[unit])
        assert outside == 0.0, f"unit {unit} depends on an input it is not given"
        assert inside > 0.0, f"unit {unit} ignores its own inputs"
    imposter = DenseImposter(layer)
    outside, _ = outside_and_inside(input_gradient(imposter, x, 0), imposter.indices[0])
    assert outside > 0.0, "the check must fail for a dense layer"


def test_forward_matches_a_loop_over_the_units():
    torch.manual_seed(0)
    layer = SparseFanIn(20, 7, 5, hidden=3, generator=torch.Generator().manual_seed(2))
    x = torch.rand(6, 20)
    by_hand = torch.stack([torch.relu(x[:, layer.indices[j]] @ layer.weight1[j].T + layer.bias1[j]) @ layer.weight2[j]
                           + layer.bias2[j] for j in range(7)], dim=1)
    torch.testing.assert_close(layer(x), by_hand)


@pytest.mark.parametrize("layout", ["partition", "gaussian"])
def test_middle_values_and_final_features_of_the_network_depend_only_on_their_receptive_fields(layout):
    torch.manual_seed(0)
    net = SparseFanInNet(layout=layout, seed=3)
    x = torch.rand(4, 1, 28, 28)
    for unit in (0, 777, 1567):
        outside, inside = outside_and_inside(input_gradient(net.middle, x, unit), net.layer1.indices[unit])
        assert outside == 0.0 and inside > 0.0
        field = net.layer1.indices[net.layer2.indices[unit]]          # the inputs of its middle values
        outside, inside = outside_and_inside(input_gradient(net.features, x, unit), field)
        assert outside == 0.0 and inside > 0.0
        assert field.unique().numel() <= net.fan_in ** 2 < 784       # a final feature sees ≤ 81 of 784 pixels
    dense = dense_counterpart(net)
    outside, _ = outside_and_inside(input_gradient(lambda z: dense[:3](z), x, 0), net.layer1.indices[0])
    assert outside > 0.0, "the check must fail for a dense hidden unit"


def test_index_sets_are_saved_restored_and_never_trained():
    torch.manual_seed(0)
    net = SparseFanInNet(seed=0)
    state = net.state_dict()
    assert torch.equal(state["layer1.indices"], net.layer1.indices) and "layer2.indices" in state
    assert all("indices" not in name for name, _ in net.named_parameters())
    before = [net.layer1.indices.clone(), net.layer2.indices.clone()]
    weights = net.layer1.weight1.detach().clone()
    optimiser = torch.optim.SGD(net.parameters(), lr=0.1, weight_decay=0.1)
    F.cross_entropy(net(torch.rand(8, 1, 28, 28)), torch.arange(8)).backward()
    optimiser.step()
    assert not torch.equal(weights, net.layer1.weight1), "the step must have changed the weights"
    assert torch.equal(net.layer1.indices, before[0]) and torch.equal(net.layer2.indices, before[1])
    other = SparseFanInNet(seed=1)
    assert not torch.equal(other.layer1.indices, net.layer1.indices)
    other.load_state_dict(net.state_dict())
    assert torch.equal(other.layer1.indices, net.layer1.indices)
    assert net.double().layer1.indices.dtype == torch.int64


# --------------------------------------------------------------------------- index sets

@pytest.mark.parametrize("in_features, out_features, fan_in", [(784, 1568, 9), (1568, 1568, 9), (10, 7, 3),
                                                               (13, 40, 5), (9, 4, 9), (50, 3, 7)])
def test_partitions_read_every_input_equally_often_with_distinct_inputs_per_unit(in_features, out_features, fan_in):
    idx = partition_indices(in_features, out_features, fan_in, torch.Generator().manual_seed(0))
    assert idx.shape == (out_features, fan_in) and idx.dtype == torch.int64
    assert idx.min() >= 0 and idx.max() < in_features
    assert all(row.unique().numel() == fan_in for row in idx)
    reads = torch.bincount(idx.flatten(), minlength=in_features)
    assert reads.max() - reads.min() <= 1
    assert reads.sum() == out_features * fan_in


def test_index_sets_are_fixed_by_their_generator_seed():
    for draw in (lambda g: partition_indices(100, 60, 5, g), lambda g: gaussian_indices(28, 28, 60, 9, 3.0, g)):
        a, b = draw(torch.Generator().manual_seed(7)), draw(torch.Generator().manual_seed(7))
        assert torch.equal(a, b)
        assert not torch.equal(a, draw(torch.Generator().manual_seed(8)))


def test_gaussian_index_sets_are_distinct_in_range_and_concentrated_around_their_centres():
    idx, centres = gaussian_indices(28, 28, 1568, 9, 3.0, torch.Generator().manual_seed(0), return_centres=True)
    assert idx.shape == (1568, 9) and idx.min() >= 0 and idx.max() < 784
    assert (idx.sort(1).values.diff(dim=1) > 0).all()

    def mean_distance(chosen):
        dr = chosen // 28 - (centres // 28)[:, None]
        dc = chosen % 28 - (centres % 28)[:, None]
        return (dr.square() + dc.square()).float().sqrt().mean().item()

    uniform = torch.rand(1568, 784, generator=torch.Generator().manual_seed(1)).argsort(1)[:, :9]
    assert mean_distance(idx) < 0.5 * mean_distance(uniform)
    # 9 draws from a Gaussian of spread 3 about the centre: a mean distance of a few pixels, not ~10
    assert 2.0 < mean_distance(idx) < 5.0
    tight = gaussian_indices(28, 28, 200, 9, 0.05, torch.Generator().manual_seed(0))   # no weight underflow
    assert (tight.sort(1).values.diff(dim=1) > 0).all()


# --------------------------------------------------------------------------- the network and its control

def test_network_shapes_default_fan_in_seed_and_global_generator():
    torch.manual_seed(123)
    net = SparseFanInNet()
    assert net.fan_in == 9 == round(784 ** (1 / 3))
    assert net.layer1.indices.shape == (1568, 9) and net.layer2.indices.shape == (1568, 9)
    assert net(torch.rand(5, 1, 28, 28)).shape == (5, 10)
    assert net.middle(torch.rand(2, 1, 28, 28)).shape == (2, 1568)
    torch.manual_seed(456)                       # a different global generator: same index sets, other weights
    again = SparseFanInNet()
    assert torch.equal(net.layer1.indices, again.layer1.indices) and torch.equal(net.layer2.indices, again.layer2.indices)
    assert not torch.equal(net.layer1.weight1, again.layer1.weight1)
    assert SparseFanInNet((1, 8, 8), 3, fan_in=4, hidden=2)(torch.rand(2, 1, 8, 8)).shape == (2, 3)


def test_dense_counterpart_has_as_many_parameters():
    for net in (SparseFanInNet(), SparseFanInNet((1, 8, 8), 3, hidden=2)):
        n, classes = math.prod(net.input_shape), net.num_classes
        dense = dense_counterpart(net, net.input_shape, classes)
        sparse_count, dense_count = parameter_count(net), parameter_count(dense)
        assert abs(dense_count - sparse_count) <= (n + 1 + classes) / 2          # within half a hidden unit
        assert dense(torch.rand(2, *net.input_shape)).shape == (2, classes)
    big = SparseFanInNet()
    assert parameter_count(big) == 2 * 1568 * (4 * (9 + 2) + 1) + 1568 * 10 + 10
    assert abs(parameter_count(dense_counterpart(big)) / parameter_count(big) - 1) < 0.01


@pytest.mark.parametrize("call, name", [
    (lambda: SparseFanIn(10, 5, 11), "fan_in"),
    (lambda: SparseFanIn(10, 5, 3, hidden=0), "hidden"),
    (lambda: SparseFanIn(10, 2, 3, indices=torch.tensor([[0, 1, 2], [3, 3, 4]])), "indices"),
    (lambda: SparseFanIn(10, 2, 3, indices=torch.tensor([[0, 1, 2], [3, 4, 10]])), "indices"),
    (lambda: SparseFanIn(10, 2, 3, indices=torch.zeros(2, 3)), "indices"),
    (lambda: SparseFanInNet(layout="random"), "layout"),
    (lambda: SparseFanInNet((3, 28, 28), layout="gaussian"), "gaussian"),
    (lambda: gaussian_indices(28, 28, 5, 9, 0.0), "spread"),
    (lambda: partition_indices(10, 5, 0), "fan_in"),
    (lambda: SparseFanIn(10, 5, 3)(torch.rand(2, 11)), "x"),
])
def test_bad_model_arguments_are_rejected_by_name(call, name):
    with pytest.raises(ValueError, match=name):
        call()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_network_runs_on_cuda_with_its_index_sets():
    torch.manual_seed(0)
    net = SparseFanInNet()
    x = torch.rand(4, 1, 28, 28)
    expected = net(x)
    net = net.cuda()
    assert net.layer1.indices.is_cuda
    torch.testing.assert_close(net(x.cuda()).cpu(), expected, rtol=1e-4, atol=1e-5)
    loss = cohen_augmented_loss(net, x.cuda(), torch.arange(4).cuda())
    loss.backward()
    assert loss.is_cuda and net.layer1.weight1.grad.is_cuda


# --------------------------------------------------------------------------- shrinking

def centred_square(side: int = 12) -> torch.Tensor:
    x = torch.zeros(1, 1, 28, 28)
    start = (28 - side) // 2
    x[..., start:start + side, start:start + side] = 1.0
    return x


def test_shrinking_by_one_is_the_identity_and_values_stay_in_the_unit_interval():
    x = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    assert (shrink_digits(x, 1.0) - x).abs().max() <= 1e-6
    for scale in (0.95, 0.5, 0.21, 0.05):
        out = shrink_digits(x, scale)
        assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    ones = torch.ones(1, 1, 28, 28)
    assert shrink_digits(ones, 0.5)[..., 10:18, 10:18].min() == pytest.approx(1.0)   # the inside is untouched
    assert shrink_digits(ones, 0.5)[..., :5, :].max() == 0.0                          # black around it


@pytest.mark.parametrize("scale", [0.9, 0.7, 0.5, 0.3, 0.2, 0.05])
def test_a_centred_square_shrinks_about_the_centre_and_its_ink_scales_like_the_area(scale):
    square = centred_square()
    out = shrink_digits(square, scale)
    assert out.sum().item() == pytest.approx(square.sum().item() * scale ** 2, rel=0.02)
    coords = torch.arange(28.0)
    weights = out[0, 0]
    centre_row = (weights.sum(1) * coords).sum() / weights.sum()
    centre_col = (weights.sum(0) * coords).sum() / weights.sum()
    assert centre_row.item() == pytest.approx(13.5, abs=0.05) and centre_col.item() == pytest.approx(13.5, abs=0.05)


@pytest.mark.parametrize("column", [12, 13, 14, 15])
def test_a_thin_stroke_keeps_its_ink_wherever_it_lies(column):
    # a one-pixel vertical line: point sampling every fourth pixel (plain grid_sample at scale 0.25) would
    # keep all of it or none of it depending on the column; the anti-aliased filter keeps a quarter
    line = torch.zeros(1, 1, 28, 28)
    line[..., 4:24, column] = 1.0
    out = shrink_digits(line, 0.25)
    assert out.sum().item() == pytest.approx(line.sum().item() * 0.25 ** 2, rel=0.01)
    assert (out[0, 0] > 0).any(1).sum().item() >= 5                   # still a vertical stroke, 20/4 rows long


def test_per_image_scales_match_one_image_at_a_time():
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    scales = torch.tensor([1.0, 0.6, 0.3])
    together = shrink_digits(x, scales)
    for i, s in enumerate(scales.tolist()):
        torch.testing.assert_close(together[i:i + 1], shrink_digits(x[i:i + 1], s))
    assert torch.equal(together[0], x[0])
    nearly_one = shrink_digits(x, 1 - 1e-6)                               # continuous at scale 1
    assert (nearly_one - x).abs().max() < 1e-4


@pytest.mark.parametrize("scale", [0, 1.5, float("nan"), -0.2, torch.tensor([0.5, 0.0]), torch.tensor([0.5]), "big"])
def test_bad_scales_are_rejected_by_name(scale):
    with pytest.raises(ValueError, match="scale"):
        shrink_digits(torch.rand(2, 1, 28, 28), scale)


def test_shrink_confidence_falls_off_smoothly_from_sure_to_uniform():
    assert float(shrink_confidence(1.0)) == 1.0 and float(shrink_confidence(0.6)) == 1.0
    assert float(shrink_confidence(0.2)) == 0.0 and float(shrink_confidence(0.05)) == 0.0
    assert float(shrink_confidence(0.4)) == pytest.approx(0.5)
    grid = torch.linspace(0.001, 1.0, 2000)
    t = shrink_confidence(grid)
    assert t.shape == grid.shape and (t.diff() >= 0).all()
    assert t.diff().max() <= (grid[1] - grid[0]).item() / 0.4 + 1e-5     # no cliff: slope at most 1/(full − none)
    assert float(shrink_confidence(0.5, full=0.8, none=0.4)) == pytest.approx(0.25)
    for kwargs, name in (({"full": 0.2, "none": 0.6}, "none"), ({"full": 1.2}, "full")):
        with pytest.raises(ValueError, match=name):
            shrink_confidence(0.5, **kwargs)


# --------------------------------------------------------------------------- mosaics

def flat_digits(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Image i is the constant (i + 1) / (n + 1), so a cell of a mosaic tells which image fills it."""
    levels = (torch.arange(n, dtype=torch.float32) + 1) / (n + 1)
    return levels[:, None, None, None].expand(n, 1, 28, 28).clone(), torch.arange(n) % 10


@pytest.mark.parametrize("tiles", [2, 3, 4])
def test_mosaic_labels_are_the_cell_counts_times_the_shrink_confidence(tiles):
    x, y = flat_digits(12)
    images, q = mosaic(x, y, tiles=tiles, generator=torch.Generator().manual_seed(0))
    assert images.shape == x.shape and images.min() >= 0 and images.max() <= 1
    assert q.shape == (12, 10)
    torch.testing.assert_close(q.sum(1), torch.ones(12))
    t = float(shrink_confidence(1 / tiles))
    centres = [int((2 * k + 1) * 28 / (2 * tiles)) for k in range(tiles)]
    for i in range(12):
        shown = [round(images[i, 0, r, c].item() * 13) - 1 for r in centres for c in centres]
        counts = torch.bincount(y[shown], minlength=10).float()
        torch.testing.assert_close(q[i], t * counts / tiles ** 2 + (1 - t) / 10)


def test_mosaic_of_one_digit_is_that_digit_with_three_quarters_confidence_and_follows_its_generator():
    x = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    images, q = mosaic(x, torch.tensor([3]), tiles=2)
    expected = torch.full((10,), 0.025)
    expected[3] += 0.75
    torch.testing.assert_close(q[0], expected)
    torch.testing.assert_close(images[0, :, :14, :14], shrink_digits(x, 0.5)[0, :, 7:21, 7:21])
    x, y = flat_digits(10)
    a = mosaic(x, y, generator=torch.Generator().manual_seed(5))
    b = mosaic(x, y, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert mosaic(x, y, count=3)[0].shape == (3, 1, 28, 28)


@pytest.mark.parametrize("kwargs, name", [({"tiles": 1}, "tiles"), ({"tiles": 2.0}, "tiles"),
                                          ({"num_classes": 5}, "y"), ({"count": 0}, "count")])
def test_bad_mosaic_arguments_are_rejected_by_name(kwargs, name):
    x, y = flat_digits(10)
    with pytest.raises(ValueError, match=name):
        mosaic(x, y, **kwargs)


# --------------------------------------------------------------------------- the training objective

def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 16), nn.ReLU(), nn.Linear(16, 10))


def mnist_like(n: int = 16, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_soft_cross_entropy_with_one_hot_labels_is_the_cross_entropy():
    logits, y = torch.randn(6, 10), torch.randint(0, 10, (6,))
    torch.testing.assert_close(soft_cross_entropy(logits, F.one_hot(y, 10).float()), F.cross_entropy(logits, y))
    with pytest.raises(ValueError, match="soft_labels"):
        soft_cross_entropy(logits, torch.full((6, 10), 0.5))
    with pytest.raises(ValueError, match="soft_labels"):
        soft_cross_entropy(logits, torch.ones(6, 9) / 9)


def test_augmented_loss_is_a_finite_scalar_with_a_gradient_and_reproducible():
    model, (x, y) = tiny_model(), mnist_like()
    torch.manual_seed(0)
    loss = cohen_augmented_loss(model, x, y)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    torch.manual_seed(0)
    assert torch.equal(cohen_augmented_loss(model, x, y), loss.detach())
    torch.manual_seed(1)
    assert not torch.equal(cohen_augmented_loss(model, x, y), loss.detach())
    clean = cohen_augmented_loss(model, x, y, shrink_fraction=0.0, mosaic_fraction=0.0)
    torch.testing.assert_close(clean, F.cross_entropy(model(x), y))


def test_augmented_batch_holds_the_requested_numbers_of_each_kind(monkeypatch):
    model, (x, y) = tiny_model(), mnist_like(8)
    seen = []
    original = model.forward
    monkeypatch.setattr(model, "forward", lambda inp: (seen.append(inp.detach()), original(inp))[1])
    torch.manual_seed(0)
    cohen_augmented_loss(model, x, y, shrink_fraction=0.5, mosaic_fraction=0.25)
    (batch,) = seen
    assert batch.shape == x.shape and batch.min() >= 0 and batch.max() <= 1
    unchanged = (batch == x).flatten(1).all(1)
    assert unchanged.sum() == 2
    # a shrunk digit is black near the border of its image, while these random "digits" are not
    border = torch.ones(28, 28, dtype=torch.bool)
    border[3:25, 3:25] = False
    dark_border = batch[:, 0][:, border].max(1).values < 0.3
    assert (dark_border & ~unchanged).sum() >= 1


@pytest.mark.parametrize("kwargs, name", [
    ({"shrink_fraction": 1.2}, "shrink_fraction"), ({"mosaic_fraction": -0.1}, "mosaic_fraction"),
    ({"shrink_fraction": 0.6, "mosaic_fraction": 0.6}, "at most 1"), ({"tiles": 1}, "tiles"),
    ({"min_scale": 0.0}, "min_scale"), ({"min_scale": float("nan")}, "min_scale"),
    ({"shrink_fraction": True}, "shrink_fraction"),
])
def test_bad_augmentation_settings_are_rejected_by_name(kwargs, name):
    model, (x, y) = tiny_model(), mnist_like()
    with pytest.raises(ValueError, match=name):
        cohen_augmented_loss(model, x, y, **kwargs)


def test_the_objective_trains_a_toy_through_the_recipe_reproducibly(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVEX_HOME", str(tmp_path))
    x, y = mnist_like(48)
    loss_fn = functools.partial(cohen_augmented_loss, shrink_fraction=0.25, mosaic_fraction=0.25)
    train = functools.partial(trained, "tiny-cohen", tiny_model, (x, y), epochs=1, lr=1e-2, batch_size=16,
                              loss_fn=loss_fn, verbose=False)
    a = train()
    for p in (tmp_path / "models").glob("*.pt"):
        p.unlink()
    b = train()
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
