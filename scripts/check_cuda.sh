#!/usr/bin/env bash
# Check the book on a CUDA machine: every chapter notebook on CUDA and on the CPU (per-notebook and
# per-cell wall times, and the cells slower on CUDA), the unit tests with ADVEX_DEVICE=cuda, and the
# attack benchmark on CUDA and on the CPU of the same machine.  Installs nothing and needs no
# network, so it runs on an offline GPU box:
#
#   scripts/check_cuda.sh [STAGE ...]
#
# STAGE: notebooks-cuda notebooks-cpu compare tests bench-cuda bench-cpu, or the groups
#        notebooks (= the first three), bench (= the last two), all (default).  Stages can run in
#        separate calls: compare reads the timings the notebook stages left in CHECK_CUDA_OUT.
#        Models are cached per device type, so on a fresh machine the first notebook run on each
#        device trains them (compare flags those cells); run the notebook stages twice for warm timings.
#
# Environment:
#   PYTHON            the interpreter (default: .venv/bin/python if the repository has a .venv, else
#                     python3, e.g. a system-wide CUDA torch).  It needs torch with CUDA, advex (installed,
#                     or found through src/), nbclient + ipykernel for the notebooks, pytest for the tests;
#                     torchattacks (benchmarks/requirements.txt) is optional.
#   CHECK_CUDA_OUT    folder for logs, executed notebooks, timings (default: _build/check_cuda)
#   BENCH_ARGS        extra arguments for benchmarks/bench_attacks.py (e.g. "--images 2000 --repeats 1")
#   ADVEX_HOME        where advex finds its assets and model cache (default: <repo>/.advex).  Offline,
#                     copy .advex/data from a machine that ran scripts/setup.sh (mnist.npz at least).
#
# Exit status: 1 with a message when torch cannot see a CUDA device (or cannot be imported); else 0
# when every stage passed, 1 when one failed (each stage's log is in CHECK_CUDA_OUT).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)

if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON="$REPO/.venv/bin/python"; else PYTHON=python3; fi
fi
OUT_DIR="${CHECK_CUDA_OUT:-$REPO/_build/check_cuda}"
BENCH_ARGS="${BENCH_ARGS:-}"
export ADVEX_PROGRESS=0
# chapter 5 trains its full recipe on a GPU by default; the CUDA-vs-CPU comparison needs the same (CPU-sized) recipe on both
export ADVEX_FULL_RECIPE="${ADVEX_FULL_RECIPE:-0}"

die() { echo "check_cuda.sh: $*" >&2; exit 1; }

# ---------------------------------------------------------------- stages asked for
STAGES=()
[ $# -eq 0 ] && set -- all
for arg in "$@"; do
  case "$arg" in
    all) STAGES+=(notebooks-cuda notebooks-cpu compare tests bench-cuda bench-cpu) ;;
    notebooks) STAGES+=(notebooks-cuda notebooks-cpu compare) ;;
    bench) STAGES+=(bench-cuda bench-cpu) ;;
    notebooks-cuda|notebooks-cpu|compare|tests|bench-cuda|bench-cpu) STAGES+=("$arg") ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown stage '$arg' (see --help)" ;;
  esac
done

# ---------------------------------------------------------------- is there a CUDA device?
command -v "$PYTHON" >/dev/null 2>&1 || [ -x "$PYTHON" ] || die "no Python interpreter '$PYTHON'; set PYTHON=/path/to/python"
"$PYTHON" -c "import torch" 2>/dev/null || die "torch cannot be imported by $PYTHON; set PYTHON to an interpreter with a CUDA build of torch"
if ! CUDA_INFO=$("$PYTHON" - <<'EOF'
import sys
import torch
if not torch.cuda.is_available():
    build = f"a CUDA {torch.version.cuda} build" if torch.version.cuda else "a CPU-only build"
    print(f"no CUDA device available: torch {torch.__version__} is {build} and torch.cuda.is_available() is False")
    sys.exit(1)
print(f"{torch.cuda.get_device_name(0)}, {torch.cuda.device_count()} device(s), torch {torch.__version__}, "
      f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
EOF
); then
  die "$CUDA_INFO.  This script checks the CUDA path of the book and needs a GPU.  On a CPU machine use scripts/run_tests.sh and python benchmarks/bench_attacks.py --device cpu."
fi

# ---------------------------------------------------------------- advex, assets
if ! "$PYTHON" -c "import advex" 2>/dev/null; then
  export PYTHONPATH="$REPO/src${PYTHONPATH:+:$PYTHONPATH}"   # also seen by the notebook kernels
  "$PYTHON" -c "import advex" 2>/dev/null \
    || die "advex cannot be imported by $PYTHON, even from src/ (are its dependencies installed? see pyproject.toml)"
fi
# MNIST is needed by every stage; the ImageNet assets only by chapter 3 and its tests (a warning)
ASSET_PROBLEMS=$("$PYTHON" - <<'EOF'
from advex.data.assets import ASSETS, AssetError, asset_path
for name in ASSETS:
    try:
        asset_path(name)
    except AssetError as err:
        print(f"{name}: {err}")
EOF
) || die "cannot check advex's assets with $PYTHON"
if [ -n "$ASSET_PROBLEMS" ]; then
  echo "check_cuda.sh: warning: advex's assets are incomplete (chapter 3 and its tests need the ImageNet ones):" >&2
  echo "$ASSET_PROBLEMS" >&2
  echo "check_cuda.sh: offline, copy .advex/data from a machine that ran scripts/setup.sh (or set ADVEX_HOME)" >&2
  if grep -q '^mnist:' <<<"$ASSET_PROBLEMS"; then die "MNIST (mnist.npz) is needed by every stage"; fi
fi

mkdir -p "$OUT_DIR" || die "cannot create $OUT_DIR"
echo "check_cuda.sh: $(date -u '+%Y-%m-%d %H:%M UTC'); $CUDA_INFO; Python: $PYTHON; output: $OUT_DIR"
echo "stages: ${STAGES[*]}"

# ---------------------------------------------------------------- stages
SUMMARY=()
FAILED=0
run_stage() {  # run_stage NAME COMMAND...: runs it, logs to OUT_DIR/NAME.log, records status and wall time
  local name=$1; shift
  local start end status
  echo; echo "==== $name: $*"
  start=$(date +%s.%N)
  "$@" 2>&1 | tee "$OUT_DIR/$name.log"
  status=${PIPESTATUS[0]}
  end=$(date +%s.%N)
  local seconds
  seconds=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
  if [ "$status" -eq 0 ]; then SUMMARY+=("| $name | ok | $seconds |")
  else SUMMARY+=("| $name | FAILED (exit $status, see $OUT_DIR/$name.log) | $seconds |"); FAILED=1; fi
}

needs_notebook_tools() {
  "$PYTHON" -c "import nbclient, nbformat, ipykernel" 2>/dev/null \
    || { echo "nbclient, nbformat and ipykernel are needed to execute the notebooks (pip install nbclient ipykernel)" >&2; return 1; }
}

for stage in "${STAGES[@]}"; do
  case "$stage" in
    notebooks-cuda|notebooks-cpu)
      device=${stage#notebooks-}
      if needs_notebook_tools; then
        run_stage "$stage" "$PYTHON" benchmarks/run_notebooks.py run --device "$device" --out "$OUT_DIR/notebooks-$device"
      else SUMMARY+=("| $stage | FAILED (notebook tools missing) | 0 |"); FAILED=1; fi ;;
    compare)
      if [ -f "$OUT_DIR/notebooks-cpu/timings.json" ] && [ -f "$OUT_DIR/notebooks-cuda/timings.json" ]; then
        run_stage compare "$PYTHON" benchmarks/run_notebooks.py compare \
          "$OUT_DIR/notebooks-cpu/timings.json" "$OUT_DIR/notebooks-cuda/timings.json"
      else SUMMARY+=("| compare | FAILED (run notebooks-cpu and notebooks-cuda first) | 0 |"); FAILED=1; fi ;;
    tests)
      timeout_arg=()
      "$PYTHON" -c "import pytest_timeout" 2>/dev/null && timeout_arg=(--timeout=1800)
      run_stage tests env ADVEX_DEVICE=cuda "$PYTHON" -m pytest tests --ignore tests/test_browser.py \
        --ignore tests/test_book_build.py -p no:cacheprovider -rs "${timeout_arg[@]}" ;;
    bench-cuda|bench-cpu)
      device=${stage#bench-}
      # shellcheck disable=SC2086  # BENCH_ARGS is a list of words
      run_stage "$stage" "$PYTHON" benchmarks/bench_attacks.py --device "$device" $BENCH_ARGS
      run_stage "$stage-certify" "$PYTHON" benchmarks/bench_certify.py --device "$device"
      run_stage "$stage-blackbox" "$PYTHON" benchmarks/bench_blackbox.py --device "$device" --out "$OUT_DIR/blackbox-$device" ;;
  esac
done

# ---------------------------------------------------------------- summary
echo
echo "==== summary ($CUDA_INFO)"
if [[ " ${STAGES[*]} " == *" compare "* ]] && [ -f "$OUT_DIR/compare.log" ]; then
  echo; cat "$OUT_DIR/compare.log"
fi
echo
echo "| stage | status | wall time (s) |"
echo "|---|---|---|"
printf '%s\n' "${SUMMARY[@]}"
echo
echo "Logs, executed notebooks and timings: $OUT_DIR.  Paste the benchmark tables (with the header lines) into book/benchmarks.md."
exit $FAILED
