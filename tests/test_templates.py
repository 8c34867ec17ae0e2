"""Templates: linear templates (advex.theory.templates), local templates and template addition
(advex.attacks.templates), flip-size search and training sanity checks (advex.evaluate, advex.train)."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from advex.attacks import add_template, fgsm_direction, follow_local_template, local_templates, unit_max
from advex.evaluate import mean_loss, median_flip_size, minimal_flip_size
from advex.theory.templates import linear_templates, neighbour_correlation
from advex.train import sgd_loss_curve


def linear_model(seed: int = 0, pixels: int = 16, classes: int = 3) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(pixels, classes)).eval()


def images(n: int = 8, seed: int = 1, shape=(1, 4, 4)) -> torch.Tensor:
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed))


def no_parameter_grads(model: nn.Module) -> bool:
    return all(p.grad is None for p in model.parameters())


# --------------------------------------------------------------------------- linear templates

def test_linear_templates_are_the_weight_rows_as_images():
    model = linear_model()
    templates = linear_templates(model, (1, 4, 4))
    assert templates.shape == (3, 1, 4, 4)
    assert torch.equal(templates.flatten(1), model[1].weight.detach())
    x = images(1)
    scores = model(x)[0] - model[1].bias
    assert torch.allclose(scores, (templates * x).flatten(1).sum(1), atol=1e-6)


def test_linear_templates_rejects_bad_models_and_shapes():
    with pytest.raises(ValueError, match="exactly one nn.Linear"):
        linear_templates(nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Linear(8, 3)), (1, 4, 4))
    with pytest.raises(ValueError, match="image_shape"):
        linear_templates(linear_model(), (1, 5, 5))


def test_neighbour_correlation_tells_noise_from_smooth_and_ignores_scale():
    noise = torch.randn(4, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    smooth = nn.functional.avg_pool2d(noise, 7, stride=1, padding=3, count_include_pad=False)
    r_noise, r_smooth = neighbour_correlation(noise), neighbour_correlation(smooth)
    assert r_noise.abs().max() < 0.05
    assert r_smooth.min() > 0.8
    assert torch.allclose(neighbour_correlation(smooth * 1e-4), r_smooth, atol=1e-5)
    ramp = torch.arange(16.0).view(1, 4, 4)
    assert neighbour_correlation(ramp).item() > 0.9
    checkerboard = (torch.arange(4).view(4, 1) + torch.arange(4)).remainder(2).float().view(1, 4, 4)
    assert neighbour_correlation(checkerboard).item() == pytest.approx(-1.0, abs=1e-6)


def test_neighbour_correlation_rejects_constant_and_tiny_templates():
    with pytest.raises(ValueError, match="constant"):
        neighbour_correlation(torch.ones(2, 5, 5))
    with pytest.raises(ValueError, match="2×2"):
        neighbour_correlation(torch.ones(2, 1, 5))
    with pytest.raises(ValueError, match="shape"):
        neighbour_correlation(torch.ones(5, 5))


# --------------------------------------------------------------------------- template addition

def test_unit_max_makes_each_largest_entry_one():
    d = torch.tensor([[[-4.0, 2.0]], [[0.5, 0.25]]])
    assert torch.equal(unit_max(d).flatten(1).abs().amax(1), torch.ones(2))


@pytest.mark.parametrize("alpha", [0.0, 0.05, 0.3, 2.0])
def test_add_template_stays_in_box_and_alpha_ball_without_mutating(alpha):
    model = linear_model()
    x = images()
    before = x.clone()
    template = linear_templates(model, (1, 4, 4))[2]
    x_adv = add_template(x, template, alpha)
    assert torch.equal(x, before)
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert (x_adv - x).abs().max() <= alpha + 1e-6


def test_add_template_raises_the_target_score_of_a_linear_model():
    model = linear_model()
    x = torch.full((4, 1, 4, 4), 0.5)  # mid-grey: no clipping for small alpha
    template = linear_templates(model, (1, 4, 4))[1]
    gain = model(add_template(x, template, 0.2))[:, 1] - model(x)[:, 1]
    expected = 0.2 * template.square().sum() / template.abs().max()
    assert torch.allclose(gain, expected.expand(4), atol=1e-5)


def test_add_template_rejects_bad_arguments():
    x = images()
    with pytest.raises(ValueError, match="alpha"):
        add_template(x, torch.ones(1, 4, 4), -0.1)
    with pytest.raises(ValueError, match="template"):
        add_template(x, torch.ones(1, 3, 3), 0.1)
    with pytest.raises(ValueError, match=r"\[0.0, 1.0\]"):
        add_template(x * 2, torch.ones(1, 4, 4), 0.1)


# --------------------------------------------------------------------------- local templates

def test_local_template_of_a_linear_model_is_its_weight_row():
    model = linear_model().train()
    x = images(5)
    grads = local_templates(model, x, torch.tensor([0, 1, 2, 1, 0]))
    expected = model[1].weight.detach()[[0, 1, 2, 1, 0]].view(5, 1, 4, 4)
    assert torch.allclose(grads, expected, atol=1e-6)
    assert model.training, "the model's mode must be restored"
    assert no_parameter_grads(model)
    assert all(p.requires_grad for p in model.parameters())


def test_local_templates_of_a_deep_model_match_finite_differences():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.Tanh(), nn.Linear(12, 3)).double()
    x = images(1).double()
    grad = local_templates(model, x, 2)
    h = 1e-6
    bump = torch.zeros_like(x)
    bump[0, 0, 1, 2] = h
    numeric = (model(x + bump)[0, 2] - model(x - bump)[0, 2]) / (2 * h)
    assert grad[0, 0, 1, 2].item() == pytest.approx(numeric.item(), rel=1e-5)


def test_local_templates_reject_bad_classes():
    with pytest.raises(ValueError, match="classes"):
        local_templates(linear_model(), images(2), 7)
    with pytest.raises(ValueError, match="classes"):
        local_templates(linear_model(), images(2), torch.tensor([0, 1, 2]))


@pytest.mark.parametrize("steps", [1, 4])
def test_follow_local_template_reaches_target_within_alpha(steps):
    model = linear_model()
    x = torch.full((6, 1, 4, 4), 0.5)
    x_adv = follow_local_template(model, x, 2, alpha=0.5, steps=steps)
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert (x_adv - x).abs().max() <= 0.5 + 1e-6
    assert model(x_adv)[:, 2].min() > model(x)[:, 2].max()
    assert no_parameter_grads(model)
    with pytest.raises(ValueError, match="steps"):
        follow_local_template(model, x, 2, alpha=0.5, steps=0)


def test_one_step_of_a_linear_model_equals_add_template():
    model = linear_model()
    x = images()
    template = linear_templates(model, (1, 4, 4))[1]
    assert torch.allclose(follow_local_template(model, x, 1, 0.1), add_template(x, template, 0.1), atol=1e-6)


# --------------------------------------------------------------------------- FGSM direction

def test_fgsm_direction_is_the_sign_of_the_loss_gradient():
    model = linear_model()
    x, y = images(), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    direction = fgsm_direction(model, x, y)
    assert set(direction.unique().tolist()) <= {-1.0, 0.0, 1.0}
    # for a linear softmax model ∇ₓ J = Σ_c (p_c − 1[c = y]) w_c
    probs = model(x).softmax(1)
    onehot = nn.functional.one_hot(y, 3).float()
    analytic = ((probs - onehot) @ model[1].weight).view_as(x)
    assert torch.equal(direction, analytic.sign())



# --------------------------------------------------------------------------- minimal flip size

def threshold_model(bias: float) -> nn.Sequential:
    """Two classes; class 1 wins exactly when the pixel sum exceeds ``bias``."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[0.0] * 4, [1.0] * 4]))
        model[1].bias.copy_(torch.tensor([0.0, -bias]))
    return model.eval()


def test_minimal_flip_size_finds_the_analytic_threshold_on_the_grid():
    model = threshold_model(2.0)
    x = torch.tensor([[0.1, 0.2, 0.3, 0.2], [0.4, 0.4, 0.4, 0.4], [0.0, 0.0, 0.0, 0.0]]).view(3, 1, 2, 2)
    y = torch.zeros(3, dtype=torch.int64)
    # pixel sum + 4·s > 2  <=>  s > (2 − sum)/4: thresholds 0.3, 0.1, 0.5
    grid = [i / 100 for i in range(0, 101)]
    sizes = minimal_flip_size(model, x, y, torch.ones_like(x), grid)
    assert torch.allclose(sizes, torch.tensor([0.31, 0.11, 0.51]), atol=1e-9)
    assert median_flip_size(sizes) == pytest.approx(0.31)


def test_minimal_flip_size_reports_inf_when_nothing_on_the_grid_flips():
    model = threshold_model(2.0)
    x = torch.zeros(2, 1, 2, 2)
    y = torch.zeros(2, dtype=torch.int64)
    sizes = minimal_flip_size(model, x, y, torch.ones_like(x), [0.0, 0.1, 0.2])
    assert torch.isinf(sizes).all()
    targeted = minimal_flip_size(model, x, y, torch.ones_like(x), [0.0, 0.6], target=torch.ones(2, dtype=torch.int64))
    assert torch.equal(targeted, torch.tensor([0.6, 0.6]))


def test_minimal_flip_size_rejects_bad_grids_and_directions():
    model = threshold_model(2.0)
    x, y = torch.zeros(2, 1, 2, 2), torch.zeros(2, dtype=torch.int64)
    with pytest.raises(ValueError, match="sizes"):
        minimal_flip_size(model, x, y, torch.ones_like(x), [0.2, 0.1])
    with pytest.raises(ValueError, match="direction"):
        minimal_flip_size(model, x, y, torch.ones(2, 4), [0.1])


# --------------------------------------------------------------------------- training sanity

def test_mean_loss_at_zero_weights_is_log_of_class_count():
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 7))
    nn.init.zeros_(model[1].weight)
    nn.init.zeros_(model[1].bias)
    x, y = images(20), torch.randint(7, (20,), generator=torch.Generator().manual_seed(0))
    assert mean_loss(model, x, y) == pytest.approx(math.log(7), rel=1e-6)


def test_sgd_loss_curve_flags_good_and_bad_learning_rates():
    torch.manual_seed(0)
    centres = torch.rand(3, 1, 4, 4)
    y = torch.arange(3).repeat(100)
    x = (centres[y] + 0.05 * torch.randn(300, 1, 4, 4)).clamp(0, 1)
    y[::5] = y[::5].roll(1)  # a fifth of the labels wrong: no model reaches zero loss

    def build():
        model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
        nn.init.normal_(model[1].weight, std=1e-4)
        nn.init.zeros_(model[1].bias)
        return model

    good = sgd_loss_curve(build, x, y, lr=0.5, steps=200, batch_size=32)
    assert len(good) == 201
    assert good[0] == pytest.approx(math.log(3), abs=0.01)
    assert sum(good[-20:]) / 20 < 0.8 * good[0]
    bad = sgd_loss_curve(build, x, y, lr=1e4, steps=50, batch_size=32)
    assert not sum(bad[-10:]) / 10 < 10 * good[0], "a huge learning rate must not look like training"


# --------------------------------------------------------------------------- on the real ImageNet network

@pytest.fixture(scope="module")
def mobilenet():
    from advex.data.assets import AssetError
    from advex.models.imagenet import load_mobilenet_v2

    try:
        return load_mobilenet_v2(device="cpu")
    except AssetError as err:
        pytest.skip(f"MobileNetV2 weights missing: {err}")


def test_goldfish_local_template_turns_the_cat_into_a_goldfish_within_alpha(mobilenet):
    from advex.data.photos import load_photo
    from advex.models.imagenet import class_index

    cat = load_photo("chelsea")[None]
    goldfish = class_index("goldfish")
    fooled = follow_local_template(mobilenet, cat, goldfish, alpha=0.05, steps=5)
    assert fooled.min() >= 0 and fooled.max() <= 1
    assert (fooled - cat).abs().max() <= 0.05 + 1e-6
    with torch.no_grad():
        assert mobilenet(cat).argmax(1).item() != goldfish
        assert mobilenet(fooled).argmax(1).item() == goldfish
    assert no_parameter_grads(mobilenet)
