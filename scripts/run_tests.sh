#!/usr/bin/env bash
# Set everything up and run every test: the advex unit and property tests, every chapter
# notebook under nbval in a fresh kernel, the book build with warnings as errors, and the
# headless-browser test of the static sliders (skipped, with the reason, without Chromium).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
export ADVEX_PROGRESS=0
# One thread per worker: two workers with two OpenMP threads each would put four threads on two cores, and
# libgomp's threads spin while they wait at each parallel region's barrier, taking the core from the other
# worker.  An OMP_NUM_THREADS set by the caller wins (e.g. with -n 0, where one process has the cores to itself).
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
# Two pytest-xdist workers: the notebooks that share no model-cache entry, the assignments' grading, the book
# build and the unit tests run side by side (tests/conftest.py says what is kept together and why); the log
# ends with the ten slowest tests.  Extra arguments come last, so `-n 0` runs everything in this process.
python -m pytest tests chapters --nbval-lax -p no:cacheprovider -rs --timeout=1800 \
  -n 2 --dist loadscope --no-loadscope-reorder --durations=10 "$@"
