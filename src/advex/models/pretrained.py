"""Models shipped with the book: weights in the package, their sha256 in code, provenance beside them.

``pretrained("mnist-linf-0.3")`` returns chapter 5's adversarially trained MNIST network, trained once
on a GPU by ``scripts/train_robust_mnist.py`` and committed to ``src/advex/weights/``.  Three things
guard it, so that a model that is not the one the provenance describes is never used:

* the registry below holds each file's sha256 (in code, not only in the JSON beside the weights),
  and the loader refuses a file whose bytes hash otherwise;
* the provenance JSON beside the weights (commit, command, device, date, training seconds, the
  10,000-digit figures per attack and their minimum) must name the same file hash, and a smoke run
  (``--smoke``, CPU, seconds) is flagged in it, so it can never pass for the shipped model;
* ``torch.load(..., weights_only=True)`` and a strict ``load_state_dict`` into the registered architecture.

A registry entry whose ``sha256`` is None has not been shipped yet: the loader says so and names the
command that trains it.  Loading needs no training code, so this module imports only the model classes.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..device import get_device
from .mnist import SmallCNN

#: Folder of the shipped weights and their provenance files (package data).
__all__ = ["PRETRAINED_MODELS", "PretrainedError", "PretrainedModel", "file_sha256", "pretrained", "provenance"]

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"

#: The command that (re-)trains the shipped MNIST model on a GPU and writes it into WEIGHTS_DIR.
RETRAIN_MNIST = "python scripts/train_robust_mnist.py --out src/advex/weights"


@dataclass(frozen=True)
class PretrainedModel:
    """One registered model: how to build it, which file holds its weights and which bytes it must have."""

    name: str
    build: Callable[[], nn.Module]
    sha256: str | None           # None: not shipped yet
    command: str                 # what trains the file, named in every error
    directory: Path = WEIGHTS_DIR
    smoke: bool = False          # True only for test entries made by a --smoke run
    description: str = field(default="", compare=False)

    @property
    def weights_path(self) -> Path:
        return Path(self.directory) / f"{self.name}.pt"

    @property
    def provenance_path(self) -> Path:
        return Path(self.directory) / f"{self.name}.json"


#: Madry et al.'s (2018) MNIST network as chapter 5 builds it: two 5×5 convolutions (32, 64 filters), 1,024 hidden units.
madry_cnn = partial(SmallCNN, channels=(32, 64), hidden=1024)

PRETRAINED_MODELS: dict[str, PretrainedModel] = {
    "mnist-linf-0.3": PretrainedModel(
        name="mnist-linf-0.3", build=madry_cnn, sha256=None, command=RETRAIN_MNIST,
        description="MNIST CNN (32/64 filters, 1,024 hidden), adversarially trained for L∞ ε = 0.3 on a GPU"),
}


class PretrainedError(RuntimeError):
    """A shipped model that cannot be loaded as registered: not shipped yet, missing, corrupted, inconsistent."""


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _entry(name: str) -> PretrainedModel:
    if not isinstance(name, str) or name not in PRETRAINED_MODELS:
        raise ValueError(f"name must be one of {sorted(PRETRAINED_MODELS)}, got {name!r}")
    return PRETRAINED_MODELS[name]


def _verified_weights(entry: PretrainedModel) -> Path:
    path = entry.weights_path
    if entry.sha256 is None:
        state = "present but unregistered" if path.exists() else "absent"
        raise PretrainedError(f"{entry.name!r} is not shipped yet: train it on a GPU with `{entry.command}` and register "
                              f"the sha256 it prints in advex.models.pretrained.PRETRAINED_MODELS "
                              f"(weights file {path}: {state}).")
    if not path.is_file():
        raise PretrainedError(f"{entry.name!r}: weights file {path} is missing. Restore it "
                              f"(`git checkout -- {path.name}` in its folder) or re-train it on a GPU with `{entry.command}`.")
    actual = file_sha256(path)
    if actual != entry.sha256:
        raise PretrainedError(f"{entry.name!r}: weights file {path} is corrupted or not the registered one "
                              f"(sha256 {actual}, registered {entry.sha256}). Restore it from the repository or "
                              f"re-train it on a GPU with `{entry.command}` and register the new sha256.")
    return path


def provenance(name: str) -> dict:
    """The provenance record of a shipped model (who trained it how, and its 10,000-digit figures), checked
    against the registry: the same file hash, and a smoke flag that matches the entry."""
    entry = _entry(name)
    _verified_weights(entry)
    path = entry.provenance_path
    if not path.is_file():
        raise PretrainedError(f"{entry.name!r}: provenance file {path} is missing. Restore it from the repository "
                              f"or re-train the model with `{entry.command}`.")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise PretrainedError(f"{entry.name!r}: provenance file {path} is unreadable ({err}). Restore it from the "
                              f"repository or re-train the model with `{entry.command}`.") from err
    if not isinstance(record, dict) or record.get("sha256") != entry.sha256:
        raise PretrainedError(f"{entry.name!r}: provenance file {path} describes other weights "
                              f"(sha256 {record.get('sha256') if isinstance(record, dict) else None}, registered "
                              f"{entry.sha256}). Restore both files together or re-train with `{entry.command}`.")
    if bool(record.get("smoke")) != entry.smoke:
        raise PretrainedError(f"{entry.name!r}: provenance file {path} says smoke={record.get('smoke')!r}, the registry "
                              f"expects smoke={entry.smoke}; a --smoke run is never the shipped model. "
                              f"Re-train it on a GPU with `{entry.command}`.")
    return record


def pretrained(name: str) -> nn.Module:
    """The registered model ``name`` (e.g. ``"mnist-linf-0.3"``) with its shipped weights, in eval mode on
    :func:`advex.get_device`.  Raises :class:`PretrainedError` naming the file and the fix when the weights are
    not shipped yet, missing, corrupted, or do not match their provenance."""
    entry = _entry(name)
    provenance(name)   # verifies the weights' hash and that the provenance describes them
    path = entry.weights_path
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = entry.build()
        model.load_state_dict(state)
    except Exception as err:   # a hash-verified file that does not load is a registry error, said clearly
        raise PretrainedError(f"{entry.name!r}: {path} does not load into its registered architecture "
                              f"({err.__class__.__name__}: {err}). Re-train it with `{entry.command}`.") from err
    return model.to(get_device()).eval()
