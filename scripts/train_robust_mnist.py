"""Train, evaluate and write chapter 5's shipped model, ``advex.models.pretrained("mnist-linf-0.3")``.

On a GPU (the only way it makes the shipped model):

    python scripts/train_robust_mnist.py --out src/advex/weights

trains Madry et al.'s MNIST network (``advex.models.pretrained.madry_cnn``) with the recipe below on all
60,000 training digits, evaluates it on all 10,000 test digits under the per-example minimum over
APGD-CE (100 steps), APGD-DLR-T (9 target classes × 100 steps) and the gradient-free Square attack
(5,000 queries) at ε = 0.3, the ensemble of chapter 5 (Croce & Hein 2020), and writes
``mnist-linf-0.3.pt`` (the state dict) and ``mnist-linf-0.3.json`` (provenance: commit, command, device,
date, training seconds, recipe, clean accuracy, accuracy under each attack and their minimum).  It prints
the sha256 to register in ``advex.models.pretrained.PRETRAINED_MODELS``.  Without CUDA it refuses (exit 2).

The recipe (every setting is a flag; the defaults are the proposal, not yet run on a GPU):
PGD adversarial training (Madry et al. 2018) with PGD-20, step 2 ε / 20, from a random start; ε warmed up
linearly from 0 over the first 10% of optimiser steps; bf16 autocast; batch 512; Adam with a one-cycle
learning rate peaking at 2e-3; 60 epochs (7,080 optimiser steps).  See book/benchmarks.md for why.
``--loss trades`` trains TRADES (Zhang et al. 2019, β = ``--beta``, default 6) with the same inner steps instead.

``--smoke`` runs the same code on the CPU in seconds (200 training digits, 1 epoch, PGD-2, 50 test digits,
attacks with a few steps and queries), into a folder that must not be the package's weights folder; its
provenance says ``"smoke": true``, and the loader refuses a smoke file for a registered model.

Exit status: 0 done; 2 refused (no CUDA, or a smoke run aimed at the package's weights folder).
"""
from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import torch

from advex.attacks import apgd, apgd_targeted, square_attack
from advex.cache import atomic_torch_save
from advex.data import load_mnist
from advex.defences import pgd_adversarial_loss
from advex.defences.trades import trades_loss
from advex.device import describe_device, get_device
from advex.evaluate import robust_accuracy
from advex.models.pretrained import PRETRAINED_MODELS, WEIGHTS_DIR, file_sha256
from advex.paths import atomic_write
from advex.train import train_classifier

NAME = "mnist-linf-0.3"
EPS = 0.3
MAX_BYTES = 5 * 1024 * 1024   # the weights travel in the repository

#: The GPU recipe (the proposal; book/benchmarks.md says why) and the evaluation of issue 23.
RECIPE = {"loss": "pgd", "epochs": 60, "batch_size": 512, "lr": 2e-3, "lr_schedule": "one-cycle", "precision": "bf16",
          "pgd_steps": 20, "warmup_fraction": 0.1, "beta": 6.0, "train_size": 60_000, "seed": 0}
#: The objectives the recipe can train with (``--loss``); ``beta`` is TRADES' weight of the boundary term.
LOSSES = ("pgd", "trades")
EVALUATION = {"images": 10_000, "apgd_steps": 100, "target_classes": 9, "square_queries": 5_000}

#: The smoke run: the same code, sized for seconds on a CPU.
SMOKE_RECIPE = {**RECIPE, "epochs": 1, "batch_size": 100, "pgd_steps": 2, "train_size": 200}
SMOKE_EVALUATION = {"images": 50, "apgd_steps": 3, "target_classes": 1, "square_queries": 20}


class WarmedUpLoss:
    """PGD adversarial training's or TRADES' loss with ε ramped linearly over the first ``warmup_steps`` calls.

    Step t (1-based) attacks with ε_t = ε · min(1, t / warmup_steps) and step 2 ε_t / steps; the count is a
    Python int, so nothing waits for the device.  The ramp keeps the first updates from facing full ε = 0.3
    (Gowal et al. 2018 ramp ε the same way for interval bound propagation); ``warmup_steps=0`` turns it off."""

    def __init__(self, loss: str, eps: float, steps: int, warmup_steps: int, beta: float):
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {list(LOSSES)}, got {loss!r}")
        self.objective = pgd_adversarial_loss if loss == "pgd" else partial(trades_loss, beta=beta)
        self.eps, self.steps, self.warmup_steps, self.calls = eps, steps, max(0, warmup_steps), 0

    def __call__(self, model, x, y):
        self.calls += 1
        eps = self.eps * min(1.0, self.calls / self.warmup_steps) if self.warmup_steps else self.eps
        return self.objective(model, x, y, eps=eps, steps=self.steps, step_size=2 * eps / self.steps)


def attack_ensemble(evaluation: dict) -> dict:
    """Chapter 5's ensemble at ε = 0.3: two white-box attacks with different losses and one without gradients."""
    return {"APGD-CE": partial(apgd, eps=EPS, steps=evaluation["apgd_steps"], loss="ce"),
            "APGD-DLR-T": partial(apgd_targeted, eps=EPS, steps=evaluation["apgd_steps"],
                                  target_classes=evaluation["target_classes"]),
            "Square": partial(square_attack, eps=EPS, queries=evaluation["square_queries"])}


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train(recipe: dict) -> tuple[torch.nn.Module, float]:
    """The registered architecture trained by ``recipe``; returns it and the training wall time in seconds."""
    device = get_device()
    images, labels = load_mnist("train")
    images, labels = images[:recipe["train_size"]], labels[:recipe["train_size"]]
    torch.manual_seed(recipe["seed"])
    model = PRETRAINED_MODELS[NAME].build().to(device)
    steps_per_epoch = -(-len(images) // recipe["batch_size"])
    loss_fn = WarmedUpLoss(recipe["loss"], EPS, recipe["pgd_steps"],
                           round(recipe["warmup_fraction"] * recipe["epochs"] * steps_per_epoch), recipe["beta"])
    _synchronise(device)
    start = time.perf_counter()
    train_classifier(model, images, labels, epochs=recipe["epochs"], lr=recipe["lr"], batch_size=recipe["batch_size"],
                     seed=recipe["seed"], loss_fn=loss_fn, precision=recipe["precision"],
                     lr_schedule=recipe["lr_schedule"], desc=f"training {NAME}")
    _synchronise(device)
    return model, time.perf_counter() - start


def evaluate(model: torch.nn.Module, evaluation: dict) -> dict:
    """Clean accuracy, accuracy under each attack and under their per-example minimum, on the first test digits."""
    images, labels = load_mnist("test")
    x, y = images[:evaluation["images"]], labels[:evaluation["images"]]
    start = time.perf_counter()
    robust = {}
    for name, attack in attack_ensemble(evaluation).items():
        result = robust_accuracy(model, x, y, attacks=attack)
        robust[name], clean = result.robust, result.clean_accuracy
    minimum = torch.stack(list(robust.values())).all(0)
    return {"images": len(x), "eps": EPS, **{k: v for k, v in evaluation.items() if k != "images"},
            "clean_accuracy": clean, "attacks": {name: int(r.sum()) / len(x) for name, r in robust.items()},
            "minimum": int(minimum.sum()) / len(x), "robust_images": int(minimum.sum()),
            "seconds": time.perf_counter() - start}


def git_commit() -> str:
    """The checkout's commit, with "+dirty" when tracked files differ from it; "unknown" outside git."""
    repo = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def write_model(model: torch.nn.Module, out: Path, record: dict) -> str:
    """Write the weights and their provenance into ``out``; return the weights' sha256."""
    out.mkdir(parents=True, exist_ok=True)
    weights = out / f"{NAME}.pt"
    atomic_torch_save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, weights)
    size = weights.stat().st_size
    if size > MAX_BYTES:
        raise SystemExit(f"{weights} is {size:,} bytes, over the {MAX_BYTES:,} the repository allows; shrink the network")
    sha256 = file_sha256(weights)
    text = json.dumps({"name": NAME, "sha256": sha256, "bytes": size, **record}, indent=2) + "\n"
    atomic_write(out / f"{NAME}.json", lambda handle: handle.write(text.encode("utf-8")))
    return sha256


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="folder for the weights and provenance (default: the package's)")
    parser.add_argument("--smoke", action="store_true", help="tiny CPU run of the same code, flagged as a smoke run")
    for key in ("epochs", "batch_size", "pgd_steps", "train_size", "seed"):
        parser.add_argument(f"--{key.replace('_', '-')}", type=int, default=None)
    parser.add_argument("--loss", choices=LOSSES, default=None, help="pgd (PGD adversarial training) or trades")
    for key in ("lr", "warmup_fraction", "beta"):
        parser.add_argument(f"--{key.replace('_', '-')}", type=float, default=None)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default=None)
    parser.add_argument("--lr-schedule", choices=("constant", "one-cycle"), default=None)
    parser.add_argument("--eval-images", type=int, default=None, help="test digits to evaluate on (default 10,000)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not args.smoke and not torch.cuda.is_available():
        print(f"refused: the shipped model {NAME!r} is trained on a GPU and no CUDA device is available here "
              f"({describe_device()}). Run this on a machine with CUDA, or add --smoke --out <tmp folder> for a "
              f"tiny CPU check of the command.", file=sys.stderr)
        return 2
    if args.smoke and args.out.resolve() == WEIGHTS_DIR.resolve():
        print(f"refused: a --smoke run never writes into the package's weights folder {WEIGHTS_DIR}; "
              f"pass --out <tmp folder>.", file=sys.stderr)
        return 2
    recipe = dict(SMOKE_RECIPE if args.smoke else RECIPE)
    recipe.update({k: getattr(args, k) for k in RECIPE if getattr(args, k, None) is not None})
    evaluation = dict(SMOKE_EVALUATION if args.smoke else EVALUATION)
    if args.eval_images is not None:
        evaluation["images"] = args.eval_images
    started = datetime.datetime.now(datetime.timezone.utc)
    print(f"[{NAME}] {'SMOKE RUN, ' if args.smoke else ''}training on {describe_device()}: {recipe}", file=sys.stderr)
    model, seconds = train(recipe)
    print(f"[{NAME}] trained in {seconds:.1f} s; evaluating on {evaluation['images']:,} test digits", file=sys.stderr)
    figures = evaluate(model, evaluation)
    record = {"smoke": args.smoke, "commit": git_commit(),
              "command": " ".join(["python", "scripts/train_robust_mnist.py", *(sys.argv[1:] if argv is None else argv)]),
              "device": describe_device(), "torch": torch.__version__, "date": started.isoformat(timespec="seconds"),
              "training_seconds": seconds, "recipe": recipe, "evaluation": figures}
    sha256 = write_model(model, args.out, record)
    print(f"clean {figures['clean_accuracy']:.2%}  " + "  ".join(f"{k} {v:.2%}" for k, v in figures["attacks"].items())
          + f"  minimum {figures['minimum']:.2%} on {figures['images']:,} digits; training {seconds:.0f} s")
    print(f"wrote {args.out / (NAME + '.pt')} and {args.out / (NAME + '.json')}")
    print(f"sha256 {sha256}")
    if not args.smoke:
        print(f"register it: in src/advex/models/pretrained.py set PRETRAINED_MODELS[{NAME!r}]'s sha256=\"{sha256}\"")
    return 0


if __name__ == "__main__":
    sys.exit(main())
