"""The conventions of advex.attacks and advex.evaluate, checked for every public attack and evaluator.

Each one must: give every sub-module its own mode back (a frozen BatchNorm inside a model that is
training stays frozen), leave BatchNorm statistics, parameter flags and gradients alone, work inside
``torch.no_grad()``, return tensors with no autograd history (even for an ``x`` that requires grad),
never modify ``x``, accept labels of any integer dtype and reject float or boolean labels by name.
"""
from __future__ import annotations

import dataclasses
import functools
import inspect

import matplotlib
import pytest
import torch
from torch import nn

import advex.attacks
from advex import modes
from advex.attacks import (apgd, bim, cw_l2, deepfool, fgsm, fgsm_direction, follow_local_template, greedy_pixels,
                           lbfgs_attack, local_templates, one_pixel_exhaustive, pgd, pgd_with_stats, square_attack,
                           square_attack_with_stats)
from advex.attacks.decision import hop_skip_jump, hop_skip_jump_with_stats
from advex.attacks.estimation import nes_attack, nes_attack_with_stats
from advex.attacks.evolution import pixel_attack, pixel_attack_with_stats
from advex.evaluate import (accuracy, correct, error_and_confidence, mean_loss, minimal_flip_size, pixels_to_fool,
                            predict, robust_accuracy)

torch.set_num_threads(1)

CLASSES = 3

#: every public function that takes a model, called as f(model, x, labels); the value is the name of the labels argument
CALLS = {
    "fgsm": (lambda m, x, y: fgsm(m, x, y, 0.1), "y"),
    "fgsm_targeted": (lambda m, x, y: fgsm(m, x, y, 0.1, targeted=True), "y"),
    "fgsm_direction": (lambda m, x, y: fgsm_direction(m, x, y), "y"),
    "bim": (lambda m, x, y: bim(m, x, y, 0.1, steps=3), "y"),
    "pgd_inf": (lambda m, x, y: pgd(m, x, y, 0.1, steps=3, restarts=2), "y"),
    "pgd_2": (lambda m, x, y: pgd(m, x, y, 0.5, norm="2", steps=3), "y"),
    "pgd_targeted": (lambda m, x, y: pgd(m, x, y, 0.1, steps=3, targeted=True), "y"),
    "pgd_early_stop": (lambda m, x, y: pgd(m, x, y, 0.3, steps=8, early_stop=True), "y"),
    "pgd_with_stats": (lambda m, x, y: pgd_with_stats(m, x, y, 0.1, steps=3), "y"),
    "apgd_ce": (lambda m, x, y: apgd(m, x, y, 0.1, steps=4, restarts=2), "y"),
    "apgd_dlr_2": (lambda m, x, y: apgd(m, x, y, 0.5, norm="2", steps=4, loss="dlr"), "y"),
    "square_attack": (lambda m, x, y: square_attack(m, x, y, 0.1, queries=20), "y"),
    "square_attack_with_stats": (lambda m, x, y: square_attack_with_stats(m, x, y, 0.3, queries=20), "y"),
    "square_attack_2": (lambda m, x, y: square_attack(m, x, y, 1.0, norm="2", queries=20), "y"),
    "nes_attack": (lambda m, x, y: nes_attack(m, x, y, 0.3, queries=30, samples=4), "y"),
    "nes_attack_2": (lambda m, x, y: nes_attack_with_stats(m, x, y, 1.0, norm="2", queries=30, samples=4), "y"),
    "pixel_attack": (lambda m, x, y: pixel_attack(m, x, y, pixels=2, population=6, iterations=3), "y"),
    "pixel_attack_with_stats": (lambda m, x, y: pixel_attack_with_stats(m, x, y, population=6,
                                                                        iterations=3, targeted=True), "y"),
    "hop_skip_jump": (lambda m, x, y: hop_skip_jump(m, x, y, queries=60, probes=4), "y"),
    "hop_skip_jump_with_stats": (lambda m, x, y: hop_skip_jump_with_stats(m, x, y, queries=60, probes=4), "y"),
    "deepfool": (lambda m, x, y: deepfool(m, x, y, steps=5), "y"),
    "deepfool_one_candidate": (lambda m, x, y: deepfool(m, x, y, steps=5, candidates=1), "y"),
    "lbfgs_attack": (lambda m, x, y: lbfgs_attack(m, x, y, search_steps=2, max_iter=5), "target"),
    "cw_l2": (lambda m, x, y: cw_l2(m, x, y, search_steps=2, steps=5), "y"),
    "cw_l2_targeted": (lambda m, x, y: cw_l2(m, x, y, targeted=True, search_steps=2, steps=5), "y"),
    "one_pixel_exhaustive": (lambda m, x, y: one_pixel_exhaustive(m, x, y), "y"),
    "greedy_pixels": (lambda m, x, y: greedy_pixels(m, x, y, max_pixels=2), "y"),
    "follow_local_template": (lambda m, x, y: follow_local_template(m, x, y, 0.1, steps=2), "target"),
    "local_templates": (lambda m, x, y: local_templates(m, x, y), "classes"),
    "predict": (lambda m, x, y: predict(m, x), None),
    "accuracy": (lambda m, x, y: accuracy(m, x, y), "labels"),
    "correct": (lambda m, x, y: correct(m, x, y), "labels"),
    "mean_loss": (lambda m, x, y: mean_loss(m, x, y), "labels"),
    "error_and_confidence": (lambda m, x, y: error_and_confidence(m, x, y, functools.partial(fgsm, eps=0.2)), "labels"),
    "robust_accuracy": (lambda m, x, y: robust_accuracy(m, x, y, 0.1, steps=3, batch_size=5), "y"),
    "robust_accuracy_plain": (lambda m, x, y: robust_accuracy(m, x, y, 0.1, steps=3, early_stop=False), "y"),
    "robust_accuracy_attacks": (lambda m, x, y: robust_accuracy(m, x, y, attacks=[functools.partial(fgsm, eps=0.1),
                                                                                 deepfool]), "y"),
    "minimal_flip_size": (lambda m, x, y: minimal_flip_size(m, x, y, torch.ones_like(x), [0.1, 0.2, 0.4]), "y"),
    "pixels_to_fool": (lambda m, x, y: pixels_to_fool(m, x, x.detach().clamp(0.2, 0.8), y), "y"),
}


def _default_call(attack):
    """attack(model, x, labels) with its defaults, ε = 0.1 where it needs one: how a new attack is tested before
    anyone writes it a cheaper entry in CALLS."""
    needs_eps = inspect.signature(attack).parameters.get("eps")
    if needs_eps is not None and needs_eps.default is inspect.Parameter.empty:
        return lambda m, x, y: attack(m, x, y, 0.1)
    return lambda m, x, y: attack(m, x, y)


#: every attack of advex.attacks.__all__ (those carrying the contract, :func:`advex.attacks.core.attack`)
ATTACKS = sorted(name for name in advex.attacks.__all__ if hasattr(getattr(advex.attacks, name), "inner"))
#: attacks whose conventions are checked elsewhere, and why
CHECKED_ELSEWHERE = {"apgd_targeted": "needs 4 classes and CLASSES is 3: tests/test_apgd_square.py"}
for _name in ATTACKS:   # an attack without an entry above is still tested, with its default settings
    if _name not in CHECKED_ELSEWHERE and not any(key == _name or key.startswith(_name + "_") for key in CALLS):
        _labels = list(inspect.signature(getattr(advex.attacks, _name)).parameters)[2]
        CALLS[_name] = (_default_call(getattr(advex.attacks, _name)), _labels)
LABELLED = sorted(name for name, (_, labels) in CALLS.items() if labels is not None)


def model_with_mixed_modes(seed: int = 0) -> nn.Module:
    """A model in training mode holding a frozen (eval-mode) BatchNorm, a training BatchNorm, Dropout and a frozen layer."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.BatchNorm1d(12), nn.ReLU(), nn.Dropout(0.5),
                          nn.Linear(12, 12), nn.BatchNorm1d(12), nn.ReLU(), nn.Linear(12, CLASSES))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
        model.train()(torch.rand(64, 1, 4, 4))  # non-trivial running statistics
    model[2].eval()                              # frozen BN: an attack that calls model.train(True) unfreezes it
    model[1].weight.requires_grad_(False)        # a frozen layer must stay frozen
    return model


def data(n: int = 8, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand((n, 1, 4, 4), generator=generator), torch.randint(0, CLASSES, (n,), generator=generator)


def tensors(result) -> list[torch.Tensor]:
    """Every output of a call as a list of tensors (attacks return tensors or tuples, evaluators numbers or records)."""
    if isinstance(result, torch.Tensor):
        return [result]
    if dataclasses.is_dataclass(result):
        result = [getattr(result, f.name) for f in dataclasses.fields(result) if f.name != "seconds"]
    if isinstance(result, (tuple, list)):
        return [t for item in result for t in tensors(item)]
    return [torch.tensor(float(result))]


def assert_same(first, second) -> None:
    a, b = tensors(first), tensors(second)
    assert len(a) == len(b)
    for s, t in zip(a, b):
        assert torch.equal(s.cpu(), t.cpu()) or (s.isnan().all() and t.isnan().all()), (s, t)


def state(model: nn.Module):
    return ([m.training for m in model.modules()], [p.requires_grad for p in model.parameters()],
            {k: v.clone() for k, v in model.state_dict().items()})


@pytest.mark.parametrize("name", sorted(CALLS))
def test_every_sub_module_keeps_its_mode_statistics_and_flags(name):
    model, (x, y) = model_with_mixed_modes(), data()
    modes_before, flags_before, state_before = state(model)
    CALLS[name][0](model, x, y)
    modes_after, flags_after, state_after = state(model)
    assert modes_after == modes_before, "a sub-module came back in another mode (e.g. the frozen BN unfrozen)"
    assert flags_after == flags_before, "requires_grad of a parameter not restored"
    assert all(torch.equal(state_before[k], state_after[k]) for k in state_before), "BN statistics or weights changed"
    assert all(p.grad is None for p in model.parameters()), "gradient left on parameters"


@pytest.mark.parametrize("name", sorted(CALLS))
def test_works_inside_no_grad_and_gives_the_same_result(name):
    model, (x, y) = model_with_mixed_modes(), data()
    expected = CALLS[name][0](model, x, y)
    with torch.no_grad():
        assert_same(CALLS[name][0](model, x, y), expected)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_no_autograd_history_and_input_untouched(name):
    model, (x, y) = model_with_mixed_modes(), data()
    x = x.requires_grad_(True)
    x_before = x.detach().clone()
    for t in tensors(CALLS[name][0](model, x, y)):
        assert not t.requires_grad and t.grad_fn is None
    assert torch.equal(x.detach(), x_before) and x.grad is None
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("dtype", [torch.int32, torch.int16, torch.uint8, torch.int8])
@pytest.mark.parametrize("name", LABELLED)
def test_labels_of_any_integer_dtype_give_the_int64_result(name, dtype):
    model, (x, y) = model_with_mixed_modes(), data()
    assert_same(CALLS[name][0](model, x, y.to(dtype)), CALLS[name][0](model, x, y))


@pytest.mark.parametrize("bad", [lambda y: y.float(), lambda y: y.double(), lambda y: y > 0], ids=["float", "double", "bool"])
@pytest.mark.parametrize("name", LABELLED)
def test_float_or_bool_labels_are_rejected_by_name(name, bad):
    model, (x, y) = model_with_mixed_modes(), data()
    call, labels = CALLS[name]
    with pytest.raises(ValueError, match=f"^{labels} must be an integer torch.Tensor"):
        call(model, x, bad(y))


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA"))])
@pytest.mark.parametrize("name", sorted(CALLS))
def test_inputs_on_the_cpu_work_for_a_model_elsewhere_and_results_come_back_there(name, device):
    model, (x, y) = model_with_mixed_modes().to(device), data()
    for t in tensors(CALLS[name][0](model, x, y)):
        assert t.device == x.device


def always_wrong_model() -> nn.Module:
    """Predicts class 0 whatever the input: with labels in {1, 2} no example needs attacking."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, CLASSES))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].bias.copy_(torch.tensor([10.0, 0.0, 0.0]))
    return model


@pytest.mark.parametrize("early_stop", [True, False])
@pytest.mark.parametrize("kwargs, message", [
    (dict(eps=-1, norm="banana"), "eps must be >= 0"),
    (dict(eps=0.1, norm="banana"), "norm must be one of"),
    (dict(eps=0.1, steps=0), "steps must be an integer >= 1"),
    (dict(eps=0.1, steps=2.5), "steps must be an integer >= 1"),
    (dict(eps=0.1, step_size=-1.0), "step_size must be >= 0"),
    (dict(eps=0.1, restarts=0), "restarts must be an integer >= 1"),
    (dict(eps=0.1, attacks=[]), "attacks must be a callable"),
])
def test_robust_accuracy_rejects_bad_arguments_before_looking_at_the_data(kwargs, message, early_stop):
    x, y = data()
    y = 1 + y % 2
    with pytest.raises(ValueError, match=message):
        robust_accuracy(always_wrong_model(), x, y, early_stop=early_stop, **kwargs)


# --------------------------------------------------------------------------- cuDNN and recurrent models

class RecordsCudnn(nn.Module):
    """A tiny GRU classifier that records whether cuDNN was enabled during each forward pass."""

    def __init__(self):
        super().__init__()
        self.rnn, self.head, self.seen = nn.GRU(4, 5, batch_first=True), nn.Linear(5, CLASSES), []

    def forward(self, x):
        self.seen.append(torch.backends.cudnn.enabled)
        out, _ = self.rnn(x.reshape(len(x), 4, 4))
        return self.head(out[:, -1])


def test_attacks_switch_cudnn_off_for_a_recurrent_model_on_cuda(monkeypatch):
    """cuDNN cannot backpropagate through an RNN in eval mode: attack_mode turns it off (simulated on the CPU)."""
    monkeypatch.setattr(modes, "_has_cuda_rnn", lambda model: True)
    model, (x, y) = RecordsCudnn(), data()
    with torch.backends.cudnn.flags(enabled=True):
        with modes.attack_mode(model):
            assert not torch.backends.cudnn.enabled
        assert torch.backends.cudnn.enabled
        model.seen.clear()
        fgsm(model, x, y, 0.1)
        assert model.seen and not model.seen[-1], "the attack's own forward/backward ran with cuDNN on"
        assert torch.backends.cudnn.enabled
        with pytest.raises(RuntimeError, match="boom"), modes.attack_mode(model):
            raise RuntimeError("boom")
        assert torch.backends.cudnn.enabled, "restored even when the attack fails"


def test_cudnn_stays_on_for_models_without_a_recurrent_layer_on_cuda():
    with torch.backends.cudnn.flags(enabled=True):
        for model in (RecordsCudnn(), model_with_mixed_modes()):  # an RNN on the CPU; no RNN at all
            with modes.attack_mode(model):
                assert torch.backends.cudnn.enabled


# --------------------------------------------------------------------------- plotting helpers

@pytest.mark.parametrize("shape", [(4, 4), (1, 4, 4), (3, 4, 4)])
def test_image_helpers_accept_tensors_that_require_grad(shape):
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from advex.viz import show_image, show_signed

    image = torch.rand(shape, requires_grad=True)
    signed = (image - 0.5) * 2  # has autograd history too
    figure, (left, right) = plt.subplots(1, 2)
    try:
        drawn = show_image(left, image).get_array()
        assert drawn.shape[:2] == (4, 4)
        if len(shape) == 2 or shape[0] == 1:
            assert abs(float(drawn.max()) - image.max().item()) < 1e-6
            artist = show_signed(right, signed, colorbar=True, label="δ")
            assert artist.get_clim() == pytest.approx((-signed.abs().max().item(), signed.abs().max().item()))
    finally:
        plt.close(figure)


def test_the_attacks_are_taken_from_advex_attacks_all():
    # every attack of the package carries the contract and so is in ATTACKS, which every test above covers
    assert {"fgsm", "pgd", "apgd", "square_attack", "hop_skip_jump", "pixel_attack", "deepfool", "cw_l2",
            "one_pixel_exhaustive", "nes_attack", "lbfgs_attack"} <= set(ATTACKS)
    for name in ATTACKS:
        assert name in CHECKED_ELSEWHERE or any(key == name or key.startswith(name + "_") for key in CALLS), name


INNER_CALLS = {
    "fgsm": ((0.1,), {}),
    "pgd": ((0.1,), dict(steps=3, restarts=2)),
    "pgd_with_stats": ((0.1,), dict(steps=3, early_stop=True)),
    "bim": ((0.1,), dict(steps=3)),
    "apgd": ((0.1,), dict(steps=4)),
    "square_attack_with_stats": ((0.3,), dict(queries=20)),
    "deepfool": ((), dict(steps=5)),
}


@pytest.mark.parametrize("name", sorted(INNER_CALLS))
def test_the_inner_function_computes_what_the_checked_attack_does(name):
    # .inner skips the checks and the moves and nothing else: on checked inputs, in attack mode, it gives the
    # same tensors as the decorated attack
    model, (x, y) = model_with_mixed_modes(), data()
    attack, (args, kwargs) = getattr(advex.attacks, name), INNER_CALLS[name]
    expected = attack(model, x, y.to(torch.int32), *args, **kwargs)
    with modes.attack_mode(model), torch.no_grad():
        got = attack.inner(model, x, y, *args, **kwargs)
    assert_same(got, expected)
