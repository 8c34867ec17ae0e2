"""Benchmark of the book's black-box attacks against torchattacks 3.5.1 (a benchmark, not a timed test).

Prints a header and Markdown tables, ready to paste into ``book/benchmarks.md``, and writes them with the raw
numbers to ``--out`` (default ``_build/benchmarks/``: ``bench_blackbox.md`` and ``bench_blackbox.json``).
The victim is the chapter-4 CNN (``advex.models.mnist_classifier("cnn")``), the images the first ``--images``
(default 100) MNIST test digits it classifies correctly.

0. a header: date, device, torch version, CPU, threads, the load average of the machine before and after (the
   timings of a shared machine mean little without it), advex version and git commit, torchattacks version;
1. one-pixel attack by differential evolution (Su, Vargas & Sakurai 2019): advex
   ``pixel_attack_with_stats(pixels=1, population=P, iterations=100)`` against torchattacks'
   ``OnePixel(model, pixels=1, steps=100, popsize=40)``.  torchattacks hands ``popsize`` to its copy of scipy's
   ``differential_evolution`` as a *multiplier*: its population is max(5, ⌊40 / 3⌋ · 3) = 39 members for one
   pixel of a 1-channel image (3 parameters: row, column, grey level), so advex gets P = 39 too: both evaluate
   at most 39 · 101 = 3,939 candidates per image.  advex also spends the clean query (3,940 at most);
   torchattacks spends no clean query but re-queries its best member alone after every generation, for its
   stopping test (4,039 at most).  The algorithms differ: advex is Su et al.'s DE/rand/1 with F = 0.5;
   torchattacks runs scipy's 'best1bin' with recombination 1 (DE/best/1, F dithered in [0.5, 1)) and re-draws
   out-of-box parameters at random.  Queries are counted by the model (``QueryCounter``), per image; the success
   of each returned image is checked with the model;
2. forward throughput of the same CNN at the batch sizes the two attacks use (torchattacks: one image's
   population, and one image for its stopping test; advex: all populations of the images still attacked).
   Table 1 also gives the seconds each attack spent inside the model's forward passes (timed call by call):
   when both spend most of their time there, the speed-up is bounded by what batching buys on this machine;
3. Square attack, L∞, ε = 0.3: advex ``square_attack_with_stats(queries=Q + 2)`` against torchattacks'
   ``Square(model, norm='Linf', eps=0.3, n_queries=Q, p_init=0.8, n_restarts=1, seed=s, loss='margin',
   resc_schedule=True)``, Q = 1,000 (``--square-queries``), seeds s = 0 … 4 (``--square-seeds``): one seed's time
   is set by the one digit it finds hardest (the attack runs until that digit falls), so the seeds' times are
   summed, and the forward calls counted.  Both search 1 + Q candidates per image (the stripes,
   then Q squares); advex counts the clean query in its budget (Q + 2), torchattacks spends a clean query and a
   final check on top of its n_queries (Q + 3).

Targets (the issue): one-pixel ≥ 10× faster than torchattacks at equal or higher success on 2 CPU cores;
Square at least torchattacks' success, no slower.  Every timing is a wall time after a warm-up, with
``torch.cuda.synchronize()`` around it on CUDA: one run of each one-pixel attack (minutes each); per seed, the
best of ``--square-repeats`` interleaved runs of each Square attack.  The model's parameters are frozen throughout.

torchattacks is needed only here, never by the book (``pip install --no-deps -r benchmarks/requirements.txt``;
see ``bench_attacks.py``).  Without it the peer columns say so and the rest runs.  Run from the repository root:

    python benchmarks/bench_blackbox.py --device cpu --threads 2       # the CPU figures (100 images)
    python benchmarks/bench_blackbox.py --quick                        # 10 images

Exit status: 0; 1 when advex fools fewer images than torchattacks in either comparison (a regression: advex
weaker than its peer at the same budget); 2 when the requested device is not available.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_attacks import TORCHATTACKS_VERSION, cpu_name, git_commit, load_torchattacks, timed  # noqa: E402

from advex.attacks.queries import QueryCounter  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
STEPS = 100
POPSIZE = 40
SQUARE_EPS = 0.3


class CallLog(QueryCounter):
    """A :class:`QueryCounter` that also records the batch size of every call and the seconds spent in the model
    (synchronised on CUDA, so that the time of each forward pass is its own)."""

    def __init__(self, model):
        super().__init__(model)
        self.sizes: list[int] = []
        self.seconds = 0.0

    def forward(self, x):
        self.sizes.append(int(x.shape[0]))
        logits, t = timed(lambda: super(CallLog, self).forward(x), x.device)
        self.seconds += t
        return logits


def load_average() -> str:
    try:
        return " / ".join(f"{v:.2f}" for v in os.getloadavg()) + " (1 / 5 / 15 min)"
    except OSError:
        return "unknown"


def fooled(model, x_adv, y) -> torch.Tensor:
    with torch.no_grad():
        return model(x_adv).argmax(1) != y


def first_correct(model, x, y, n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` images the model classifies correctly."""
    chosen = []
    for start in range(0, len(x), 1000):
        xb, yb = x[start:start + 1000].to(device), y[start:start + 1000].to(device)
        with torch.no_grad():
            chosen.append((model(xb).argmax(1) == yb).nonzero().flatten().cpu() + start)
        if sum(map(len, chosen)) >= n:
            break
    index = torch.cat(chosen)[:n]
    return x[index].to(device), y[index].to(device)


def torchattacks_population(popsize: int, pixels: int, channels: int) -> int:
    """The members of torchattacks' OnePixel population: scipy's popsize is a multiplier of the parameters."""
    parameters = (2 + channels) * pixels
    return max(5, max(1, int(popsize / parameters)) * parameters)


def throughput(model, batch: int, shape, device, seconds: float = 1.0) -> float:
    """Images per second of the model's forward pass at a batch size (warm-up, then about ``seconds``)."""
    x = torch.rand((batch, *shape), device=device)
    with torch.no_grad():
        model(x)
        _, t = timed(lambda: model(x), device)
        reps = max(1, min(200, int(seconds / max(t, 1e-6))))
        _, t = timed(lambda: [model(x) for _ in range(reps)], device)
    return batch * reps / t


def median(values) -> float | None:
    values = [int(v) for v in values]
    return statistics.median(values) if values else None


# --------------------------------------------------------------------------- the comparisons

def onepixel(model, x, y, device, torchattacks) -> dict:
    from advex.attacks.evolution import pixel_attack_with_stats

    n, shape = len(x), tuple(x.shape[1:])
    population = torchattacks_population(POPSIZE, 1, shape[0])
    # warm-up (threads, allocator, code paths) on two images and a short search
    pixel_attack_with_stats(model, x[:2], y[:2], population=population, iterations=2)
    log = CallLog(model)
    (x_adv, success, used), t = timed(lambda: pixel_attack_with_stats(log, x, y, 1, population=population,
                                                                      iterations=STEPS, seed=0), device)
    verified = fooled(model, x_adv, y).cpu()
    used = used.cpu()
    ours = {"population": population, "max_queries_per_image": 1 + population * (STEPS + 1),
            "queries_max_used": int(used.max()), "queries_total": int(used.sum()),
            "model_calls": log.calls, "queries_counted": log.queries,
            "success": int(verified.sum()), "success_reported": int(success.sum()),
            "flag_disagrees": int((verified != success.cpu()).sum()),
            "median_queries_fooled": median(used[verified]), "seconds": t, "images_per_s": n / t,
            "mean_batch": log.queries / log.calls, "forward_seconds": log.seconds}
    result = {"advex": ours}
    if torchattacks is None:
        return result
    import numpy as np

    plog = CallLog(model)
    attack = torchattacks.OnePixel(plog, pixels=1, steps=STEPS, popsize=POPSIZE)
    attack(x[:1], y[:1])   # warm-up
    plog.reset()
    plog.sizes.clear()
    np.random.seed(0)      # scipy's solver draws from numpy's global generator
    queries = torch.zeros(n, dtype=torch.int64)

    def run():
        # torchattacks' forward loops over the images one by one; calling it per image is the same loop and
        # lets the model count each image's queries
        adv = []
        for i in range(n):
            before = plog.queries
            adv.append(attack(x[i:i + 1], y[i:i + 1]))
            queries[i] = plog.queries - before
        return torch.cat(adv)
    peer_adv, t = timed(run, device)
    peer_fooled = fooled(model, peer_adv, y).cpu()
    peer_population = torchattacks_population(POPSIZE, 1, shape[0])
    result["torchattacks"] = {
        "population": peer_population, "max_queries_per_image": peer_population * (STEPS + 1) + STEPS,
        "queries_max_used": int(queries.max()), "queries_total": int(queries.sum()), "model_calls": plog.calls,
        "success": int(peer_fooled.sum()), "median_queries_fooled": median(queries[peer_fooled]), "seconds": t,
        "images_per_s": n / t, "mean_batch": plog.queries / plog.calls,
        "forward_seconds": plog.seconds}
    result["only_advex"] = int((verified & ~peer_fooled).sum())
    result["only_torchattacks"] = int((peer_fooled & ~verified).sum())
    return result


def square(model, x, y, device, torchattacks, budget: int, repeats: int, seeds: int) -> dict:
    """Both attacks with seeds 0 … ``seeds`` − 1, each seed ``repeats`` times, interleaved (so that a busy spell of
    a shared machine hits both), the best time of each seed kept and the seeds' times summed.

    Several seeds, because one seed measures mostly luck: nearly every digit falls within a few dozen queries, and
    the attack runs until its hardest digit falls, one forward pass per iteration, so the time of one seed is
    set by the one digit a seed happens to find hardest (700 iterations for one seed, 114 for another).  The
    forward calls each attack makes are counted and reported with the time per call.  The models are wrapped in
    a :class:`QueryCounter`, which adds no synchronisation (unlike :class:`CallLog`)."""
    from advex.attacks import square_attack_with_stats

    counters = {"advex": QueryCounter(model)}
    if torchattacks is not None:
        counters["torchattacks"] = QueryCounter(model)

    def attacks(seed):
        runs = {"advex": lambda: square_attack_with_stats(counters["advex"], x, y, SQUARE_EPS, queries=budget + 2,
                                                          p_init=0.8, seed=seed)}
        if torchattacks is not None:   # it seeds torch's generator itself
            attack = torchattacks.Square(counters["torchattacks"], norm="Linf", eps=SQUARE_EPS, n_queries=budget,
                                         p_init=0.8, n_restarts=1, seed=seed, loss="margin", resc_schedule=True)
            runs["torchattacks"] = lambda: attack(x, y)
        return runs

    for run in attacks(0).values():                      # warm-up
        run()
    totals = {name: {"seconds": 0.0, "seconds_per_seed": [], "queries_total": 0, "model_calls": 0, "success": 0,
                     "success_reported": 0, "max_linf": 0.0} for name in counters}
    fooled_by = {name: [] for name in counters}
    used_fooled = []
    for seed in range(seeds):
        runs = attacks(seed)
        best, outputs = {name: math.inf for name in runs}, {}
        for repeat in range(repeats):
            names = list(runs)[repeat % len(runs):] + list(runs)[:repeat % len(runs)]   # rotate the order
            for name in names:
                counters[name].reset()     # so that it holds the counts of this attack's last run
                outputs[name], t = timed(runs[name], device)
                best[name] = min(best[name], t)
        for name, output in outputs.items():   # seeded: every repeat gives the same images
            x_adv = output[0] if name == "advex" else output
            verified = fooled(model, x_adv, y).cpu()
            total = totals[name]
            total["seconds"] += best[name]
            total["seconds_per_seed"].append(best[name])
            total["queries_total"] += counters[name].queries
            total["model_calls"] += counters[name].calls
            total["success"] += int(verified.sum())
            total["max_linf"] = max(total["max_linf"], (x_adv - x).abs().flatten(1).amax(1).max().item())
            fooled_by[name].append(verified)
            if name == "advex":
                total["success_reported"] += int(output[1].sum())
                used_fooled.append(output[2].cpu()[verified])
    result = {"repeats": repeats, "seeds": seeds}
    for name, total in totals.items():
        total.update(max_queries_per_image=budget + (2 if name == "advex" else 3),
                     images_per_s=seeds * len(x) / total["seconds"],
                     ms_per_call=1000 * total["seconds"] / total["model_calls"])
        result[name] = total
    result["advex"]["median_queries_fooled"] = median(torch.cat(used_fooled))
    if "torchattacks" in result:
        ours, peer = torch.cat(fooled_by["advex"]), torch.cat(fooled_by["torchattacks"])
        result["only_advex"] = int((ours & ~peer).sum())
        result["only_torchattacks"] = int((peer & ~ours).sum())
    return result


# --------------------------------------------------------------------------- the tables

def fmt(value, spec: str = ",.0f") -> str:
    return "n/a" if value is None else format(value, spec)


def onepixel_table(r: dict, n: int, peer_problem: str | None) -> list[str]:
    rows = ["| attack | population | max queries / image | fooled (of {n}) | median queries of fooled | "
            "queries (all images) | time (s) | images / s | of which in the model's forward passes (s) | "
            "time outside them |".format(n=n),
            "|---|---|---|---|---|---|---|---|---|---|"]
    names = {"advex": "advex `pixel_attack_with_stats` (DE/rand/1, F = 0.5)",
             "torchattacks": f"torchattacks `OnePixel(popsize={POPSIZE})` (DE/best/1 bin, CR = 1)"}
    for key in ("torchattacks", "advex"):
        if key not in r:
            rows.append(f"| {names[key]} | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a |")
            continue
        a = r[key]
        outside = (a["seconds"] - a["forward_seconds"]) / a["seconds"]
        rows.append(f"| {names[key]} | {a['population']} | {a['max_queries_per_image']:,} | {a['success']} | "
                    f"{fmt(a['median_queries_fooled'])} | {a['queries_total']:,} | {a['seconds']:.1f} | "
                    f"{a['images_per_s']:.2f} | {a['forward_seconds']:.1f} | {outside:.0%} |")
    if "torchattacks" in r:
        ours, peer = r["advex"], r["torchattacks"]
        speed = peer["seconds"] / ours["seconds"]
        per_query = (peer["seconds"] / peer["queries_total"]) / (ours["seconds"] / ours["queries_total"])
        floor = peer["forward_seconds"] / ours["forward_seconds"]
        rows += ["", f"Speed-up of advex over torchattacks: {speed:.1f}× in wall time (target ≥ 10×: "
                 f"{'yes' if speed >= 10 else 'no'}), {per_query:.1f}× per query; in the forward passes alone: "
                 f"{floor:.1f}× (mean batch {peer['mean_batch']:.1f} vs {ours['mean_batch']:.0f} images).  "
                 f"Fooled only by advex / only by torchattacks: {r['only_advex']} / {r['only_torchattacks']}."]
    elif peer_problem:
        rows += ["", f"torchattacks row: n/a — {peer_problem}."]
    return rows


def throughput_table(points: dict[int, float]) -> list[str]:
    rows = ["| batch size | images / s |", "|---|---|"]
    rows += [f"| {batch:,} | {rate:,.0f} |" for batch, rate in points.items()]
    return rows


def square_table(r: dict, n: int, budget: int, peer_problem: str | None) -> list[str]:
    seeds = r["seeds"]
    rows = [f"| attack | max queries / image | fooled (of {seeds} × {n}) | queries (all) | forward calls | "
            "time (s), sum over seeds | ms per forward call |",
            "|---|---|---|---|---|---|---|"]
    names = {"advex": f"advex `square_attack_with_stats(queries={budget + 2:,})`",
             "torchattacks": f"torchattacks `Square(n_queries={budget:,})`"}
    for key in ("torchattacks", "advex"):
        if key not in r:
            rows.append(f"| {names[key]} | n/a | n/a | n/a | n/a | n/a | n/a |")
            continue
        a = r[key]
        rows.append(f"| {names[key]} | {a['max_queries_per_image']:,} | {a['success']} | {a['queries_total']:,} | "
                    f"{a['model_calls']:,} | {a['seconds']:.2f} | {a['ms_per_call']:.2f} |")
    if "torchattacks" in r:
        ours, peer = r["advex"], r["torchattacks"]
        speed = peer["seconds"] / ours["seconds"]
        per_call = peer["ms_per_call"] / ours["ms_per_call"]
        verdict = "yes" if speed >= 1 else "no"
        rows += ["", f"Speed-up of advex over torchattacks: {speed:.2f}× in time over the {seeds} seeds (target ≥ 1: "
                 f"{verdict}), {per_call:.2f}× per forward call.  Time per seed (s): advex "
                 + ", ".join(f"{t:.2f}" for t in ours["seconds_per_seed"]) + "; torchattacks "
                 + ", ".join(f"{t:.2f}" for t in peer["seconds_per_seed"])
                 + f".  Fooled only by advex / only by torchattacks: {r['only_advex']} / {r['only_torchattacks']}."]
    elif peer_problem:
        rows += ["", f"torchattacks row: n/a — {peer_problem}."]
    return rows


def header(advex, device, torchattacks, args, n: int, load_before: str) -> list[str]:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none (CPU run)"
    peer = getattr(torchattacks, "__version__", "?") if torchattacks else "not installed"
    if torchattacks and peer != TORCHATTACKS_VERSION:
        peer += f" (the benchmark pins {TORCHATTACKS_VERSION})"
    return [f"- date: {now}",
            f"- device: {device} — GPU: {gpu}",
            f"- torch: {torch.__version__}; torch CPU threads: {torch.get_num_threads()}"
            + (" (set with --threads)" if args.threads else " (torch's default)"),
            f"- CPU: {cpu_name()}, {os.cpu_count()} logical cores; Python {platform.python_version()}",
            f"- load average before: {load_before}",
            f"- advex {advex.__version__}, git {git_commit()}; torchattacks {peer}",
            f"- images: the first {n:,} MNIST test digits the chapter-4 CNN classifies correctly"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None,
                        help="where to compute (default: advex.get_device(), i.e. ADVEX_DEVICE, else CUDA if present)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--images", type=int, default=100, help="correctly classified test digits (default 100)")
    parser.add_argument("--quick", action="store_true", help="10 images (overrides --images)")
    parser.add_argument("--square-queries", type=int, default=1000, help="torchattacks' n_queries (default 1,000)")
    parser.add_argument("--square-repeats", type=int, default=5,
                        help="timed runs of each Square attack, interleaved, best kept (default 5)")
    parser.add_argument("--square-seeds", type=int, default=5,
                        help="seeds of each Square attack, times summed (default 5)")
    parser.add_argument("--skip-onepixel", action="store_true", help="leave out tables 1 and 2")
    parser.add_argument("--skip-square", action="store_true", help="leave out table 3")
    parser.add_argument("--out", type=Path, default=REPO / "_build" / "benchmarks",
                        help="folder for bench_blackbox.md and bench_blackbox.json (default _build/benchmarks)")
    args = parser.parse_args(argv)
    for name in ("images", "threads", "square_queries", "square_repeats"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer")
    n_images = 10 if args.quick else args.images

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
        print(f"bench_blackbox.py: {err}", file=sys.stderr)
        return 2
    torchattacks, peer_problem = load_torchattacks()
    if peer_problem:
        print(f"bench_blackbox.py: {peer_problem}; the torchattacks rows are skipped", file=sys.stderr)

    load_before = load_average()
    model = mnist_classifier("cnn").to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x, y = load_mnist("test")
    x, y = first_correct(model, x, y, n_images, device)
    n = len(x)

    lines = header(advex, device, torchattacks, args, n, load_before)
    print("\n".join(lines), flush=True)
    results: dict = {"header": lines, "images": n, "device": str(device), "threads": torch.get_num_threads(),
                     "load_average_before": load_before}
    problems = []

    def section(title: str, rows: list[str]) -> None:
        lines.extend(["", title, ""] + rows)
        print("\n" + title + "\n\n" + "\n".join(rows), flush=True)

    if not args.skip_onepixel:
        start = time.perf_counter()
        r = onepixel(model, x, y, device, torchattacks)
        results["onepixel"] = r
        section(f"Table 1 — one-pixel attack by differential evolution, {STEPS} generations ({n} images; one run "
                f"after a warm-up, {time.perf_counter() - start:.0f} s in all)", onepixel_table(r, n, peer_problem))
        batches = sorted({1, r["advex"]["population"], 128, 1000, r["advex"]["population"] * n})
        points = {b: throughput(model, b, tuple(x.shape[1:]), device) for b in batches}
        results["forward_images_per_s"] = points
        section("Table 2 — forward throughput of the CNN by batch size (torchattacks queries one population, "
                f"{r['advex']['population']}, and one image per generation; advex all populations at once)",
                throughput_table(points))
        if "torchattacks" in r and r["advex"]["success"] < r["torchattacks"]["success"]:
            problems.append(f"one-pixel: advex fools {r['advex']['success']} images, torchattacks "
                            f"{r['torchattacks']['success']}")
    if not args.skip_square:
        r = square(model, x, y, device, torchattacks, args.square_queries, args.square_repeats, args.square_seeds)
        results["square"] = r
        section(f"Table 3 — Square attack, L∞, ε = {SQUARE_EPS}, {args.square_queries:,} queries after the "
                f"initialisation ({n} images, seeds 0 to {args.square_seeds - 1}; per seed the best of "
                f"{args.square_repeats} interleaved runs after a warm-up)",
                square_table(r, n, args.square_queries, peer_problem))
        if "torchattacks" in r and r["advex"]["success"] < r["torchattacks"]["success"]:
            problems.append(f"Square: advex fools {r['advex']['success']} images, torchattacks "
                            f"{r['torchattacks']['success']}")

    results["load_average_after"] = load_average()
    lines += ["", f"- load average after: {results['load_average_after']}"]
    print(lines[-1], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_blackbox.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (args.out / "bench_blackbox.json").write_text(json.dumps(results, indent=1, default=str) + "\n", encoding="utf-8")
    print(f"\nwritten: {args.out / 'bench_blackbox.md'}, {args.out / 'bench_blackbox.json'}", flush=True)
    if problems:
        print("\nbench_blackbox.py: advex is WEAKER than torchattacks at the same budget:\n  " + "\n  ".join(problems),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
