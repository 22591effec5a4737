"""Execute every notebook's cells and checks as `nbdev_test` does (nbdev's own `test_nb`, the same files, flags and folder),
but each notebook in a fresh process, two at a time: a page passes or fails on its own, as a reader's fresh kernel runs it,
whatever the notebooks before it left in a shared process (native thread pools, runtimes' sessions). A worker of
`nbdev_test --n_workers 2` runs many notebooks, and once aborted inside glibc (`__pthread_tpp_change_priority`), taking
the whole run with it.

    .venv/bin/python tools/test_notebooks.py [--workers 2] [PATH_GLOB]
"""
import argparse
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

from fastcore.utils import working_directory
from nbdev.config import get_config
from nbdev.doclinks import nbglob
from nbdev.test import _keep_file, test_nb


def _one(path):
    cfg, start = get_config(), time.time()
    with working_directory(cfg.nbs_path):
        passed, _ = test_nb(path, skip_flags=cfg.tst_flags.split(), force_flags=[], basepath=cfg.config_path)
    return passed, time.time() - start


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", nargs="?", default=None, help="a notebook or glob (default: every notebook)")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    files = [f.absolute() for f in sorted(nbglob(args.path, as_path=True)) if _keep_file(f, ".notest")]
    context = multiprocessing.get_context("forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn")
    with ProcessPoolExecutor(args.workers, mp_context=context, max_tasks_per_child=1) as pool:   # a fresh process per notebook
        results = list(pool.map(_one, files))
    failed = [f.name for f, (passed, _) in zip(files, results) if not passed]
    slowest = sorted(zip(files, results), key=lambda fr: -fr[1][1])[:5]
    print("slowest notebooks: " + ", ".join(f"{f.name} {t:.0f} s" for f, (_, t) in slowest))
    if failed: sys.exit("notebooks that failed: " + ", ".join(failed))
    print(f"Success: {len(files)} notebooks.")
