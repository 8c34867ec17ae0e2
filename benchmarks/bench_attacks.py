"""Benchmark of chapter 4's attacks on the chapter's CNN (a benchmark, not a timed test).

Reports, over 1,000 MNIST test images:

* FGSM and PGD-40: images per second, and the ratio of the attack's time to a bare loop doing the
  same number of forward + backward passes (the overhead of projection, bookkeeping and checks);
* robust accuracy under PGD-40: the early-stopping evaluator (``advex.robust_eval``) against the
  plain fixed-step loop, at several ε: time, speed-up, gradients computed, and both accuracies.

Run from the repository root:  python benchmarks/bench_attacks.py [--device cpu|cuda] [--threads N]
It trains (or loads from the cache) the chapter's CNN first.  Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import os
import time

import torch
from torch.nn import functional as F


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def best_time(fn, device, repeats: int) -> float:
    """Smallest wall time of ``repeats`` runs (after one warm-up run)."""
    fn()
    times = []
    for _ in range(repeats):
        synchronise(device)
        start = time.perf_counter()
        fn()
        synchronise(device)
        times.append(time.perf_counter() - start)
    return min(times)


def bare_loop(model, x, y, passes: int) -> None:
    """``passes`` forward + backward passes to the input, nothing else: the floor any gradient attack pays."""
    for _ in range(passes):
        x_req = x.detach().requires_grad_(True)
        loss = F.cross_entropy(model(x_req), y, reduction="sum")
        torch.autograd.grad(loss, x_req)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cpu or cuda (default: advex.get_device())")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.device:
        os.environ["ADVEX_DEVICE"] = args.device
    if args.threads:
        torch.set_num_threads(args.threads)

    import advex
    from advex.attacks import fgsm
    from advex.attacks_iterative import pgd
    from advex.mnist import load_mnist
    from advex.models import mnist_classifier
    from advex.robust_eval import robust_accuracy

    device = advex.get_device()
    model = mnist_classifier("cnn").eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x, y = load_mnist("test")
    x, y = x[:args.images].to(device), y[:args.images].to(device)
    n = len(x)
    print(f"device: {advex.describe_device()}; torch threads: {torch.get_num_threads()}; images: {n}\n")

    print("| attack | images / s | time (s) | bare loop of the same passes (s) | ratio |")
    print("|---|---|---|---|---|")
    for name, attack, passes in (
        ("FGSM", lambda: fgsm(model, x, y, 0.25), 1),
        ("PGD-40 (L∞, ε = 0.25, no early stop)", lambda: pgd(model, x, y, 0.25, steps=40), 40),
    ):
        attack_time = best_time(attack, device, args.repeats)
        loop_time = best_time(lambda: bare_loop(model, x, y, passes), device, args.repeats)
        print(f"| {name} | {n / attack_time:,.0f} | {attack_time:.3f} | {loop_time:.3f} | {attack_time / loop_time:.2f} |")

    print("\n| robust accuracy, PGD-40 L∞ | ε | plain loop (s) | early stopping (s) | speed-up | gradients plain / early | accuracy plain / early |")
    print("|---|---|---|---|---|---|---|")
    for eps in (0.1, 0.2, 0.3):
        results = {}
        for early in (False, True):
            results[early] = robust_accuracy(model, x, y, eps, steps=40, early_stop=early, batch_size=n)
            seconds = best_time(lambda: robust_accuracy(model, x, y, eps, steps=40, early_stop=early, batch_size=n),
                                device, max(1, args.repeats - 1))
            results[early].seconds = seconds
        plain, fast = results[False], results[True]
        print(f"| CNN | {eps} | {plain.seconds:.2f} | {fast.seconds:.2f} | {plain.seconds / fast.seconds:.1f}× | "
              f"{plain.gradients:,} / {fast.gradients:,} | {plain.robust_accuracy:.3f} / {fast.robust_accuracy:.3f} |")


if __name__ == "__main__":
    main()
