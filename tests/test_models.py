"""The chapter-4 MNIST models: shapes, the maxout unit, dropout, row-by-row reading, training through the cache."""
from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from advex.losses import sigmoid_loss
from advex.models import mnist as models
from advex.models.mnist import Maxout, MaxoutMLP, RowRNN, build_model, mnist_classifier

torch.set_num_threads(1)


@pytest.mark.parametrize("architecture", sorted(models.ARCHITECTURES))
def test_every_architecture_maps_mnist_batches_to_ten_logits(architecture):
    torch.manual_seed(0)
    model = build_model(architecture).eval()
    x = torch.rand(5, 1, 28, 28)
    logits = model(x)
    assert logits.shape == (5, 10) and torch.isfinite(logits).all()
    assert torch.allclose(model(x[:2]), logits[:2], atol=1e-5), "examples must not interact"


def test_maxout_takes_the_max_over_pieces():
    torch.manual_seed(0)
    unit = Maxout(6, 4, pieces=3)
    x = torch.randn(2, 6)
    pieces = unit.linear(x).view(2, 4, 3)
    assert torch.equal(unit(x), pieces.max(-1).values)


def test_dropout_is_random_in_training_and_off_in_eval():
    torch.manual_seed(0)
    model, x = MaxoutMLP(hidden=16, pieces=2), torch.rand(3, 1, 28, 28)
    assert not torch.equal(model.train()(x), model(x))
    assert torch.equal(model.eval()(x), model(x))


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_row_rnn_reads_rows_in_order(cell):
    torch.manual_seed(0)
    model, x = RowRNN(cell, hidden=8).eval(), torch.rand(2, 1, 28, 28)
    flipped = x.flip(2)  # same rows, opposite order: an order-blind model could not tell
    assert not torch.allclose(model(x), model(flipped))


def test_sigmoid_loss_is_one_vs_rest_binary_cross_entropy():
    torch.manual_seed(0)
    model, x, y = build_model("softmax"), torch.rand(4, 1, 28, 28), torch.tensor([0, 3, 9, 3])
    with torch.no_grad():
        model.linear.weight.normal_()
    expected = F.binary_cross_entropy_with_logits(model(x), F.one_hot(y, 10).float(), reduction="none").sum(1).mean()
    assert torch.allclose(sigmoid_loss(model, x, y), expected)


@pytest.mark.parametrize("call, message", [
    (lambda: build_model("resnet"), "architecture must be one of"),
    (lambda: RowRNN("rnn"), "cell must be 'gru' or 'lstm'"),
    (lambda: mnist_classifier("cnn", outputs="tanh"), "outputs must be 'softmax' or 'sigmoid'"),
    (lambda: mnist_classifier("cnn", momentum=0.9), "unknown training settings"),
    (lambda: mnist_classifier("cnn", train_size=0), "train_size must be an integer >= 1"),
])
def test_bad_arguments_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_mnist_classifier_trains_once_then_loads_from_the_cache(tmp_path, monkeypatch):
    from advex.paths import data_dir

    if not (data_dir() / "mnist.npz").exists():
        pytest.skip("MNIST asset not fetched (python -m advex.assets fetch)")
    (tmp_path / "data").symlink_to(data_dir())
    monkeypatch.setenv("ADVEX_HOME", str(tmp_path))
    settings = dict(train_size=512, epochs=1, verbose=False)
    first = mnist_classifier("softmax", **settings)
    assert len(list((tmp_path / "models").glob("mnist-softmax-*.pt"))) == 1
    again = mnist_classifier("softmax", **settings)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
    assert not again.training
