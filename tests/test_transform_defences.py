"""Input-transformation defences (advex.defences.transforms), the adaptive attacks that break them (BPDA,
EOT), and the smoothness measurements of advex.smoothness (loss surfaces, Cohen's criterion)."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from advex.attacks import pgd
from advex.defences.transforms import (BitDepthReduction, ExpectationOverTransform, GaussianBlur, MajorityVote,
                                       RandomNoise, StraightThrough)
from advex.evaluate import accuracy
from advex.smoothness import confidence_slopes, loss_surface, true_class_probability

torch.set_num_threads(1)


class Linear2(nn.Module):
    """logits (s, −s) with s = w·x + b: class 0 when s > 0; its input gradient never vanishes."""

    def __init__(self, weight: torch.Tensor, bias: float):
        super().__init__()
        self.w = nn.Parameter(weight.flatten().clone())
        self.b = nn.Parameter(torch.tensor(float(bias)))

    def forward(self, x):
        s = x.flatten(1) @ self.w + self.b
        return torch.stack([s, -s], dim=1)


def planted(n: int = 16):
    """Mid-grey 4×4 images that the linear model calls class 0 with a small margin (s = 0.4)."""
    weight = torch.ones(16)
    model = Linear2(weight, bias=-16 * 0.5 + 0.4)
    return model, torch.full((n, 1, 4, 4), 0.5), torch.zeros(n, dtype=torch.long)


def test_bpda_breaks_a_quantising_defence_that_plain_pgd_cannot_move():
    model, x, y = planted()
    defence = BitDepthReduction(model, bits=2)           # levels 0, 1/3, 2/3, 1: 0.5 rounds to 2/3 (s > 0)
    assert accuracy(defence, x, y) == 1.0
    plain = pgd(defence, x, y, 0.3, steps=20, random_start=False)
    assert torch.equal(plain, x), "rounding has zero gradient: plain PGD never moves"
    assert accuracy(defence, plain, y) == 1.0
    adaptive = pgd(defence.attack_surrogate(), x, y, 0.3, steps=20, random_start=False)
    assert isinstance(defence.attack_surrogate(), StraightThrough)
    assert (adaptive - x).abs().max() <= 0.3 + 1e-6
    assert accuracy(defence, adaptive, y) == 0.0        # 0.2 rounds to 1/3: s = 16/3 − 7.6 < 0


def test_eot_breaks_a_noisy_vote_that_plain_pgd_cannot_move():
    model, x, y = planted()
    defence = MajorityVote(model, sigma=0.05, copies=9)
    torch.manual_seed(0)
    assert accuracy(defence, x, y) == 1.0
    plain = pgd(defence, x, y, 0.1, steps=10, random_start=False)
    assert torch.equal(plain, x), "votes are piecewise constant: plain PGD never moves"
    surrogate = defence.attack_surrogate(samples=8)
    assert isinstance(surrogate, ExpectationOverTransform) and isinstance(surrogate.model, RandomNoise)
    adaptive = pgd(surrogate, x, y, 0.1, steps=10, random_start=False)
    torch.manual_seed(1)
    assert accuracy(defence, adaptive, y) == 0.0


def test_straight_through_has_the_defences_values_and_the_identitys_gradient():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    defence = BitDepthReduction(model, bits=3)
    x = torch.rand(5, 1, 4, 4)
    bpda = StraightThrough(defence)
    assert torch.equal(bpda(x), defence(x))
    x_req = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(bpda(x_req)[:, 1].sum(), x_req)
    expected = model[1].weight[1].detach().view(1, 1, 4, 4).expand_as(x)
    assert torch.allclose(grad, expected)
    x_req = x.clone().requires_grad_(True)
    (masked,) = torch.autograd.grad(defence(x_req)[:, 1].sum(), x_req)
    assert torch.count_nonzero(masked) == 0


def test_bit_depth_levels():
    model = nn.Identity()
    x = torch.tensor([0.0, 0.2, 0.49, 0.51, 1.0])
    assert torch.equal(BitDepthReduction(model, bits=1).transform(x), torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0]))
    assert torch.allclose(BitDepthReduction(model, bits=8).transform(x) * 255, torch.round(x * 255))


def test_eot_is_a_log_probability_and_equals_log_softmax_for_a_deterministic_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 4))
    x = torch.rand(6, 1, 4, 4)
    eot = ExpectationOverTransform(model, samples=5)
    assert torch.allclose(eot(x), F.log_softmax(model(x), 1), atol=1e-6)
    noisy = ExpectationOverTransform(RandomNoise(model, sigma=0.2), samples=7)
    assert torch.allclose(noisy(x).exp().sum(1), torch.ones(6), atol=1e-5)


def test_majority_vote_counts_votes():
    class Threshold(nn.Module):   # class 1 when the first pixel is bright
        def forward(self, x):
            s = x.flatten(1)[:, 0] - 0.5
            return torch.stack([-s, s], 1)

    torch.manual_seed(0)
    vote = MajorityVote(Threshold(), sigma=0.01, copies=5)
    x = torch.stack([torch.zeros(1, 2, 2), torch.ones(1, 2, 2)])
    out = vote(x)
    assert out.argmax(1).tolist() == [0, 1]
    assert torch.allclose(out.exp().sum(1), torch.ones(2), atol=1e-4)


def test_blur_keeps_a_flat_interior_and_the_defences_run_under_attack_conventions():
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    blur = GaussianBlur(model, sigma=1.0)
    flat = torch.full((1, 1, 8, 8), 0.5)
    assert torch.allclose(blur.transform(flat)[..., 3:5, 3:5], flat[..., 3:5, 3:5], atol=1e-6)
    assert torch.allclose(blur.transform(torch.rand(2, 3, 8, 8)).sum(), blur.transform(torch.rand(2, 3, 8, 8)).sum(),
                          rtol=0.2)
    model.train()
    x, y = torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
    x_before = x.clone()
    for defence in (blur, BitDepthReduction(model, 2).attack_surrogate(), RandomNoise(model, 0.1).attack_surrogate(4)):
        pgd(defence, x, y, 0.1, steps=3)
        assert all(p.grad is None for p in model.parameters())
        assert model.training
    assert torch.equal(x, x_before)


@pytest.mark.parametrize("make, message", [
    (lambda m: GaussianBlur(m, sigma=0), "sigma"),
    (lambda m: GaussianBlur(m, sigma=float("nan")), "sigma"),
    (lambda m: BitDepthReduction(m, bits=0), "bits"),
    (lambda m: BitDepthReduction(m, bits=17), "bits"),
    (lambda m: RandomNoise(m, sigma=-1), "sigma"),
    (lambda m: MajorityVote(m, copies=0), "copies"),
    (lambda m: ExpectationOverTransform(m, samples=0), "samples"),
    (lambda m: StraightThrough(m), "defence"),
    (lambda m: GaussianBlur("not a model"), "model"),
])
def test_bad_arguments_name_themselves(make, message):
    with pytest.raises(ValueError, match=message):
        make(nn.Identity())


def test_loss_surface_centre_is_the_loss_at_x_and_bad_directions_fail():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x, d = torch.rand(1, 4, 4), torch.sign(torch.randn(1, 4, 4))
    surface = loss_surface(model, x, 2, d, torch.zeros_like(d), extent=0.1, points=5)
    assert surface.shape == (5, 5)
    assert math.isclose(surface[2, 2].item(), F.cross_entropy(model(x[None]), torch.tensor([2])).item(), rel_tol=1e-5)
    assert torch.allclose(surface[0], surface[4])        # the second direction is zero
    with pytest.raises(ValueError, match="second"):
        loss_surface(model, x, 2, d, torch.zeros(16), extent=0.1)


def test_confidence_slopes_respect_the_known_lipschitz_bound_of_a_linear_model():
    # p(class 0) = σ(2 s), s = w·x + b: its L2 Lipschitz constant is max σ' · 2 ‖w‖ = ‖w‖ / 2
    torch.manual_seed(0)
    weight = 0.3 * torch.randn(16)
    model = Linear2(weight, bias=0.0)
    x = torch.rand(20, 1, 4, 4)
    y = model(x).argmax(1)
    slopes = confidence_slopes(model, x, y, [0.05, 0.5, 2.0], steps=10)
    assert slopes.shape == (20, 3)
    bound = weight.norm().item() / 2
    assert slopes.max() <= bound * (1 + 1e-4)
    assert slopes.max() >= 0.5 * bound          # an attack along −w finds most of the steepest slope
    assert torch.allclose(true_class_probability(model, x, y), F.softmax(model(x), 1).max(1).values.detach())
    with pytest.raises(ValueError, match="radii"):
        confidence_slopes(model, x, y, [0.0])


def test_blur_follows_the_device_of_its_input_when_the_model_moved_after_it_was_built(monkeypatch):
    # chapter 6 on a GPU: the defence wrapped a model that was moved afterwards, so the blur's own kernel stayed
    # behind.  The meta device stands in for the GPU (it does not itself refuse a CPU weight, so the convolution
    # is watched).
    convolve = F.conv2d

    def same_device_conv2d(x, weight, *args, **kwargs):
        assert weight.device == x.device, f"kernel on {weight.device}, image on {x.device}"
        return convolve(x, weight, *args, **kwargs)

    monkeypatch.setattr(F, "conv2d", same_device_conv2d)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    blur = GaussianBlur(model, sigma=1.0)
    model.to("meta")
    out = blur(torch.rand(3, 1, 4, 4, device="meta"))
    assert out.device.type == "meta" and out.shape == (3, 2)
