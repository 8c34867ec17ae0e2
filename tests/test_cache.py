"""The model cache: trains once, reloads safely, recovers from corruption, writes atomically."""
import os

import pytest
import torch
from torch import nn

import advex
from advex import cache


def build():
    torch.manual_seed(0)
    return nn.Linear(3, 2)


class TrainCounter:
    def __init__(self):
        self.calls = 0

    def __call__(self, model):
        self.calls += 1
        with torch.no_grad():
            model.weight.fill_(float(self.calls))


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVEX_HOME", str(tmp_path))
    return tmp_path


def test_trains_once_then_loads(home):
    train = TrainCounter()
    first = advex.cached_model("lin", {"lr": 0.1, "seed": 0}, build, train)
    second = advex.cached_model("lin", {"lr": 0.1, "seed": 0}, build, train)
    assert train.calls == 1
    assert torch.equal(first.weight, second.weight)
    assert not second.training
    assert len(list((home / "models").glob("lin-*.pt"))) == 1


def test_key_changes_with_config_and_code(home):
    key = cache.cache_key("lin", {"lr": 0.1}, build)
    assert key != cache.cache_key("lin", {"lr": 0.2}, build)
    assert key != cache.cache_key("lin", {"lr": 0.1}, TrainCounter)
    assert key == cache.cache_key("lin", {"lr": 0.1}, build)


def test_key_changes_when_training_code_in_the_package_changes(home, monkeypatch):
    key = cache.cache_key("lin", {"lr": 0.1}, build)
    monkeypatch.setattr(cache, "_package_source_digest", lambda: "edited advex.linear")
    assert cache.cache_key("lin", {"lr": 0.1}, build) != key


def test_corrupted_entry_is_retrained_with_a_warning(home):
    train = TrainCounter()
    advex.cached_model("lin", {"seed": 1}, build, train)
    (entry,) = (home / "models").glob("lin-*.pt")
    entry.write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match="unreadable"):
        model = advex.cached_model("lin", {"seed": 1}, build, train)
    assert train.calls == 2
    assert torch.all(model.weight == 2.0)
    torch.load(entry, weights_only=True)  # the rewritten entry is valid again


def test_entry_with_wrong_shapes_is_retrained(home):
    train = TrainCounter()
    advex.cached_model("lin", {"seed": 2}, build, train)
    (entry,) = (home / "models").glob("lin-*.pt")
    torch.save({"model": {"weight": torch.zeros(5, 5)}}, entry)
    with pytest.warns(UserWarning):
        advex.cached_model("lin", {"seed": 2}, build, train)
    assert train.calls == 2


def test_atomic_write_leaves_no_partial_file(home, monkeypatch):
    target = home / "models" / "x.pt"

    def exploding_save(obj, handle):
        handle.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", exploding_save)
    with pytest.raises(OSError, match="disk full"):
        cache.atomic_torch_save({"a": 1}, target)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_entries_are_never_unpickled_as_arbitrary_objects(home):
    train = TrainCounter()
    advex.cached_model("lin", {"seed": 3}, build, train)
    (entry,) = (home / "models").glob("lin-*.pt")

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"model": Evil()}, entry)
    with pytest.warns(UserWarning, match="unreadable"):
        advex.cached_model("lin", {"seed": 3}, build, train)  # weights_only refuses, then retrains
    assert train.calls == 2


def test_config_must_be_a_dict(home):
    with pytest.raises(ValueError, match="config must be a dict"):
        advex.cached_model("lin", [1, 2], build, TrainCounter())
