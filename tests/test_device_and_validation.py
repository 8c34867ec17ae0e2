"""Device choice (CPU fallback, override) and the shared argument checks."""
import numpy as np
import pytest
import torch

import advex
from advex import validation


def test_cpu_fallback_when_cuda_is_absent(monkeypatch):
    monkeypatch.delenv("ADVEX_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert advex.get_device() == torch.device("cpu")
    assert advex.describe_device().startswith("cpu")


def test_cuda_chosen_when_present(monkeypatch):
    monkeypatch.delenv("ADVEX_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert advex.get_device() == torch.device("cuda")


def test_environment_override(monkeypatch):
    monkeypatch.setenv("ADVEX_DEVICE", "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert advex.get_device() == torch.device("cpu")
    monkeypatch.setenv("ADVEX_DEVICE", "banana")
    with pytest.raises(ValueError, match="ADVEX_DEVICE='banana'"):
        advex.get_device()
    monkeypatch.setenv("ADVEX_DEVICE", "cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available"):
        advex.get_device()


def test_seeding_reproduces_and_rejects_bad_seeds():
    advex.seed_everything(3)
    a = torch.rand(3), np.random.rand(2)
    advex.seed_everything(3)
    b = torch.rand(3), np.random.rand(2)
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    for bad in (-1, 1.5, "0", True):
        with pytest.raises(ValueError, match="seed must be a non-negative integer"):
            advex.seed_everything(bad)


@pytest.mark.parametrize("eps, match", [(-0.1, ">= 0"), (float("nan"), "finite"), (float("inf"), "finite"), ("0.1", "real number"), (None, "real number")])
def test_check_eps(eps, match):
    with pytest.raises(ValueError, match=f"eps must .*{match}|eps must be a {match}"):
        validation.check_eps(eps)


def test_check_eps_accepts_numbers():
    assert validation.check_eps(0) == 0.0
    assert validation.check_eps(np.float32(0.25)) == 0.25
    assert validation.check_eps(torch.tensor(0.5)) == 0.5


def test_check_images():
    validation.check_images(torch.rand(2, 1, 4, 4))
    with pytest.raises(ValueError, match=r"x must lie in \[0.0, 1.0\]"):
        validation.check_images(torch.rand(2, 3) * 255)
    with pytest.raises(ValueError, match="x contains NaN"):
        validation.check_images(torch.tensor([0.5, float("nan")]))
    with pytest.raises(ValueError, match="floating-point"):
        validation.check_images(torch.zeros(2, dtype=torch.uint8))
    with pytest.raises(ValueError, match="torch.Tensor"):
        validation.check_images(np.zeros(3))


def test_check_labels_and_shapes():
    validation.check_labels(torch.tensor([0, 9]), 10, batch_size=2)
    with pytest.raises(ValueError, match=r"y must hold class indices in \[0, 9\]"):
        validation.check_labels(torch.tensor([0, 10]), 10)
    with pytest.raises(ValueError, match="2 labels but the batch has 3"):
        validation.check_labels(torch.tensor([0, 1]), 10, batch_size=3)
    validation.check_labels(torch.tensor([0, 12]), None)
    with pytest.raises(ValueError, match="y must hold non-negative class indices"):
        validation.check_labels(torch.tensor([-1, 2]), None)
    with pytest.raises(ValueError, match="one-dimensional"):
        validation.check_labels(torch.zeros(2, 2, dtype=torch.long), 10)
    with pytest.raises(ValueError, match=r"x must have shape \(any, 1, 28, 28\)"):
        validation.check_shape(torch.zeros(2, 28, 28), (None, 1, 28, 28), "x")


@pytest.mark.parametrize("norm, expected", [("inf", "inf"), (np.inf, "inf"), ("Linf", "inf"), (2, "2"), ("l2", "2")])
def test_check_norm(norm, expected):
    assert validation.check_norm(norm) == expected


def test_check_norm_rejects_unknown():
    with pytest.raises(ValueError, match="norm must be one of"):
        validation.check_norm(1)
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        validation.check_positive_int(0, "steps")


def test_probing_a_training_model_for_its_class_count_changes_nothing():
    from torch import nn

    from advex.attacks.core import num_classes_of

    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2 * 4 * 4, 7)).train()
    before = model[1].running_mean.clone()
    assert num_classes_of(model, torch.rand(3, 1, 6, 6)) == 7
    assert torch.equal(model[1].running_mean, before) and model.training


def test_input_gradient_moves_its_inputs_to_the_model_and_answers_on_the_device_of_x():
    # chapters 4 and 5 ask for the gradient of a GPU model at CPU images; the meta device stands in for the GPU
    # on the way in (the gradient's values cannot come back from meta, so its device is checked, not its values)
    from torch import nn

    from advex.attacks.core import input_gradient

    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    x, y = torch.rand(5, 1, 2, 2), torch.tensor([0, 1, 2, 0, 1])
    expected = input_gradient(model, x, y)
    assert expected.device == x.device and expected.shape == x.shape
    model.to("meta")
    grad = input_gradient(model, x.to("meta"), y)          # labels on the CPU, model and images on meta
    assert grad.device.type == "meta" and grad.shape == x.shape


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_input_gradient_of_a_cuda_model_at_cpu_images_is_the_cpu_gradient():
    from torch import nn

    from advex.attacks.core import input_gradient

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    x, y = torch.rand(5, 1, 2, 2), torch.tensor([0, 1, 2, 0, 1])
    expected = input_gradient(model, x, y)
    grad = input_gradient(model.cuda(), x, y)
    assert grad.device == x.device
    torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-6)
