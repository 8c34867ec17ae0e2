"""Benchmark of the training loop (a benchmark, not a timed test): what does advex add to adversarial training?

For each objective of :mod:`advex.defences.training` (and plain cross-entropy) it times
:func:`advex.train_classifier` against a *bare loop* of the same forward and backward passes, side by side
in one run, on the current device (``--device`` or ``ADVEX_DEVICE``), and prints a header and a Markdown
table with the ratio advex / bare loop.  Targets (issue 23): ≤ 1.05 on the CPU, ≤ 1.15 on CUDA.

The bare loop is the reference: the same model, initial weights, shuffling (a CPU permutation moved to the
device once per epoch), Adam step, precision (bf16 autocast around the loss with ``--precision bf16``) and
one read of the summed loss per epoch; the attack inside it is written out with ``torch.autograd.grad``
and nothing else: no argument checks, no eval-mode switch or parameter freezing, no best-iterate
bookkeeping.  The ratio is everything advex adds to those passes.

* cross-entropy: 1 forward + 1 backward per batch;
* Goodfellow et al. (2015) FGSM training, α = 0.5: 1 input gradient, then the loss at x and at x_adv;
* fast AT (Wong et al. 2020): a uniform random start, 1 input gradient, the loss at x_adv;
* PGD-k AT (Madry et al. 2018): a random start, k input gradients with projection, the loss at x_adv.

The runs of one repetition go back to back in turn (advex, bare, advex, bare …), so drift of a shared
machine hits both; the table gives the median over ``--repeats`` of each time and of the per-repetition
ratio, with the ratio of process CPU times beside it (on a CPU shared with other processes the wall time
of one run can swing by a factor of several; the CPU time less so) and the range of the per-repetition
wall-time ratios, so a reader sees how much the machine's noise says.  Run from the repository root:

    python benchmarks/bench_training.py                               # CPU: 2,000 digits, PGD-5, 5 repeats
    python benchmarks/bench_training.py --device cuda --train-size 20000 --batch-size 512 --pgd-steps 40 \\
        --model madry --precision bf16                                # the GPU recipe's setting
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import torch
from torch.nn import functional as F


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: ADVEX_DEVICE, else CUDA if present)")
    parser.add_argument("--train-size", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--pgd-steps", type=int, default=5)
    parser.add_argument("--eps", type=float, default=0.3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", choices=("small", "madry"), default="small",
                        help="small: chapter 4's CNN (16/32 filters, 100 hidden); madry: 32/64 filters, 1,024 hidden")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--losses", default="cross-entropy,goodfellow,fast,pgd",
                        help="comma-separated subset of cross-entropy, goodfellow, fast, pgd")
    return parser.parse_args(argv)


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --------------------------------------------------------------------------- the bare objectives

def _input_gradient(model, x, y):
    x = x.detach().requires_grad_(True)
    return torch.autograd.grad(F.cross_entropy(model(x), y), x)[0]


def bare_cross_entropy(model, x, y):
    return F.cross_entropy(model(x), y)


def bare_goodfellow(model, x, y, *, eps):
    x_adv = (x + eps * _input_gradient(model, x, y).sign()).clamp(0.0, 1.0)
    return 0.5 * F.cross_entropy(model(x), y) + 0.5 * F.cross_entropy(model(x_adv), y)


def bare_fast(model, x, y, *, eps):
    start = (x + eps * (2 * torch.rand_like(x) - 1)).clamp(0.0, 1.0)
    x_adv = (start + 1.25 * eps * _input_gradient(model, start, y).sign()).clamp(x - eps, x + eps).clamp(0.0, 1.0)
    return F.cross_entropy(model(x_adv), y)


def bare_pgd(model, x, y, *, eps, steps):
    step_size = 2.5 * eps / steps
    x_adv = (x + eps * (2 * torch.rand_like(x) - 1)).clamp(0.0, 1.0)
    for _ in range(steps):
        x_adv = (x_adv + step_size * _input_gradient(model, x_adv, y).sign()).clamp(x - eps, x + eps).clamp(0.0, 1.0)
    return F.cross_entropy(model(x_adv.detach()), y)


def bare_training(model, images, labels, *, epochs, lr, batch_size, loss_fn, precision, seed=0):
    """The reference: the loop of advex.train_classifier reduced to its passes."""
    device = next(model.parameters()).device
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    images, labels = images.to(device), labels.to(device)
    model.train()
    history = []
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator).to(device)
        total = torch.zeros((), device=device)
        for start in range(0, len(images), batch_size):
            index = order[start:start + batch_size]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                loss = loss_fn(model, images[index], labels[index])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach() * len(index)
        history.append(total.item() / len(images))
    model.eval()
    return history


# --------------------------------------------------------------------------- the benchmark

def objectives(names, eps, pgd_steps):
    from advex.defences import fast_adversarial_loss, goodfellow_adversarial_loss, pgd_adversarial_loss
    from advex.losses import cross_entropy
    table = {
        "cross-entropy": ("cross-entropy", cross_entropy, bare_cross_entropy),
        "goodfellow": (f"FGSM training, α = 0.5 (Goodfellow et al.), ε = {eps}",
                       partial(goodfellow_adversarial_loss, eps=eps), partial(bare_goodfellow, eps=eps)),
        "fast": (f"fast AT (Wong et al.), ε = {eps}", partial(fast_adversarial_loss, eps=eps), partial(bare_fast, eps=eps)),
        "pgd": (f"PGD-{pgd_steps} AT (Madry et al.), ε = {eps}",
                partial(pgd_adversarial_loss, eps=eps, steps=pgd_steps, step_size=2.5 * eps / pgd_steps),
                partial(bare_pgd, eps=eps, steps=pgd_steps)),
    }
    unknown = set(names) - set(table)
    if unknown:
        raise SystemExit(f"--losses: unknown {sorted(unknown)}; allowed: {sorted(table)}")
    return [table[name] for name in names]


def header(device: torch.device, args) -> str:
    import advex
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).resolve().parents[1],
                                capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads")
    return (f"Measured: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {device} ({where}), "
            f"torch {torch.__version__}, Python {platform.python_version()}, advex {getattr(advex, '__version__', '?')} "
            f"at {commit}; {args.model} CNN, {args.train_size:,} digits × {args.epochs} epoch(s), batch {args.batch_size}, "
            f"{args.precision}, median of {args.repeats} repeats.")


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.device:
        os.environ["ADVEX_DEVICE"] = args.device
    from advex.data import load_mnist
    from advex.device import get_device
    from advex.models import SmallCNN
    from advex.train import train_classifier
    try:
        device = get_device()
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2
    build = partial(SmallCNN, channels=(32, 64), hidden=1024) if args.model == "madry" else SmallCNN
    images, labels = load_mnist("train")
    images, labels = images[:args.train_size], labels[:args.train_size]
    settings = dict(epochs=args.epochs, lr=1e-3, batch_size=args.batch_size)

    def fresh():
        torch.manual_seed(0)
        return build().to(device)

    def timed(fn) -> tuple[float, float]:
        """(wall seconds, this process's CPU seconds) of fn()."""
        synchronise(device)
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        synchronise(device)
        return time.perf_counter() - start, time.process_time() - start_cpu

    print(header(device, args))
    print()
    target = 1.15 if device.type == "cuda" else 1.05
    print(f"| objective | advex train_classifier (s) | bare loop of the same passes (s) | ratio | target ≤ {target} "
          f"| ratio of CPU times | ratio range over repeats |")
    print("|---|---|---|---|---|---|---|")
    for label, advex_loss, bare_loss in objectives(args.losses.split(","), args.eps, args.pgd_steps):
        run_advex = lambda: train_classifier(fresh(), images, labels, loss_fn=advex_loss, precision=args.precision,
                                             desc="advex", **settings)
        run_bare = lambda: bare_training(fresh(), images, labels, loss_fn=bare_loss, precision=args.precision, **settings)
        run_advex(), run_bare()   # warm-up (allocator, kernels, autotuning)
        advex_times, bare_times = [], []
        for _ in range(args.repeats):
            advex_times.append(timed(run_advex))
            bare_times.append(timed(run_bare))
        ratios = [a[0] / b[0] for a, b in zip(advex_times, bare_times)]
        cpu_ratio = statistics.median(a[1] / b[1] for a, b in zip(advex_times, bare_times))
        ratio = statistics.median(ratios)
        print(f"| {label} | {statistics.median(a[0] for a in advex_times):.3f} "
              f"| {statistics.median(b[0] for b in bare_times):.3f} | {ratio:.2f} | {'yes' if ratio <= target else 'no'} "
              f"| {cpu_ratio:.2f} | {min(ratios):.2f}–{max(ratios):.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
