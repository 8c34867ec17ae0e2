"""advex.verify: the bounds are sound, CROWN is never looser than IBP, the exact verifier agrees with search."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

from advex.attacks import pgd
from advex.verify import (LipschitzMLP, affine_relu_form, certified_l2_radius, crown_bounds, crown_margin_bounds,
                          input_box, interval_bounds, interval_margin_bounds, lipschitz_bound, lipschitz_margin_loss,
                          verified_by_crown, verified_by_ibp, verified_by_lipschitz, verify_exactly)

TOLERANCE = 1e-5   # the model runs in float32, the bounds in float64


def mlp(seed: int, widths=(12, 10, 8, 5), input_shape=(1, 3, 4)) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Flatten()]
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1]).eval()


def conv_net(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 3, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(3, 4, 2), nn.ReLU(),
                         nn.Sequential(nn.Flatten(), nn.Linear(4 * 2 * 2, 6)), nn.ReLU(), nn.Linear(6, 4)).eval()


def points_in_ball(x: torch.Tensor, eps: float, count: int, seed: int) -> torch.Tensor:
    """Uniform points and corners of the ε-ball ∩ [0, 1] around one input (the corners are where bounds are tight)."""
    generator = torch.Generator().manual_seed(seed)
    lower, upper = input_box(x.unsqueeze(0), eps)
    u = torch.rand(count, *x.shape, generator=generator)
    u[: count // 2] = u[: count // 2].round()   # half of them at corners
    return lower + u * (upper - lower)


NETS = {"mlp": (mlp, (1, 3, 4)), "conv": (conv_net, (1, 6, 6))}


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), eps=st.floats(0.0, 0.4), kind=st.sampled_from(sorted(NETS)),
       intermediate=st.sampled_from(["crown", "ibp"]))
def test_bounds_contain_true_logits_and_crown_within_ibp(seed, eps, kind, intermediate):
    build, shape = NETS[kind]
    model = build(seed)
    x = torch.rand(3, *shape, generator=torch.Generator().manual_seed(seed))
    ibp_lower, ibp_upper = interval_bounds(model, x.double(), eps)
    crown_lower, crown_upper = crown_bounds(model, x, eps, intermediate=intermediate)
    assert (crown_lower >= ibp_lower - 1e-12).all() and (crown_upper <= ibp_upper + 1e-12).all()
    assert (crown_lower <= crown_upper + 1e-12).all()
    for i in range(len(x)):
        with torch.no_grad():
            logits = model(points_in_ball(x[i], eps, 2000, seed + i)).double()
        assert (logits >= crown_lower[i] - TOLERANCE).all() and (logits <= crown_upper[i] + TOLERANCE).all()


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), eps=st.floats(0.0, 0.4), kind=st.sampled_from(sorted(NETS)),
       intermediate=st.sampled_from(["crown", "ibp"]))
def test_margin_bounds_are_sound_and_crown_never_looser(seed, eps, kind, intermediate):
    build, shape = NETS[kind]
    model = build(seed)
    x = torch.rand(3, *shape, generator=torch.Generator().manual_seed(seed + 1))
    y = torch.randint(0, 4, (3,), generator=torch.Generator().manual_seed(seed))
    ibp = interval_margin_bounds(model, x.double(), y, eps)
    crown = crown_margin_bounds(model, x, y, eps, intermediate=intermediate)
    assert (crown >= ibp - 1e-12).all()
    for i in range(len(x)):
        with torch.no_grad():
            logits = model(points_in_ball(x[i], eps, 2000, seed + i)).double()
        margins = logits[:, y[i]:y[i] + 1] - logits
        assert (margins >= crown[i] - TOLERANCE).all()
    # a certificate implies the clean prediction, and CROWN certifies whatever IBP does
    assert (verified_by_crown(model, x, y, eps) >= verified_by_ibp(model, x, y, eps)).all()


def test_bounds_at_zero_radius_are_the_logits():
    model = mlp(3)
    x = torch.rand(5, 1, 3, 4, generator=torch.Generator().manual_seed(0)).double()
    lower, upper = crown_bounds(model, x, 0.0)
    logits = model.double()(x)
    assert torch.allclose(lower, logits) and torch.allclose(upper, logits)


def test_affine_relu_form_computes_the_network():
    model = conv_net(1)
    x = torch.rand(7, 1, 6, 6, generator=torch.Generator().manual_seed(2))
    form = affine_relu_form(model, (1, 6, 6))
    logits, pre = form.forward(x.flatten(1))
    assert torch.allclose(logits, model(x).double(), atol=1e-5)
    assert len(pre) == 3 and form.widths == [27, 16, 6, 4]


def test_a_verified_digit_survives_pgd():
    model = mlp(5)
    x = torch.rand(40, 1, 3, 4, generator=torch.Generator().manual_seed(5))
    y = model(x).argmax(1)
    eps = 0.05
    proved = verified_by_crown(model, x, y, eps)
    assert proved.any(), "the test needs some proved digits"
    x_adv = pgd(model, x, y, eps, steps=50, restarts=5, seed=0)
    assert (model(x_adv).argmax(1)[proved] == y[proved]).all()


def test_exact_verification_agrees_with_attacks_and_checks_its_counterexamples():
    model = mlp(11)
    x = torch.rand(12, 1, 3, 4, generator=torch.Generator().manual_seed(11))
    y = model(x).argmax(1)
    verdicts = {"robust": 0, "counterexample": 0}
    for i in range(len(x)):
        for eps in (0.02, 0.3):
            result = verify_exactly(model, x[i], int(y[i]), eps, time_limit=20)
            assert result.status in verdicts
            verdicts[result.status] += 1
            if result.status == "robust":
                x_adv = pgd(model, x[i:i + 1], y[i:i + 1], eps, steps=50, restarts=5, seed=i)
                assert model(x_adv).argmax(1).item() == y[i].item()
                # exact is at least as tight as the linear bounds
                margins = crown_margin_bounds(model, x[i:i + 1], y[i:i + 1], eps)[0]
                others = [j for j in range(len(margins)) if j != y[i]]
                assert result.min_margin_lower >= margins[others].min().item() - 1e-6
            else:
                witness = result.counterexample
                assert witness.shape == x[i].shape
                assert (witness - x[i]).abs().max() <= eps + 1e-7 and witness.min() >= 0 and witness.max() <= 1
                assert model(witness.unsqueeze(0)).argmax(1).item() != y[i].item()
                assert not verified_by_crown(model, x[i:i + 1], y[i:i + 1], eps).item()
    assert verdicts["robust"] and verdicts["counterexample"], verdicts


def test_exact_verification_agrees_with_exhaustive_search_in_two_dimensions():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    grid = torch.stack(torch.meshgrid(torch.linspace(0, 1, 401), torch.linspace(0, 1, 401), indexing="ij"), -1).reshape(-1, 2)
    with torch.no_grad():
        labels_on_grid = model(grid).argmax(1)
    checked = {"robust": 0, "counterexample": 0}
    for k, eps in enumerate((0.03, 0.1, 0.25) * 4):
        x = torch.rand(2, generator=torch.Generator().manual_seed(k))
        y = int(model(x.unsqueeze(0)).argmax(1))
        result = verify_exactly(model, x, y, eps)
        in_ball = ((grid - x).abs().max(1).values <= eps)
        flipped = (labels_on_grid[in_ball] != y).any().item()
        if result.status == "robust":
            assert not flipped
        else:
            assert result.status == "counterexample"
            assert model(result.counterexample.unsqueeze(0)).argmax(1).item() != y
        checked[result.status] += 1
    assert checked["robust"] and checked["counterexample"], checked


def test_lipschitz_bound_holds_and_certified_radii_are_safe():
    torch.manual_seed(0)
    model = LipschitzMLP(hidden=(16, 16), in_features=12, num_classes=4).eval()
    x = torch.rand(200, 12, generator=torch.Generator().manual_seed(1))
    lipschitz = lipschitz_bound(model).item()
    assert lipschitz <= 1 + 1e-6
    delta = 0.1 * torch.randn(200, 12, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        change = (model(x + delta) - model(x)).norm(dim=1).double()
    assert (change <= lipschitz * delta.norm(dim=1).double() + 1e-6).all()
    with torch.no_grad():
        y = model(x).argmax(1)
    radius = certified_l2_radius(model, x, y)
    assert (radius > 0).all()
    # points on the sphere just inside the radius keep their label (in the plane, not the box: the bound holds anywhere)
    direction = torch.randn(200, 50, 12, generator=torch.Generator().manual_seed(3))
    direction = direction / direction.norm(dim=2, keepdim=True)
    points = x[:, None] + 0.999 * radius.float()[:, None, None] * direction
    with torch.no_grad():
        assert (model(points.reshape(-1, 12)).argmax(1).reshape(200, 50) == y[:, None]).all()
    assert torch.equal(verified_by_lipschitz(model, x, y, 0.0), radius > 0)


def test_lipschitz_layers_reuse_their_normalised_weights_only_while_the_weights_are_unchanged():
    torch.manual_seed(0)
    model = LipschitzMLP(hidden=(8,), in_features=6, num_classes=3)
    layer = model.layers[0]
    with torch.no_grad():
        layer.raw_weight.mul_(5.0)             # a spectral norm above 1, so the normalisation does something
        first = layer.weight()
        assert layer.weight() is first         # no new SVD while the weights stand still
        assert torch.allclose(first, layer._normalised())
        layer.raw_weight.mul_(2.0)             # an in-place update, as an optimiser step makes
        assert layer.weight() is not first
        assert torch.allclose(layer.weight(), layer._normalised())
    # with gradients wanted for the parameters the norm is differentiated through, never taken from the cache
    loss = model(torch.rand(4, 6)).sum()
    loss.backward()
    assert layer.raw_weight.grad is not None and layer.raw_weight.grad.abs().sum() > 0
    model.load_state_dict(LipschitzMLP(hidden=(8,), in_features=6, num_classes=3).state_dict())
    with torch.no_grad():
        assert torch.allclose(layer.weight(), layer._normalised())


def test_training_divides_by_a_power_iteration_estimate_that_approaches_the_exact_norm_from_below():
    torch.manual_seed(0)
    model = LipschitzMLP(hidden=(20,), in_features=30, num_classes=5).train()
    layer = model.layers[0]
    exact = torch.linalg.matrix_norm(layer.raw_weight.detach(), ord=2).item()
    estimates = [layer.estimated_norm(iterate=True).item() for _ in range(30)]   # 10 power steps each
    assert all(e <= exact * (1 + 1e-6) for e in estimates), "u·Vv with unit u, v never exceeds σ"
    assert estimates[-1] >= 0.99 * exact
    # a training step differentiates through the estimate, not through an SVD, and moves the power vector
    model = LipschitzMLP(hidden=(20,), in_features=30, num_classes=5).train()
    layer = model.layers[0]
    before = layer.power_vector.clone()
    loss = lipschitz_margin_loss(model, torch.rand(8, 30), torch.randint(0, 5, (8,)), eps=0.1)
    loss.backward()
    assert layer.raw_weight.grad is not None and not torch.equal(before, layer.power_vector)


@pytest.mark.parametrize("call, message", [
    (lambda: interval_bounds(nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2)), torch.rand(1, 1, 6, 6), 0.1), "model"),
    (lambda: interval_bounds(nn.Sequential(nn.Flatten(), nn.Linear(4, 2), nn.ReLU()), torch.rand(1, 1, 2, 2), 0.1), "ReLU"),
    (lambda: interval_bounds(mlp(0), torch.rand(1, 1, 3, 4), -0.1), "eps"),
    (lambda: crown_bounds(mlp(0), torch.rand(1, 1, 3, 4), float("nan")), "eps"),
    (lambda: crown_bounds(mlp(0), 2 * torch.ones(1, 1, 3, 4), 0.1), "x"),
    (lambda: interval_margin_bounds(mlp(0), torch.rand(2, 1, 3, 4), torch.tensor([0]), 0.1), "y"),
    (lambda: crown_margin_bounds(mlp(0), torch.rand(1, 1, 3, 4), torch.tensor([7]), 0.1), "y"),
    (lambda: verify_exactly(mlp(0), torch.rand(1, 3, 4), 9, 0.1), "y"),
    (lambda: verify_exactly(mlp(0), torch.rand(1, 3, 4), 0, 0.1, time_limit=0), "time_limit"),
    (lambda: verify_exactly(mlp(0), torch.rand(1, 3, 4), 0, -1.0), "eps"),
    (lambda: LipschitzMLP(hidden=()), "hidden"),
    (lambda: crown_bounds(mlp(0), torch.rand(1, 1, 3, 4), 0.1, intermediate="lp"), "intermediate"),
    (lambda: lipschitz_bound(mlp(0)), "LipschitzMLP"),
])
def test_bad_arguments_raise_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
