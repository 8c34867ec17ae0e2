#!/usr/bin/env bash
# Set everything up, execute every chapter and build the HTML book into _build/html.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
# -W: a warning (or a notebook that fails to execute) fails the build.
ADVEX_PROGRESS=0 jupyter-book build . -W -n --keep-going
echo "The book is in _build/html/index.html"
