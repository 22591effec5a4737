"""Execute every notebook's cells and checks as `nbdev_test` does (nbdev's own `test_nb`, the same files, flags and folder),
but each notebook in its own fresh process, two at a time: a page passes or fails on its own, as a reader's fresh kernel
runs it, whatever other notebooks left in a shared process (native thread pools, runtimes' sessions). A worker of
`nbdev_test --n_workers 2` runs many notebooks, and once aborted inside glibc (`__pthread_tpp_change_priority`), taking
the whole run with it; here a crash fails its own notebook, named with its exit status.

Each notebook's process is forked from a server process that has imported what every page imports (`PRELOAD`: numpy,
pandas, PyTorch, nbdev, edge_opt's modules, the build stack; no runtime, no thread pool, no notebook state), so a page does not pay that
start-up each time: the way multiprocessing's `forkserver` is meant to be used.

    .venv/bin/python tools/test_notebooks.py [--workers 2] [--flags "slow"] [NOTEBOOK_OR_FOLDER]
"""
import argparse
import atexit
import multiprocessing
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fastcore.utils import working_directory
from nbdev.config import get_config
from nbdev.doclinks import nbglob
from nbdev.test import _keep_file, test_nb


def one(path: str, flags: str) -> int:
    "Test one notebook here, as nbdev_test's workers do: 0 when it passed."
    cfg = get_config()
    with working_directory(cfg.nbs_path):
        passed, _ = test_nb(Path(path), skip_flags=cfg.tst_flags.split(), force_flags=flags.split(), basepath=cfg.config_path)
    return 0 if passed else 1


# imported once, in the fork server: what every page imports, and the build stack most pages reach (torchvision's resize for
# the digits, ONNX, ExecuTorch's compiler and its XNNPACK partitioner), each several seconds a process; none starts a thread
PRELOAD = ["numpy", "pandas", "torch", "nbdev.test", "execnb.shell", "edge_opt.experiments",
           "torchvision.transforms.v2", "onnx", "executorch.exir", "executorch.backends.xnnpack.partition.xnnpack_partitioner"]


TIMEOUT_S = 1800   # a notebook still running after this fails (say, one that left a worker process behind)


def child(path: str, flags: str):
    "The notebook's own process: its exit status says whether it passed. Its exit handlers run as at a normal interpreter exit (a multiprocessing child skips them): temporary folders are removed."
    try: status = one(path, flags)
    finally: atexit._run_exitfuncs()
    sys.exit(status)


def run(ctx, path: Path, flags: str) -> tuple[int, float]:
    "Test `path` in a fresh process forked from the preloaded server: (its exit status, seconds); its output goes to ours."
    start = time.time()
    p = ctx.Process(target=child, args=(str(path), flags))
    p.start(); p.join(TIMEOUT_S)
    if p.exitcode is None:
        print(f"{path.name}: still running after {TIMEOUT_S} s; stopped", flush=True)
        p.kill(); p.join()
        return "timeout", time.time() - start
    return p.exitcode, time.time() - start


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", nargs="?", default=None, help="a notebook or a folder of them (default: every notebook)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--flags", default="", help="space-separated test flags to run that are normally skipped, as nbdev_test's")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)   # the child: test `path` here
    args = ap.parse_args()
    if args.one: sys.exit(one(args.path, args.flags))
    files = [f.absolute() for f in sorted(nbglob(args.path, as_path=True)) if _keep_file(f, ".notest")]
    if not files: sys.exit(f"no notebook matches {args.path!r}")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    with ThreadPoolExecutor(args.workers) as pool:
        results = list(pool.map(lambda f: run(ctx, f, args.flags), files))
    failed = [f"{f.name} (exit {status})" for f, (status, _) in zip(files, results) if status]
    slowest = sorted(zip(files, results), key=lambda fr: -fr[1][1])
    print("notebooks by seconds: " + ", ".join(f"{f.name} {t:.0f}" for f, (_, t) in slowest))
    if failed: sys.exit("notebooks that failed: " + ", ".join(failed))
    print(f"Success: {len(files)} notebooks.")
