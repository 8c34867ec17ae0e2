"""Execute the chapter notebooks on one device, timing every cell; compare two such runs.

Used by ``scripts/check_cuda.sh``; runnable on its own from the repository root:

    python benchmarks/run_notebooks.py run --device cuda --out _build/check_cuda/cuda [chapters/*.ipynb]
    python benchmarks/run_notebooks.py run --device cpu  --out _build/check_cuda/cpu
    python benchmarks/run_notebooks.py compare _build/check_cuda/cpu/timings.json _build/check_cuda/cuda/timings.json

``run`` executes each notebook in a fresh kernel (nbclient, the kernel of the interpreter running
this script), in the notebook's own folder as the book build does, with ``ADVEX_DEVICE`` set to
``--device`` and ``ADVEX_PROGRESS=0``.  It writes the executed notebooks and ``timings.json`` (whole
notebook and per code cell wall times, and which cells trained a model because the model cache had
no entry for this device type) to ``--out``, prints a Markdown table, and exits 1 if a notebook failed.

``compare`` prints, per notebook, both wall times and the code cells slower on the second run (CUDA)
than on the first (CPU) by more than ``--tolerance`` (relative) and ``--slack`` seconds.  A cell that
trained a model in one run and not in the other is flagged, since its times are not comparable
(run the notebooks once on each device first to fill the model cache).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRAINING_MARK = "[advex] training"


def _first_line(source: str) -> str:
    for line in source.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            return line.strip()[:70]
    return source.strip().splitlines()[0][:70] if source.strip() else ""


def _trained(cell) -> bool:
    return any(TRAINING_MARK in (out.get("text") or "") for out in cell.get("outputs", []) if out.get("output_type") == "stream")


def execute(path: Path, out_dir: Path, timeout: int) -> dict:
    """Execute one notebook; return its record (wall time, per-cell times, error if any)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    started: dict[int, float] = {}
    seconds: dict[int, float] = {}

    def before(cell, cell_index, **_):
        started[cell_index] = time.perf_counter()

    def after(cell, cell_index, **_):
        seconds[cell_index] = time.perf_counter() - started.pop(cell_index, time.perf_counter())

    client = NotebookClient(nb, timeout=timeout, kernel_name=nb.metadata.get("kernelspec", {}).get("name", "python3"),
                            resources={"metadata": {"path": str(path.parent)}},
                            on_cell_execute=before, on_cell_executed=after)
    error = None
    start = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as err:
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip()   # no terminal colours in the tables
        error = text.splitlines()[-1] if text else err.__class__.__name__
    except Exception as err:  # a dead kernel, a timeout: report it and go on with the next notebook
        error = f"{err.__class__.__name__}: {err}"
    wall = time.perf_counter() - start
    nbformat.write(nb, out_dir / path.name)
    cells = [{"index": i, "seconds": round(seconds[i], 4), "trained": _trained(cell), "first_line": _first_line(cell.source)}
             for i, cell in enumerate(nb.cells) if cell.cell_type == "code" and i in seconds]
    return {"notebook": path.name, "seconds": round(wall, 3), "error": error, "cells": cells}


def check_kernel() -> None:
    """Warn when the notebooks' kernel would not be this interpreter (jupyter_client maps 'python' to it)."""
    try:
        from jupyter_client.kernelspec import KernelSpecManager
        argv0 = KernelSpecManager().get_kernel_spec("python3").argv[0]
    except Exception as err:  # no kernel spec at all: nbclient will say so
        print(f"run_notebooks.py: warning: cannot read the python3 kernel spec ({err})", file=sys.stderr)
        return
    if Path(argv0).name not in ("python", "python3", f"python3.{sys.version_info[1]}") and \
            Path(argv0).resolve() != Path(sys.executable).resolve():
        print(f"run_notebooks.py: warning: the python3 kernel runs {argv0}, not {sys.executable}", file=sys.stderr)


def run(args) -> int:
    os.environ["ADVEX_DEVICE"] = args.device
    os.environ.setdefault("ADVEX_PROGRESS", "0")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    notebooks = [Path(p).resolve() for p in args.notebooks] or sorted((REPO / "chapters").glob("*.ipynb"))
    check_kernel()
    records = []
    for path in notebooks:
        print(f"[{args.device}] {path.name} ...", file=sys.stderr, flush=True)
        record = execute(path, out_dir, args.timeout)
        records.append(record)
        status = "ok" if record["error"] is None else f"FAILED: {record['error']}"
        print(f"[{args.device}] {path.name}: {record['seconds']:.1f} s, {status}", file=sys.stderr, flush=True)
        # written after every notebook, so that a run stopped by a time limit keeps what it measured
        result = {"device": args.device, "python": sys.executable,
                  "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "notebooks": records}
        (out_dir / "timings.json").write_text(json.dumps(result, indent=1))
    print(f"\n| notebook ({args.device}) | wall time (s) | slowest cell (s) | cells that trained a model | status |")
    print("|---|---|---|---|---|")
    for r in records:
        slowest = max(r["cells"], key=lambda c: c["seconds"], default=None)
        slow_text = f"{slowest['seconds']:.1f} (cell {slowest['index']})" if slowest else "–"
        trained = ", ".join(str(c["index"]) for c in r["cells"] if c["trained"]) or "none"
        print(f"| {r['notebook']} | {r['seconds']:.1f} | {slow_text} | {trained} | "
              f"{'ok' if r['error'] is None else 'FAILED: ' + r['error'][:80]} |")
    print(f"| total | {sum(r['seconds'] for r in records):.1f} | | | |")
    return 0 if all(r["error"] is None for r in records) else 1


def compare(args) -> int:
    first, second = (json.loads(Path(p).read_text()) for p in (args.first, args.second))
    a, b = first["device"], second["device"]
    by_name = {r["notebook"]: r for r in first["notebooks"]}
    print(f"| notebook | {a} (s) | {b} (s) | {b} / {a} | code cells slower on {b} (> {args.tolerance:.0%} and "
          f"> {args.slack} s) |")
    print("|---|---|---|---|---|")
    details, slower_total = [], 0
    for r2 in second["notebooks"]:
        r1 = by_name.get(r2["notebook"])
        if r1 is None:
            print(f"| {r2['notebook']} | – | {r2['seconds']:.1f} | – | not run on {a} |")
            continue
        cells1 = {c["index"]: c for c in r1["cells"]}
        slower = []
        for c2 in r2["cells"]:
            c1 = cells1.get(c2["index"])
            if c1 and c2["seconds"] > c1["seconds"] * (1 + args.tolerance) + args.slack:
                note = " (trained a model on one device only: not comparable)" if c1["trained"] != c2["trained"] else ""
                slower.append(str(c2["index"]))
                details.append(f"- {r2['notebook']}, cell {c2['index']}: {c1['seconds']:.2f} s on {a}, "
                               f"{c2['seconds']:.2f} s on {b}{note} — `{c2['first_line']}`")
        slower_total += len(slower)
        ratio = r2["seconds"] / r1["seconds"] if r1["seconds"] else float("nan")
        print(f"| {r2['notebook']} | {r1['seconds']:.1f} | {r2['seconds']:.1f} | {ratio:.2f} | {', '.join(slower) or 'none'} |")
    total1 = sum(r["seconds"] for r in first["notebooks"])
    total2 = sum(r["seconds"] for r in second["notebooks"])
    print(f"| total | {total1:.1f} | {total2:.1f} | {total2 / total1 if total1 else float('nan'):.2f} | {slower_total} cells |")
    if details:
        print(f"\nCode cells slower on {b} than on {a}:\n" + "\n".join(details))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="execute notebooks on one device")
    p_run.add_argument("--device", required=True, help="ADVEX_DEVICE for the kernels: cpu, cuda, cuda:1 ...")
    p_run.add_argument("--out", required=True, help="folder for the executed notebooks and timings.json")
    p_run.add_argument("--timeout", type=int, default=3600, help="seconds a cell may run (default 3600)")
    p_run.add_argument("notebooks", nargs="*", help="notebooks (default: chapters/*.ipynb)")
    p_cmp = sub.add_parser("compare", help="compare two timings.json (e.g. CPU, then CUDA)")
    p_cmp.add_argument("first")
    p_cmp.add_argument("second")
    p_cmp.add_argument("--tolerance", type=float, default=0.10, help="relative slack before a cell counts as slower")
    p_cmp.add_argument("--slack", type=float, default=0.25, help="absolute slack in seconds (timer and launch noise)")
    args = parser.parse_args(argv)
    return run(args) if args.command == "run" else compare(args)


if __name__ == "__main__":
    sys.exit(main())
