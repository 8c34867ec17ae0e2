"""The ImageNet classifier loads torchvision's weights strictly and classifies the bundled photos."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from advex.data.photos import PHOTOS, load_photo, preprocess
from advex.models.imagenet import MobileNetV2, class_index, imagenet_class_names, load_mobilenet_v2, top_k
from advex.data.assets import asset_path

DOMESTIC_CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.fixture(scope="module")
def model():
    return load_mobilenet_v2()


def test_weights_load_strictly():
    state = torch.load(asset_path("mobilenet_v2"), weights_only=True, map_location="cpu")
    net = MobileNetV2()
    assert set(net.state_dict()) == set(state) and len(state) == 314
    net.load_state_dict(state, strict=True)
    assert sum(p.numel() for p in net.parameters()) == 3_504_872
    assert sum(v.numel() for v in state.values()) == 3_539_036  # the "3.54 M", BN statistics included


def test_wrapper(model):
    assert not model.training
    assert all(key.startswith("model.") for key in model.state_dict())  # mean/std not persistent
    x = load_photo("coffee").unsqueeze(0).to(next(model.parameters()).device).requires_grad_(True)
    model(x)[0, class_index("espresso")].backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        model(torch.zeros(3, 224, 224))


def test_coffee_is_espresso_and_chelsea_a_cat(model):
    batch = torch.stack([load_photo("coffee"), load_photo("chelsea")])
    probs, indices, names = top_k(model, batch, k=5)
    assert probs.shape == indices.shape == (2, 5) and len(names) == 2
    assert names[0][0] == "espresso" and probs[0, 0] > 0.9
    assert indices[1, 0].item() in DOMESTIC_CATS
    assert torch.all(probs[:, :-1] >= probs[:, 1:])
    p, i, n = top_k(model, load_photo("coffee"), k=3)
    assert p.shape == (3,) and isinstance(n, list) and n[0] == "espresso"


def test_class_names_and_index():
    names = imagenet_class_names()
    assert len(names) == 1000 and names[1] == "goldfish" and names[388] == "giant panda"
    assert class_index("espresso") == class_index("ESPRESSO") == class_index(967) == 967
    assert class_index(np.int64(1)) == 1
    for bad, match in [("espreso", "did you mean"), (1000, r"\[0, 999\]"), (-1, r"\[0, 999\]"),
                       (True, "name_or_index"), (2.0, "name_or_index"), ("missile", "several classes")]:
        with pytest.raises(ValueError, match=match):
            class_index(bad)


@pytest.mark.parametrize("make", [
    lambda: np.random.default_rng(0).integers(0, 256, (300, 500, 3), dtype=np.uint8),
    lambda: np.random.default_rng(0).random((500, 240)),
    lambda: Image.new("RGBA", (260, 999), (255, 0, 0, 128)),
])
def test_preprocess_shape_and_range(make):
    x = preprocess(make())
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32
    assert 0 <= x.min() and x.max() <= 1


def test_preprocess_and_photo_errors():
    with pytest.raises(ValueError, match="float in"):
        preprocess(np.full((300, 300, 3), 2.0))
    with pytest.raises(ValueError, match="shape"):
        preprocess(np.zeros((300, 300, 5), dtype=np.uint8))
    with pytest.raises(ValueError, match="name must be one of"):
        load_photo("lena")
    assert set(PHOTOS) == {"chelsea", "coffee", "astronaut", "rocket", "grace_hopper"}
    assert load_photo("grace_hopper").shape == (3, 224, 224)


def test_top_k_runs_a_training_model_in_eval_mode_and_gives_its_modes_back():
    """top_k must not sample dropout (or use batch statistics), and each sub-module keeps its own mode."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 64), torch.nn.BatchNorm1d(64),
                                torch.nn.Dropout(0.5), torch.nn.Linear(64, 1000)).train()
    model[2].eval()  # a frozen BatchNorm inside a training model
    modes = [m.training for m in model.modules()]
    images = torch.rand(4, 3, 8, 8, requires_grad=True)
    first, second = top_k(model, images, k=5), top_k(model, images, k=5)
    assert [m.training for m in model.modules()] == modes
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1]) and first[2] == second[2]
    with torch.no_grad():
        expected = model.eval()(images).softmax(1).topk(5)
    assert torch.allclose(first[0], expected.values) and torch.equal(first[1], expected.indices)
    assert not first[0].requires_grad and first[0].device.type == "cpu"
