"""Train a model once, reuse it afterwards.

A cache entry is keyed by everything that determines the trained weights: the
model's name, its configuration (architecture and hyperparameters, seed, data
description), the source code of the functions that build and train it and of
every advex module they may call (models, losses, attacks, the training loop),
the device type it was trained on, on a CPU the number of threads torch uses
(floating-point sums split across threads round differently, so the same
recipe gives other weights on 1 thread than on 2), and the torch version.  Entries are written
atomically (temporary file + ``os.replace``), loaded with
``torch.load(..., weights_only=True)``, and a corrupted entry is retrained with
a warning instead of failing.

Two processes that need the same missing entry (two notebooks executed side by side, a grading kernel beside
a chapter) do not both train it: the first takes a lock on the entry and trains, the second waits for the
lock and then loads what the first saved.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import sys
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

try:                                    # POSIX
    import fcntl
except ImportError:                     # Windows
    fcntl = None
    import msvcrt

import torch
from torch import nn

from .device import get_device
from .paths import atomic_write, model_cache_dir

__all__ = ["PRESENTATION_MODULES", "atomic_torch_save", "cache_key", "cached_model", "training_relevant_modules"]


def _source_of(fn: Callable) -> str:
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):
        return getattr(fn, "__qualname__", repr(fn))


#: Modules that only present results or move files: editing them cannot change a trained model.
#: Paths relative to the package; a folder ends in "/".
PRESENTATION_MODULES = ("viz/", "progress.py", "paths.py", "data/assets.py", "__init__.py", "glue.py", "intervals.py",
                        "cache.py")


def training_relevant_modules(package_dir: Path | None = None) -> list[Path]:
    """Every advex module, in every subpackage, that can influence a trained model."""
    package_dir = Path(package_dir or Path(__file__).parent)
    modules = []
    for path in sorted(package_dir.rglob("*.py")):
        relative = path.relative_to(package_dir).as_posix()
        if not any(relative == p or (p.endswith("/") and relative.startswith(p)) for p in PRESENTATION_MODULES):
            modules.append(path)
    return modules


def _package_source_digest(package_dir: Path | None = None) -> str:
    """Digest of every advex module that can influence training (models, losses, attacks, loops, data).

    Notebook code calls into advex (a model class, a loss, an attack used for
    adversarial training), so the source of ``build``/``train`` alone is not
    enough: a change anywhere in that code, in any subpackage, invalidates the cache.
    """
    package_dir = Path(package_dir or Path(__file__).parent)
    digest = hashlib.sha256()
    for path in training_relevant_modules(package_dir):
        digest.update(path.relative_to(package_dir).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def cache_key(name: str, config: dict, *functions: Callable, device: torch.device | None = None) -> str:
    """A stable hex digest of everything that determines a trained model."""
    device = device or get_device()
    payload = {
        "name": name,
        "config": config,
        "code": [_source_of(fn) for fn in functions],
        "advex_code": _package_source_digest(),
        "device_type": device.type,
        # a model trained by a 1-thread process (a test, a grading kernel) must not be served to a 2-thread one
        "cpu_threads": torch.get_num_threads() if device.type == "cpu" else None,
        "torch": torch.__version__.split("+")[0],
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def atomic_torch_save(obj, path: Path) -> None:
    """Write ``obj`` with ``torch.save`` so that readers never see a half-written file."""
    atomic_write(path, lambda handle: torch.save(obj, handle))


@contextmanager
def _entry_lock(path: Path, name: str, verbose: bool) -> Iterator[None]:
    """Hold an exclusive lock on ``path``'s entry (a ``.lock`` file beside it) for as long as the block runs."""
    lock_path = path.with_suffix(".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as handle:
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if verbose:
                    print(f"[advex] another process is training {name!r}; waiting for it", file=sys.stderr)
                fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        else:
            while True:
                try:
                    msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
                    break
                except OSError:
                    time.sleep(1.0)
            try:
                yield
            finally:
                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)


def _load_entry(path: Path, model: nn.Module, device: torch.device, name: str, origin: str, verbose: bool,
                return_log: bool):
    """``model`` with the entry's weights, in eval mode (and its training log with ``return_log``): what
    :func:`cached_model` returns on a hit.  Raises if the file is unreadable."""
    state = torch.load(path, map_location=device, weights_only=True)
    model.load_state_dict(state["model"])
    log = json.loads(state.get("log", "null"))
    if verbose:
        print(f"[advex] loaded cached model {name!r} ({path.name}){origin}", file=sys.stderr)
    return (model.eval(), log) if return_log else model.eval()


def cached_model(
    name: str,
    config: dict,
    build: Callable[[], nn.Module],
    train: Callable[[nn.Module], object],
    *,
    cache_dir: Path | None = None,
    verbose: bool = True,
    return_log: bool = False,
) -> nn.Module | tuple[nn.Module, object]:
    """Return ``build()`` with trained weights, training with ``train(model)`` only on a cache miss.

    ``config`` must be JSON-serialisable and hold every hyperparameter, the seed
    and a description of the data; ``build`` and ``train`` should read their
    settings from it.  The model comes back in eval mode on :func:`get_device`.
    With ``return_log``, whatever ``train`` returned (JSON-serialisable, e.g. per-epoch records) is
    stored with the weights and the result is ``(model, log)``.
    """
    if not isinstance(config, dict):
        raise ValueError(f"config must be a dict of hyperparameters, got {type(config).__name__}")
    device = get_device()
    key = cache_key(name, config, build, train, device=device)
    path = Path(cache_dir or model_cache_dir()) / f"{name}-{key}.pt"
    model = build().to(device)
    if path.exists():               # the common case needs no lock: entries are written atomically
        try:
            return _load_entry(path, model, device, name, "", verbose, return_log)
        except Exception as err:  # any unreadable entry is retrained, never fatal
            warnings.warn(f"cached model {path} is unreadable ({err.__class__.__name__}: {err}); retraining it")
            path.unlink(missing_ok=True)
            model = build().to(device)
    with _entry_lock(path, name, verbose):
        if path.exists():           # trained by another process while this one waited
            return _load_entry(path, model, device, name, ", trained by another process", verbose, return_log)
        if verbose:
            print(f"[advex] training {name!r} on {device} (cache miss; saved for next time)", file=sys.stderr)
        log = train(model)
        state = {"model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                 "config": json.dumps(config, sort_keys=True), "log": json.dumps(log if return_log else None)}
        atomic_torch_save(state, path)
    return (model.eval(), log) if return_log else model.eval()
