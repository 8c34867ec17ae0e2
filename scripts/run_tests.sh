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
python -m pytest tests chapters --nbval-lax -p no:cacheprovider -rs --timeout=1800 "$@"
