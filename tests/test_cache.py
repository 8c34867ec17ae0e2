"""The model cache: trains once, reloads safely, recovers from corruption, writes atomically."""
import functools
import os
import shutil
from pathlib import Path

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


_RACE = """
import pathlib, sys, time
import torch
from torch import nn
import advex

# start together: each process says it is ready and waits for the other (imports take seconds under load)
folder = pathlib.Path(sys.argv[1]).parent
(folder / f"ready-{sys.argv[2]}").touch()
while len(list(folder.glob("ready-*"))) < 2:
    time.sleep(0.05)

def build():
    torch.manual_seed(0)
    return nn.Linear(3, 2)

def train(model):
    with open(sys.argv[1], "a") as log:
        log.write("trained\\n")
    time.sleep(2.0)                    # long enough for the other process to find the entry missing
    with torch.no_grad():
        model.weight.fill_(7.0)

model = advex.cached_model("race", {"seed": 0}, build, train)
print(float(model.weight[0, 0]))
"""


def test_two_processes_needing_one_missing_entry_train_it_once(home, tmp_path):
    """Two notebooks executed side by side wait for each other instead of both training the entry."""
    import subprocess
    import sys

    script, log = tmp_path / "race.py", tmp_path / "trainings.txt"
    script.write_text(_RACE)
    env = dict(os.environ, ADVEX_HOME=str(home))
    processes = [subprocess.Popen([sys.executable, str(script), str(log), str(i)], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for i in range(2)]
    results = [process.communicate(timeout=120) for process in processes]
    assert all(process.returncode == 0 for process in processes), results
    assert log.read_text().count("trained") == 1
    assert [out.strip() for out, _ in results] == ["7.0", "7.0"]
    assert any("trained by another process" in err for _, err in results)


def test_key_changes_with_config_and_code(home):
    key = cache.cache_key("lin", {"lr": 0.1}, build)
    assert key != cache.cache_key("lin", {"lr": 0.2}, build)
    assert key != cache.cache_key("lin", {"lr": 0.1}, TrainCounter)
    assert key == cache.cache_key("lin", {"lr": 0.1}, build)


def test_key_changes_with_the_cpu_thread_count(home):
    """Training on 1 and on 2 CPU threads gives different weights (sums round differently), so different entries."""
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = cache.cache_key("lin", {"lr": 0.1}, build, device=torch.device("cpu"))
        torch.set_num_threads(2)
        two = cache.cache_key("lin", {"lr": 0.1}, build, device=torch.device("cpu"))
        on_gpu = cache.cache_key("lin", {"lr": 0.1}, build, device=torch.device("cuda"))
        torch.set_num_threads(1)
        assert cache.cache_key("lin", {"lr": 0.1}, build, device=torch.device("cuda")) == on_gpu  # threads: CPU only
    finally:
        torch.set_num_threads(threads)
    assert one != two


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


# --------------------------------------------------------------------------- the key covers every subpackage

def _package_copy(tmp_path):
    source = Path(cache.__file__).parent
    copy = tmp_path / "advex_copy"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


@pytest.mark.parametrize("module", ["attacks/gradient.py", "models/mnist.py", "losses.py", "train.py", "data/mnist.py"])
def test_editing_a_training_relevant_module_in_any_subpackage_changes_the_digest(tmp_path, module):
    package = _package_copy(tmp_path)
    before = cache._package_source_digest(package)
    with open(package / module, "a", encoding="utf-8") as handle:
        handle.write("\n# an edit\n")
    assert cache._package_source_digest(package) != before


@pytest.mark.parametrize("module", ["viz/style.py", "viz/slider.py", "progress.py", "paths.py", "data/assets.py",
                                    "cache.py"])
def test_editing_a_presentation_module_keeps_the_digest(tmp_path, module):
    package = _package_copy(tmp_path)
    before = cache._package_source_digest(package)
    with open(package / module, "a", encoding="utf-8") as handle:
        handle.write("\n# an edit\n")
    assert cache._package_source_digest(package) == before


def test_every_subpackage_is_covered():
    covered = {p.relative_to(Path(cache.__file__).parent).parts[0] for p in cache.training_relevant_modules()}
    assert {"attacks", "models", "data", "theory"} <= covered and "viz" not in covered


# --------------------------------------------------------------------------- the one recipe: advex.trained

def _data(n=64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 2, 2, generator=generator)
    return x, (x.flatten(1).sum(1) > 2).long()


def _tiny():
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 2))


def _penalised(model, x, y, *, l2):
    return nn.functional.cross_entropy(model(x), y) + l2 * model[1].weight.square().sum()


def test_trained_trains_once_then_loads(home, capsys):
    first = advex.trained("tiny", _tiny, _data(), epochs=2, lr=0.1, verbose=False)
    second = advex.trained("tiny", _tiny, _data(), epochs=2, lr=0.1, verbose=False)
    assert len(list((home / "models").glob("tiny-*.pt"))) == 1
    assert torch.equal(first[1].weight, second[1].weight) and not second.training


@pytest.mark.parametrize("change", [
    dict(data=_data(seed=1)),                                           # other images
    dict(epochs=3),                                                     # a hyperparameter
    dict(loss_fn=functools.partial(_penalised, l2=0.1)),                # a loss ...
    dict(build=lambda: nn.Sequential(nn.Flatten(), nn.Linear(4, 2), nn.Identity())),  # architecture
    dict(seed=1),                                                       # initial weights and order
])
def test_trained_key_follows_everything_that_determines_the_weights(home, change):
    base = dict(build=_tiny, data=_data(), epochs=2, lr=0.1, loss_fn=functools.partial(_penalised, l2=0.0))
    advex.trained("tiny", base["build"], base["data"], epochs=2, lr=0.1, loss_fn=base["loss_fn"], verbose=False)
    settings = {**base, **change}
    advex.trained("tiny", settings.pop("build"), settings.pop("data"), verbose=False, **settings)
    assert len(list((home / "models").glob("tiny-*.pt"))) == 2


def test_trained_key_follows_a_partial_loss_setting(home):
    for l2 in (0.0, 0.0, 0.5):
        advex.trained("tiny", _tiny, _data(), epochs=1, lr=0.1, loss_fn=functools.partial(_penalised, l2=l2), verbose=False)
    assert len(list((home / "models").glob("tiny-*.pt"))) == 2


def test_trained_rejects_bad_arguments(home):
    with pytest.raises(ValueError, match="data must be a pair"):
        advex.trained("tiny", _tiny, _data()[0], epochs=1, lr=0.1)
    with pytest.raises(ValueError, match="labels"):
        advex.trained("tiny", _tiny, (_data()[0], _data()[1].float()), epochs=1, lr=0.1)
    with pytest.raises(ValueError, match="name"):
        advex.trained("a/b", _tiny, _data(), epochs=1, lr=0.1)
