"""Throughput of randomised-smoothing certification (chapter 6): a benchmark, not a timed test.

CERTIFY (Cohen, Rosenfeld & Kolter 2019) sends n noisy copies of each image through the base classifier,
n = 100,000 in their recipe.  :func:`advex.defences.sample_counts` does that in chunks of ``--batch-size``
copies on the model's device.  This script times it for the chapter-4 CNN architecture (untrained weights:
the cost does not depend on them) and prints one Markdown table row per device, ready for
``book/benchmarks.md``.  Target (issue #10): on a GPU at least 10× the images per second of the CPU of the
same machine, so run it with ``--device cuda`` and ``--device cpu`` on one machine::

    python benchmarks/bench_certify.py --device cpu --threads 2
    python benchmarks/bench_certify.py --device cuda
"""
from __future__ import annotations

import argparse
import platform
import time

import torch

from advex.defences import sample_counts
from advex.models import SmallCNN


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--samples", type=int, default=100_000, help="noisy copies per image (n)")
    parser.add_argument("--batch-size", type=int, default=None, help="copies per forward pass (default 10,000 CPU, 50,000 CUDA)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device")
    device = torch.device(args.device)
    batch_size = args.batch_size or (50_000 if device.type == "cuda" else 10_000)
    torch.manual_seed(0)
    model = SmallCNN().to(device).eval()
    x = torch.rand(args.images, 1, 28, 28, device=device)
    sample_counts(model, x[:1], 0.5, min(args.samples, batch_size), batch_size=batch_size)   # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    counts = sample_counts(model, x, 0.5, args.samples, batch_size=batch_size)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    assert int(counts.sum()) == args.images * args.samples
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.processor() or 'CPU'}, {torch.get_num_threads()} threads"
    print("| device | noisy images / s | seconds per image at n = {:,} | batch |".format(args.samples))
    print("|---|---:|---:|---:|")
    print(f"| {device.type} ({name}) | {args.images * args.samples / seconds:,.0f} | {seconds / args.images:.2f} | {batch_size:,} |")


if __name__ == "__main__":
    main()
