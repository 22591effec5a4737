#!/usr/bin/env bash
# edge_opt's everyday jobs, each doing its own set-up (a .venv with `pip install -e ".[dev]"`).
#   bash tools/dev.sh test          edge_opt/ in sync with nbs/, then every notebook (nbdev's test_nb, a fresh process each) and pytest, side by side
#   bash tools/dev.sh run [ARGS]    the main job (see README.md)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
python=${PYTHON:-python3}

setup() {
  local compile=--compile
  if [ ! -x .venv/bin/python ]; then
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { echo "edge_opt needs Python >= 3.10 (found $("$python" --version))" >&2; exit 1; }
    "$python" -m venv .venv
    compile=--no-compile   # a fresh environment: its bytecode compiled below on every core, not by pip on one
  fi
  echo "==> installing edge_opt and its dev requirements into .venv" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "$compile" -e ".[dev]" 2>&1 | grep -v "^WARNING: Location" >&2 || true
  if [ "$compile" = --no-compile ]; then   # some packages ship files that do not compile (examples, templates): pip skips them too
    .venv/bin/python -m compileall -qq -j 0 "$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" >/dev/null 2>&1 || true
  fi
  .venv/bin/python -c "import edge_opt, nbdev" || { echo "installation failed" >&2; exit 1; }
}

check_sync() {
  # export the notebooks into a scratch copy and compare with the committed library
  local tmp; tmp=$(mktemp -d)
  cp -r settings.ini _quarto.yml nbs edge_opt "$tmp"/
  (cd "$tmp" && "$root/.venv/bin/nbdev_export")
  if ! diff -r -x __pycache__ "$tmp/edge_opt" edge_opt; then
    echo "FAIL: edge_opt/ differs from what nbdev_export makes of nbs/ (run nbdev_export and commit both)" >&2
    rm -rf "$tmp"; exit 1
  fi
  rm -rf "$tmp"
  echo "==> edge_opt/ is in sync with nbs/" >&2
}

case "${1:-}" in
  test)
    start=$(date +%s)
    setup
    check_sync
    # side by side: the notebook workers idle while pages wait for the shared cached sweep, and pytest's
    # subprocess tests spend seconds importing on one core; together they keep both cores busy.
    # One intra-op thread per process: three processes share two cores, and OpenMP threads that spin
    # waiting for a core another process holds cost more than they compute (the suite ran 412 s with
    # PyTorch's default of 2 threads, 249 s with 1, on the same 2-core machine).
    export OMP_NUM_THREADS=1
    echo "==> every notebook executed (nbdev test_nb) and pytest, side by side, one intra-op thread each" >&2
    log=$(mktemp)
    # pytest in two worker processes (pytest-xdist): once the notebooks are done, its tail uses both cores;
    # each module runs in one worker (--dist loadscope), which makes its module-scoped fixtures once, not once per worker
    .venv/bin/python -m pytest -q -n 2 --dist loadscope --durations=15 tests > "$log" 2>&1 &
    pytest_pid=$!
    # the notebooks' own host lock (edge_opt.executors.host_lock_path): their timings need not wait for pytest's builds
    nblog=$(mktemp)
    # nbdev's test_nb on every notebook, as nbdev_test runs it, but each notebook in a fresh process (tools/test_notebooks.py)
    nb_status=0; EDGE_OPT_LOCK_DIR=$(mktemp -d) .venv/bin/python tools/test_notebooks.py --workers 2 > "$nblog" 2>&1 || nb_status=$?
    py_status=0; wait "$pytest_pid" || py_status=$?
    echo "==> pytest" >&2; cat "$log"; rm -f "$log"
    # the notebooks' own words last, where a log's tail shows them: which notebook failed, and its traceback
    echo "==> notebooks" >&2; cat "$nblog"; rm -f "$nblog"
    [ "$nb_status" -eq 0 ] || { echo "FAIL: notebooks (nbdev test_nb)" >&2; exit 1; }
    [ "$py_status" -eq 0 ] || { echo "FAIL: pytest" >&2; exit 1; }
    echo "==> all tests passed in $(( $(date +%s) - start )) s" >&2
    ;;
  run)
    shift
    setup
    .venv/bin/edge-opt "$@"
    ;;
  *)
    echo "usage: bash tools/dev.sh test | run [edge-opt options]" >&2; exit 2 ;;
esac
