"""Benchmark of the book's gradient attacks and robust-accuracy evaluator (a benchmark, not a timed test).

Prints a header and three Markdown tables, ready to paste into ``book/benchmarks.md``:

0. a header: date, device (GPU name), torch / CUDA / cuDNN versions, CPU, threads, advex version and
   git commit, torchattacks version;
1. attack overhead: FGSM and PGD-40 (L∞, ε = 0.25, random start, no early stop) of
   :mod:`advex.attacks` against a *bare loop* of the same number of forward + backward passes to the
   input and nothing else.  The ratio (attack time / bare-loop time) is what the attack adds:
   argument checks, random start, projection, keeping each example's best iterate (PGD also scores
   its last iterate: 41 forward passes for 40 backward).  Targets: ≤ 1.05 on the CPU, ≤ 1.2 on CUDA;
2. robust accuracy of the chapter's standard CNN (``advex.models.mnist_classifier("cnn")``) under
   PGD-40, L∞, ε = 0.1, 0.2, 0.3, step 2.5 ε / 40, one random start, on all 10,000 MNIST test images
   (``--images``), by three evaluators that use the same definition (robust = classified correctly
   clean *and* after the attack) and the same batches:

   * ``advex.evaluate.robust_accuracy`` (early stopping: misclassified images are never attacked,
     an image is dropped at its first successful iterate);
   * the same with ``early_stop=False``: the plain loop, every image for all 40 steps;
   * torchattacks 3.5.1's ``PGD(model, eps, alpha=2.5 * eps / 40, steps=40, random_start=True)``,
     the peer.  Target: advex early stopping ≥ 3× faster.  The two draw different random starts
     (advex from its seeded generator, torchattacks from torch's global one), so single images can
     fall to one start and not to the other: the table also counts those;

3. the same attacks from the same start (no random start), untimed: from the same point the iterates
   of advex and torchattacks are the same (same step, same projection), and advex scores every
   iterate and keeps each image's best where torchattacks returns the last, so advex must fool every
   image torchattacks fools (robust accuracy equal or lower: at least as strong).

Every timing is a wall time, with ``torch.cuda.synchronize()`` around it on CUDA, after a warm-up;
table 1 keeps the best of ``--repeats`` runs, table 2 the best of ``--robust-repeats`` (each run is
long: 10,000 images × 40 steps).  The evaluators of one repeat run back to back in turn, so drift of
a shared machine hits all of them.  The model's parameters are frozen for the whole benchmark (advex
freezes them during an attack anyway; the bare loop and torchattacks get the same).

torchattacks is needed only here, never by the book.  Install it into the book's environment with

    pip install --no-deps -r benchmarks/requirements.txt     # i.e. torchattacks==3.5.1

``--no-deps`` because its metadata asks for torchvision, which it never imports (3.5.1 imports only
torch) and whose wheels do not import beside the book's pinned CPU torch; its other requirements
(numpy, scipy, requests, tqdm) come with the book's requirements.txt.  Without torchattacks the peer
columns say so and the rest of the benchmark runs.

Run from the repository root (it trains the chapter's CNN first, or loads it from the model cache):

    python benchmarks/bench_attacks.py --device cpu --threads 2       # the CPU figures
    python benchmarks/bench_attacks.py --device cuda                  # the CUDA figures
    python benchmarks/bench_attacks.py --images 500 --repeats 1       # a quick check

Exit status: 0; 1 when, from the same start, torchattacks fools an image that advex does not (a bug:
advex weaker than its peer); 2 when the requested device is not available.  A higher robust accuracy
than torchattacks' with random starts (table 2) is only reported, on stderr.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F

THROUGHPUT_EPS = 0.25
ROBUST_EPS = (0.1, 0.2, 0.3)
STEPS = 40
TORCHATTACKS_VERSION = "3.5.1"
REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- timing

def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device):
    """(result of ``fn()``, its wall time in seconds), with the device synchronised on both sides."""
    synchronise(device)
    start = time.perf_counter()
    result = fn()
    synchronise(device)
    return result, time.perf_counter() - start


def bare_loop(model, x, y, passes: int) -> None:
    """``passes`` forward + backward passes to the input, nothing else: the floor any gradient attack pays."""
    for _ in range(passes):
        x_req = x.detach().requires_grad_(True)
        loss = F.cross_entropy(model(x_req), y, reduction="sum")
        torch.autograd.grad(loss, x_req)


# --------------------------------------------------------------------------- the peer

def load_torchattacks():
    """(the torchattacks module, None) or (None, why it is not usable)."""
    try:
        import torchattacks  # 3.5.1 imports only torch (no torchvision) at import time
    except ImportError as err:
        return None, (f"torchattacks is not importable ({err.__class__.__name__}: {err}); install it with "
                      f"`pip install --no-deps torchattacks=={TORCHATTACKS_VERSION}`")
    return torchattacks, None


def torchattacks_robust(torchattacks, model, x, y, eps: float, batch_size: int, device, *, random_start: bool = True,
                        seed: int = 0) -> torch.Tensor:
    """Per image (bool, on the CPU): correct clean and on torchattacks' PGD-40 at ``eps``, batch by batch."""
    attack = torchattacks.PGD(model, eps=eps, alpha=2.5 * eps / STEPS, steps=STEPS, random_start=random_start)
    torch.manual_seed(seed)  # torchattacks draws its random start from torch's global generator
    robust = []
    for first in range(0, len(x), batch_size):
        xb, yb = x[first:first + batch_size].to(device), y[first:first + batch_size].to(device)
        with torch.no_grad():
            clean_ok = model(xb).argmax(1) == yb
        x_adv = attack(xb, yb)
        with torch.no_grad():
            adv_ok = model(x_adv).argmax(1) == yb
        robust.append((clean_ok & adv_ok).cpu())
    return torch.cat(robust)


# --------------------------------------------------------------------------- the header

def git_commit() -> str:
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "src", "benchmarks"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (commit or "unknown") + (" + uncommitted changes in src/ or benchmarks/" if dirty else "")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def header(advex, device: torch.device, torchattacks, args, n: int, throughput_n: int, batch_size: int) -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        gpu = f"{props.name} ({props.total_memory / 2**30:.0f} GiB)"
        cudnn = torch.backends.cudnn.version()
        build = f"{torch.__version__} (CUDA {torch.version.cuda}, cuDNN {cudnn})"
    else:
        gpu = "none (CPU run)" if not torch.cuda.is_available() else f"{torch.cuda.get_device_name(0)} (not used: CPU run)"
        build = torch.__version__
    peer = getattr(torchattacks, "__version__", "?") if torchattacks else "not installed"
    if torchattacks and peer != TORCHATTACKS_VERSION:
        peer += f" (the benchmark pins {TORCHATTACKS_VERSION})"
    lines = [
        f"- date: {now}",
        f"- device: {device} — GPU: {gpu}",
        f"- torch: {build}; torch CPU threads: {torch.get_num_threads()}"
        + (" (set with --threads)" if args.threads else " (torch's default)"),
        f"- CPU: {cpu_name()}, {os.cpu_count()} logical cores; Python {platform.python_version()}",
        f"- advex {advex.__version__}, git {git_commit()}; torchattacks {peer}",
        f"- images: the first {n:,} MNIST test images (table 2), the first {throughput_n:,} (table 1); "
        f"batch size {batch_size:,}",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- the tables

def throughput_table(model, x, y, device, repeats: int) -> list[str]:
    from advex.attacks import fgsm, pgd

    target = 1.2 if device.type == "cuda" else 1.05
    n = len(x)
    rows = [f"| attack | images / s | time (s) | bare loop of the same passes (s) | ratio | target ≤ {target} |",
            "|---|---|---|---|---|---|"]
    for name, attack, passes in (
        (f"FGSM (ε = {THROUGHPUT_EPS})", lambda: fgsm(model, x, y, THROUGHPUT_EPS), 1),
        (f"PGD-{STEPS} (L∞, ε = {THROUGHPUT_EPS}, random start, no early stop)",
         lambda: pgd(model, x, y, THROUGHPUT_EPS, steps=STEPS), STEPS),
    ):
        loop = lambda: bare_loop(model, x, y, passes)  # noqa: E731
        attack(), loop()  # warm-up
        attack_times, loop_times = [], []
        for _ in range(repeats):  # interleaved, so that a busy spell of the machine hits both
            attack_times.append(timed(attack, device)[1])
            loop_times.append(timed(loop, device)[1])
        t_attack, t_loop = min(attack_times), min(loop_times)
        ratio = t_attack / t_loop
        rows.append(f"| {name} | {n / t_attack:,.0f} | {t_attack:.3f} | {t_loop:.3f} | {ratio:.2f} | "
                    f"{'yes' if ratio <= target else 'no'} |")
    return rows


def robust_table(model, x, y, device, torchattacks, peer_problem, batch_size: int, repeats: int
                 ) -> tuple[list[str], list[str]]:
    """The rows of table 2 and warnings (advex's robust accuracy above torchattacks' at some ε).

    With random starts the two draw different starts (advex from its seeded generator, torchattacks
    from torch's global one), so an image can fall to one start and not the other: table 3 compares
    the attacks themselves, from the same start.
    """
    from advex.evaluate import robust_accuracy

    def evaluators(eps, xs, ys):
        runs = {
            "early": lambda: robust_accuracy(model, xs, ys, eps, steps=STEPS, early_stop=True, batch_size=batch_size),
            "plain": lambda: robust_accuracy(model, xs, ys, eps, steps=STEPS, early_stop=False, batch_size=batch_size),
        }
        if torchattacks is not None:
            runs["peer"] = lambda: torchattacks_robust(torchattacks, model, xs, ys, eps, batch_size, device)
        return runs

    warm = min(len(x), 256)
    for run in evaluators(max(ROBUST_EPS), x[:warm], y[:warm]).values():
        run()

    rows = ["| ε | torchattacks PGD (s) | advex plain loop (s) | advex early stopping (s) | "
            "speed-up over torchattacks (target ≥ 3×) | speed-up over the plain loop | "
            "gradients plain / early | robust accuracy torchattacks / plain / early | "
            "advex ≤ torchattacks | fooled only by torchattacks / only by advex | verdicts early ≠ plain |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    warnings = []
    for eps in ROBUST_EPS:
        runs = evaluators(eps, x, y)
        results = {name: None for name in runs}
        seconds = {name: [] for name in runs}
        for repeat in range(repeats):
            names = list(runs)
            names = names[repeat % len(names):] + names[:repeat % len(names)]  # rotate the order
            for name in names:
                results[name], t = timed(runs[name], device)
                seconds[name].append(t)
        t = {name: min(ts) for name, ts in seconds.items()}
        early, plain = results["early"], results["plain"]
        differ = int((early.robust != plain.robust).sum())
        if "peer" in results:
            peer = results["peer"]
            peer_acc = peer.float().mean().item()
            peer_time = f"{t['peer']:.2f}"
            speedup_peer = f"{t['peer'] / t['early']:.1f}×"
            stronger = max(early.robust_accuracy, plain.robust_accuracy) <= peer_acc
            verdict = "yes" if stronger else "**no**"
            peer_acc_text = f"{peer_acc:.4f}"
            only = f"{int((early.robust & ~peer).sum())} / {int((peer & ~early.robust).sum())}"
            if not stronger:
                warnings.append(f"ε = {eps}, random starts: advex robust accuracy {early.robust_accuracy:.4f} (early) / "
                                f"{plain.robust_accuracy:.4f} (plain) > torchattacks {peer_acc:.4f}")
        else:
            peer_time = speedup_peer = peer_acc_text = verdict = only = "n/a"
        rows.append(f"| {eps} | {peer_time} | {t['plain']:.2f} | {t['early']:.2f} | {speedup_peer} | "
                    f"{t['plain'] / t['early']:.1f}× | {plain.gradients:,} / {early.gradients:,} | "
                    f"{peer_acc_text} / {plain.robust_accuracy:.4f} / {early.robust_accuracy:.4f} | {verdict} | {only} | "
                    f"{differ} |")
    if peer_problem:
        rows.append("")
        rows.append(f"torchattacks columns: n/a — {peer_problem}.")
    return rows, warnings


def same_start_table(model, x, y, device, torchattacks, batch_size: int) -> tuple[list[str], list[str]]:
    """Table 3: both attacks without random start, so from the same point x: advex must fool every image torchattacks fools.

    From the same start the iterates of the two are the same (same step, same projection); advex
    also scores every iterate and keeps each image's best, torchattacks returns the last one.
    Returns the rows and the problems (images torchattacks fools and advex does not).
    """
    from advex.evaluate import robust_accuracy

    rows = ["| ε | robust accuracy torchattacks / advex (early stopping) | "
            "images fooled by torchattacks, not by advex (must be 0) | images fooled by advex, not by torchattacks |",
            "|---|---|---|---|"]
    problems = []
    for eps in ROBUST_EPS:
        peer = torchattacks_robust(torchattacks, model, x, y, eps, batch_size, device, random_start=False)
        ours = robust_accuracy(model, x, y, eps, steps=STEPS, random_start=False, early_stop=True,
                               batch_size=batch_size).robust
        missed, extra = int((ours & ~peer).sum()), int((peer & ~ours).sum())
        rows.append(f"| {eps} | {peer.float().mean().item():.4f} / {ours.float().mean().item():.4f} | {missed} | {extra} |")
        if missed:
            problems.append(f"ε = {eps}, same start: torchattacks fools {missed} image(s) that advex does not")
    return rows, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None,
                        help="where to compute (default: advex.get_device(), i.e. ADVEX_DEVICE, else CUDA if present)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--images", type=int, default=10_000, help="MNIST test images for table 2 (default: all 10,000)")
    parser.add_argument("--throughput-images", type=int, default=None,
                        help="images for table 1 (default: the batch size, capped at --images)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="batch size of every evaluator (default: robust_accuracy's, 10,000 on CUDA, 1,000 on the CPU)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of table 1, best kept (default 3)")
    parser.add_argument("--robust-repeats", type=int, default=1, help="timed runs of table 2, best kept (default 1)")
    parser.add_argument("--check-images", type=int, default=None,
                        help="images for table 3, the same-start check (default: --images)")
    parser.add_argument("--skip-throughput", action="store_true", help="leave out table 1")
    parser.add_argument("--skip-robust", action="store_true", help="leave out table 2")
    parser.add_argument("--skip-check", action="store_true", help="leave out table 3")
    args = parser.parse_args(argv)
    for name in ("images", "repeats", "robust_repeats", "threads", "throughput_images", "batch_size", "check_images"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer")

    if args.device:
        os.environ["ADVEX_DEVICE"] = args.device
    os.environ.setdefault("ADVEX_PROGRESS", "0")
    if args.threads:
        torch.set_num_threads(args.threads)

    import advex
    from advex.data import load_mnist
    from advex.models import mnist_classifier

    try:
        device = advex.get_device()
    except ValueError as err:
        print(f"bench_attacks.py: {err}", file=sys.stderr)
        return 2
    torchattacks, peer_problem = load_torchattacks()
    if peer_problem:
        print(f"bench_attacks.py: {peer_problem}; the torchattacks columns are skipped", file=sys.stderr)

    model = mnist_classifier("cnn").eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x, y = load_mnist("test")
    x, y = x[:args.images].to(device), y[:args.images].to(device)
    n = len(x)
    batch_size = args.batch_size or (10_000 if device.type == "cuda" else 1000)
    throughput_n = min(n, args.throughput_images or batch_size)

    print(header(advex, device, torchattacks, args, n, throughput_n, batch_size), flush=True)
    warnings, problems = [], []
    if not args.skip_throughput:
        print(f"\nTable 1 — attack overhead ({throughput_n:,} images in one batch; best of {args.repeats} after a warm-up)\n")
        print("\n".join(throughput_table(model, x[:throughput_n], y[:throughput_n], device, args.repeats)), flush=True)
    if not args.skip_robust:
        print(f"\nTable 2 — robust accuracy of the standard CNN, PGD-{STEPS} L∞, step 2.5 ε / {STEPS}, one random start "
              f"({n:,} images; best of {args.robust_repeats} after a warm-up)\n")
        rows, warnings = robust_table(model, x, y, device, torchattacks, peer_problem, batch_size, args.robust_repeats)
        print("\n".join(rows), flush=True)
    if not args.skip_check and torchattacks is not None:
        check_n = min(n, args.check_images or n)
        print(f"\nTable 3 — the same attacks from the same start (no random start), {check_n:,} images, untimed\n")
        rows, problems = same_start_table(model, x[:check_n], y[:check_n], device, torchattacks, batch_size)
        print("\n".join(rows), flush=True)
    if warnings:
        print("\nbench_attacks.py: note: with random starts advex's robust accuracy is above torchattacks' here (the two "
              "draw different starts; table 3 compares them from the same start):\n  " + "\n  ".join(warnings),
              file=sys.stderr)
    if problems:
        print("\nbench_attacks.py: advex is WEAKER than torchattacks from the same start (it must fool every image "
              "torchattacks fools):\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
