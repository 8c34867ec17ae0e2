"""The evaluation sanity checks (advex.sanity) and the models of the evaluation chapter (RBF network, ensemble).

The checklist must pass on an honest model, a linear classifier with known weights on a separable
synthetic task (its exact robust accuracy is known: an example of contrast c falls exactly when 2ε ≥ c),
and fail, with the right check and a message naming the problem, on planted gradient masking:
inputs rounded to a few levels, a backward pass that returns zero, logits scaled until softmax saturates.
"""
from __future__ import annotations

import functools

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from advex.attacks import fgsm, pgd
from advex.attacks.core import logit_margins
from advex.evaluate import accuracy, robust_accuracy
from advex.models import Ensemble, RBFNetwork, rbf_confidence, rbf_loss
from advex.models.rbf import class_means
from advex.modes import eval_mode
from advex.sanity import (SanityReport, accuracy_vs_eps, attack_converged, gradient_free_not_stronger,
                          iterative_beats_single_step, monotone_in_eps, more_effort_does_not_help, reaches_zero,
                          run_sanity_checks, white_box_beats_transfer)
from advex.train import train_classifier

torch.set_num_threads(1)

EPS = 0.15
N = 200


# --------------------------------------------------------------------------- a task whose robustness is known

def contrast_data(n: int = N, seed: int = 0):
    """4×4 images: class 0 has a bright left half and a dark right half, class 1 the opposite.

    The contrast c between the halves is uniform in [0.1, 0.6]; an L∞ perturbation of size ε can close
    a gap of 2ε, so the linear model below is robust at ε exactly when c > 2ε (60 % at ε = 0.15).
    """
    generator = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=generator)
    contrast = 0.1 + 0.5 * torch.rand(n, 1, generator=generator)
    side = (1 - 2 * y.float())[:, None]                       # +1: left bright, −1: right bright
    halves = torch.cat([(0.5 + side * contrast / 2).expand(n, 8), (0.5 - side * contrast / 2).expand(n, 8)], 1)
    noise = 0.02 * (torch.rand(n, 16, generator=generator) - 0.5)
    return (halves + noise).clamp(0, 1).view(n, 1, 4, 4), y


def linear_model() -> nn.Sequential:
    """Logit of class 0: Σ left − Σ right; class 1 the negative (the Bayes direction of the task)."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    w = torch.cat([torch.ones(8), -torch.ones(8)])
    with torch.no_grad():
        model[1].weight.copy_(torch.stack([w, -w]))
        model[1].bias.zero_()
    return model


def sign_search(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, queries: int = 300,
                seed: int = 0) -> torch.Tensor:
    """A gradient-free attack: hill-climb the logit margin over the corners x + ε·s of the L∞ ball.

    Start at random signs s, flip a random tenth of them per query and keep the flip when the margin
    does not rise (ties accepted, to walk across the plateaus of a quantised model); the model is only
    ever evaluated, never differentiated (the Square attack without its squares).
    """
    generator = torch.Generator().manual_seed(seed)

    def margin(signs):
        return logit_margins(model((x + eps * signs).clamp(0, 1)), y)

    with torch.no_grad(), eval_mode(model):
        signs = torch.randint(0, 2, x.shape, generator=generator).to(x.dtype) * 2 - 1
        best = margin(signs)
        for _ in range(queries):
            proposal = torch.where(torch.rand(x.shape, generator=generator) < 0.1, -signs, signs)
            candidate = margin(proposal)
            keep = candidate <= best
            signs = torch.where(keep.view(-1, *[1] * (x.dim() - 1)), proposal, signs)
            best = torch.where(keep, candidate, best)
    return (x + eps * signs).clamp(0, 1)


GRADIENT_FREE = {"sign search": functools.partial(sign_search, eps=EPS)}


# --------------------------------------------------------------------------- planted gradient masking

class Quantise(nn.Module):
    """Round every pixel to ``levels`` + 1 grey levels: the output is piecewise constant, its gradient zero."""

    def __init__(self, levels: int):
        super().__init__()
        self.levels = levels

    def forward(self, x):
        return torch.round(x * self.levels) / self.levels


class _ZeroBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return torch.zeros_like(grad)


class ZeroGradient(nn.Module):
    """Identity forward, zero backward: a model behind it is unchanged but gives gradient attacks nothing."""

    def forward(self, x):
        return _ZeroBackward.apply(x)


class Scale(nn.Module):
    """Multiply the logits: same predictions, but a softmax so saturated that the cross-entropy gradient is 0."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


MASKED = {
    "quantised input": lambda: nn.Sequential(Quantise(8), linear_model()),
    "zero backward": lambda: nn.Sequential(ZeroGradient(), linear_model()),
    "saturated softmax": lambda: nn.Sequential(linear_model(), Scale(1e4)),
}


def checks(model, x, y, **kwargs) -> SanityReport:
    """The checklist at ε = 0.15, the sign search as gradient-free attack, 10-step PGD (enough for a linear model)."""
    kwargs = {"gradient_free": GRADIENT_FREE, "steps": 10, **kwargs}
    return run_sanity_checks(model, x, y, EPS, **kwargs)


# --------------------------------------------------------------------------- the checklist on models

def test_checklist_passes_on_an_honest_model():
    x, y = contrast_data()
    report = checks(linear_model(), x, y)
    assert report.passed, report.table()
    assert report.accuracies["clean"] == 1.0
    assert report.accuracies[f"pgd ε={EPS:g}, 10 steps"] == pytest.approx(0.6, abs=0.1)   # c > 2ε for 60 % of them
    assert report["reaches_zero"].values["accuracy"] == 0.0
    curve = report["monotone_in_eps"].values["accuracy"]
    assert curve[0] == 1.0 and curve[-1] == 0.0 and curve == sorted(curve, reverse=True)


@pytest.mark.parametrize("name", sorted(MASKED))
def test_checklist_flags_planted_gradient_masking(name):
    x, y = contrast_data()
    model = MASKED[name]()
    report = checks(model, x, y)
    assert not report.passed
    assert report.accuracies["clean"] >= 0.95, "the masking must leave the predictions alone"
    free = report["gradient_free_not_stronger"]
    assert not free.passed and "gradient masking" in free.detail
    assert free.values["white_box"] - free.values["gradient_free"] > 0.2
    zero = report["reaches_zero"]
    assert not zero.passed and "masked" in zero.detail and zero.values["accuracy"] > 0.2


def test_transfer_from_the_unmasked_model_beats_the_masked_white_box():
    x, y = contrast_data()
    surrogate = linear_model()
    transfer = {"pgd on surrogate": lambda model, xb, yb: pgd(surrogate, xb, yb, EPS, steps=10)}
    report = checks(nn.Sequential(ZeroGradient(), linear_model()), x, y, transfer=transfer)
    check = report["white_box_beats_transfer"]
    assert not check.passed and "masked" in check.detail
    assert check.values["transfer"] == pytest.approx(0.6, abs=0.1)


def test_checklist_with_apgd_and_the_square_attack():
    attacks = pytest.importorskip("advex.attacks")
    if not all(hasattr(attacks, name) for name in ("apgd", "square_attack")):
        pytest.skip("advex.attacks has no apgd / square_attack yet")
    x, y = contrast_data()
    kwargs = dict(white_box={"apgd-ce": functools.partial(attacks.apgd, eps=EPS, steps=20)},
                  gradient_free={"square": functools.partial(attacks.square_attack, eps=EPS, queries=300, seed=0)})
    assert checks(linear_model(), x, y, **kwargs).passed
    masked = checks(nn.Sequential(ZeroGradient(), linear_model()), x, y, **kwargs)
    assert not masked["gradient_free_not_stronger"].passed and not masked["reaches_zero"].passed


def test_checklist_reports_an_attack_that_had_not_converged():
    x, y = contrast_data()
    tiny_steps = lambda eps, *, steps, restarts: functools.partial(  # noqa: E731  (steps far too small to arrive)
        pgd, eps=eps, steps=steps, restarts=restarts, step_size=eps / 40, random_start=False)
    report = checks(linear_model(), x, y, make_pgd=tiny_steps)
    check = report["converged_in_steps"]
    assert not check.passed and "not converged" in check.detail
    assert check.values["base"] - check.values["more_effort"] > 0.1
    assert report["more_steps_do_not_help"].passed


def test_checklist_restores_the_model_mode_and_leaves_no_gradients():
    x, y = contrast_data(n=40)
    model = nn.Sequential(nn.Dropout(0.5), linear_model()).train()
    checks(model, x, y, eps_grid=[0.1])
    assert all(m.training for m in model.modules())
    assert all(p.grad is None and p.requires_grad for p in model.parameters())


def test_accuracy_vs_eps_is_the_robust_accuracy_at_each_budget():
    x, y = contrast_data()
    model, budgets = linear_model(), [0.0, 0.1, 0.2, 0.4]
    curve = accuracy_vs_eps(model, x, y, budgets, lambda eps: functools.partial(fgsm, eps=eps))
    expected = [robust_accuracy(model, x, y, attacks=functools.partial(fgsm, eps=eps)).robust_accuracy
                for eps in budgets]
    assert curve == expected and curve[0] == 1.0 and curve[-1] == 0.0


# --------------------------------------------------------------------------- the checks on numbers

def test_monotone_in_eps_flags_jumps_and_slow_creep():
    assert monotone_in_eps([1.0, 0.5, 0.51, 0.0]).passed
    jump = monotone_in_eps([1.0, 0.5, 0.7, 0.0], eps_values=[0, 0.1, 0.2, 0.3])
    assert not jump.passed and "rises with ε" in jump.detail and "ε = 0.2" in jump.detail
    assert jump.values["largest_rise"] == pytest.approx(0.2)
    creep = monotone_in_eps([0.5, 0.515, 0.53, 0.545])   # every step within tolerance, the whole not
    assert not creep.passed


def test_number_checks_pass_within_tolerance_and_fail_beyond_it():
    assert reaches_zero(0.01).passed and not reaches_zero(0.3, eps=0.5).passed
    assert "ε = 0.5" in reaches_zero(0.3, eps=0.5).detail
    assert more_effort_does_not_help(0.5, 0.51).passed and not more_effort_does_not_help(0.5, 0.6).passed
    assert attack_converged(0.5, 0.49).passed
    assert "not converged" in attack_converged(0.5, 0.3, effort="4 restarts").detail
    single = iterative_beats_single_step(iterative=0.5, single_step=0.3)
    assert not single.passed and "gradient masking" in single.detail
    assert iterative_beats_single_step(iterative=0.3, single_step=0.5).passed
    assert gradient_free_not_stronger(white_box=0.5, gradient_free=0.49).passed
    assert "gradient masking" in gradient_free_not_stronger(white_box=0.9, gradient_free=0.2).detail
    assert not white_box_beats_transfer(white_box=0.6, transfer=0.2).passed
    assert reaches_zero(0.3, tolerance=0.5).passed


def test_report_renders_as_markdown_and_looks_up_checks_by_name():
    x, y = contrast_data(n=40)
    report = checks(nn.Sequential(ZeroGradient(), linear_model()), x, y, eps_grid=[0.1])
    table = report.table().splitlines()
    assert table[0] == "| check | result | detail |" and len(table) == 2 + len(report.checks)
    assert [row["check"] for row in report.rows()] == [c.name for c in report.checks]
    assert "FAIL" in report.table() and "FAILED" in report._repr_markdown_()
    assert report.failed() and all(not c.passed for c in report.failed())
    with pytest.raises(KeyError, match="no check named"):
        report["nonexistent"]


@pytest.mark.parametrize("kwargs, message", [
    (dict(gradient_free={}), "gradient_free must hold at least one attack"),
    (dict(gradient_free=[sign_search]), "gradient_free must be a dict"),
    (dict(white_box={"fgsm": "not callable"}), "white_box must be a dict"),
    (dict(large_eps=0.1), r"large_eps must be > eps"),
    (dict(effort=1), "effort must be an integer >= 2"),
    (dict(steps=0), "steps must be an integer >= 1"),
    (dict(tolerance=2.0), "tolerance must be a fraction"),
    (dict(tolerance=-0.1), "tolerance must be >= 0"),
    (dict(eps_grid=[0.2, 0.1]), "eps_grid must be a non-empty, strictly increasing"),
])
def test_bad_arguments_raise_clear_errors(kwargs, message):
    x, y = contrast_data(n=8)
    with pytest.raises(ValueError, match=message):
        checks(linear_model(), x, y, **kwargs)


def test_check_functions_reject_bad_arguments():
    with pytest.raises(ValueError, match="eps_values must have one value per accuracy"):
        monotone_in_eps([1.0, 0.5], eps_values=[0.1])
    with pytest.raises(ValueError, match="accuracies must hold at least one value"):
        monotone_in_eps([])


# --------------------------------------------------------------------------- RBF network (Goodfellow et al. 2015, §7)

def naive_rbf_log_p(model: RBFNetwork, x: torch.Tensor) -> torch.Tensor:
    flat, out = x.flatten(1), torch.empty(len(x), model.num_classes, dtype=x.dtype)
    for i in range(len(x)):
        for c in range(model.num_classes):
            out[i, c] = -(model.precision[c] * (flat[i] - model.centres[c]) ** 2).sum()
    return out


def test_rbf_network_shapes_positive_precision_and_confidences():
    torch.manual_seed(0)
    model = RBFNetwork()
    x = torch.rand(5, 1, 28, 28)
    logits = model(x)
    assert logits.shape == (5, 10) and torch.isfinite(logits).all() and (logits <= 0).all()
    assert (model.precision > 0).all() and torch.allclose(model.precision, torch.full((10, 784), 1 / 784))
    confidence = rbf_confidence(logits)
    assert ((confidence > 0) & (confidence <= 1)).all()
    at_centre = rbf_confidence(model(model.centres[3].detach().view(1, 1, 28, 28)))
    assert at_centre[0, 3] == 1.0, "a unit fires with certainty at its own centre"
    assert torch.allclose(logits, naive_rbf_log_p(model, x), rtol=1e-5)


def test_rbf_precision_stays_positive_whatever_its_parameter():
    model = RBFNetwork(16, 3, precision=2.0)
    with torch.no_grad():
        model.log_precision.fill_(-50.0)
    assert (model.precision > 0).all()
    assert torch.allclose(RBFNetwork(16, 3, precision=2.0).precision, torch.full((3, 16), 2.0))


def test_rbf_loss_matches_the_naive_one_vs_rest_formula_and_has_finite_gradients():
    torch.manual_seed(0)
    model = RBFNetwork(16, 3, precision=0.5).double()
    x, y = torch.rand(6, 1, 4, 4, dtype=torch.float64), torch.tensor([0, 1, 2, 2, 1, 0])
    p = model(x).exp()
    others = 1 - F.one_hot(y, 3).double()
    naive = -(p.gather(1, y[:, None])[:, 0].log() + (others * (1 - p).log()).sum(1)).mean()
    assert torch.allclose(rbf_loss(model, x, y), naive)
    # on a wrong class's centre (p = 1 there: the naive formula is +∞) and far from every centre
    extreme = torch.cat([model.centres[1].detach().view(1, 1, 4, 4), torch.zeros(1, 1, 4, 4, dtype=torch.float64)])
    with torch.no_grad():
        model.log_precision[2].fill_(5.0)          # class 2's unit: exp(−Σ β d²) underflows to 0 far away
    loss = rbf_loss(model, extreme, torch.tensor([0, 2]))
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_rbf_network_trains_with_its_loss_and_works_with_attacks():
    x, y = contrast_data()
    model = RBFNetwork(16, 2, centres=class_means(x, y, 2) + 0.05)   # near the class means, off by a shift
    before = rbf_loss(model, x, y).item()
    train_classifier(model, x, y, epochs=20, lr=0.05, batch_size=50, loss_fn=rbf_loss)
    assert rbf_loss(model, x, y).item() < before
    assert accuracy(model, x, y) >= 0.95
    x_adv = fgsm(model, x, y, 0.4)
    assert robust_accuracy(model, x, y, attacks=functools.partial(fgsm, eps=0.4)).robust_accuracy < 0.5
    assert (x_adv - x).abs().max() <= 0.4 + 1e-6 and all(p.grad is None for p in model.parameters())


def test_class_means_and_centre_shapes():
    x, y = contrast_data(n=20)
    means = class_means(x, y, 2)
    assert means.shape == (2, 16) and torch.allclose(means[1], x[y == 1].flatten(1).mean(0))
    assert torch.equal(RBFNetwork(16, 2, centres=means.view(2, 1, 4, 4)).centres.detach(), means)


@pytest.mark.parametrize("call, message", [
    (lambda: RBFNetwork(0), "in_features must be an integer >= 1"),
    (lambda: RBFNetwork(16, 2, precision=0.0), "precision must be > 0"),
    (lambda: RBFNetwork(16, 2, centres=torch.zeros(3, 16)), r"centres must have shape \(2, 16\)"),
    (lambda: RBFNetwork(16, 2)(torch.rand(2, 1, 28, 28)), "x must hold 16 values per example"),
    (lambda: class_means(torch.rand(4, 16), torch.tensor([0, 0, 1, 1]), 3), "missing \\[2\\]"),
])
def test_rbf_bad_arguments_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --------------------------------------------------------------------------- ensemble (Goodfellow et al. 2015, §9)

def members(k: int = 3, seed: int = 0) -> list[nn.Module]:
    torch.manual_seed(seed)
    """k small MLPs with dropout (so eval mode matters) on 4×4 images, 3 classes."""
    return [nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 3))
            for _ in range(k)]


def test_ensemble_is_the_log_of_the_mean_member_probability():
    ensemble = Ensemble(members()).eval()
    x = torch.rand(7, 1, 4, 4)
    mean = torch.stack([F.softmax(ensemble.member(i)(x), 1) for i in range(3)]).mean(0)
    out = ensemble(x)
    assert torch.allclose(out, mean.log(), atol=1e-6)
    assert torch.equal(out.argmax(1), mean.argmax(1))
    assert torch.allclose(out.exp().sum(1), torch.ones(7)), "a distribution: its cross-entropy is the ensemble's loss"
    single = Ensemble([ensemble.member(0)])
    assert torch.allclose(single(x), F.log_softmax(ensemble.member(0)(x), 1), atol=1e-6)
    assert len(ensemble) == 3 and ensemble.member(2) is ensemble.members[2]


@pytest.mark.parametrize("attack", [
    lambda m, x, y: fgsm(m, x, y, 0.1),
    lambda m, x, y: pgd(m, x, y, 0.1, steps=5, restarts=2),
], ids=["fgsm", "pgd"])
def test_attacks_on_the_ensemble_follow_the_conventions(attack):
    ensemble = Ensemble(members()).train()
    ensemble.member(1)[1].weight.requires_grad_(False)
    x, y = torch.rand(8, 1, 4, 4), torch.randint(0, 3, (8,))
    x_adv = attack(ensemble, x, y)
    assert x_adv.shape == x.shape and (x_adv - x).abs().max() <= 0.1 + 1e-6 and not x_adv.requires_grad
    assert all(m.training for m in ensemble.modules()), "mode not restored"
    assert [p.requires_grad for p in ensemble.parameters()].count(False) == 1
    assert all(p.grad is None for p in ensemble.parameters())
    with eval_mode(ensemble), torch.no_grad():
        loss = lambda inputs: F.cross_entropy(ensemble(inputs), y)  # noqa: E731
        assert loss(x_adv) > loss(x), "the attack raises the ensemble's loss"


@pytest.mark.parametrize("bad, message", [
    ([], "members must be a non-empty list of nn.Module"),
    ([nn.Linear(2, 2), "model"], "members must be a non-empty list of nn.Module"),
    (nn.Linear(2, 2), "members must be a non-empty list of nn.Module, got Linear"),
])
def test_ensemble_rejects_bad_members(bad, message):
    with pytest.raises(ValueError, match=message):
        Ensemble(bad)


def test_ensemble_member_index_is_checked():
    with pytest.raises(ValueError, match=r"i must be an integer in \[0, 2\]"):
        Ensemble(members()).member(3)
