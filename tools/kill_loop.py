"""Kill-at-random-moments loop (issue 10): run a sweep, SIGKILL it at a random time, resume, repeat; then finish it.

After every kill the rows file is read; at the end it is compared with everything seen before:
- lost: a row that was on disk after some kill and is missing (or changed) later,
- duplicated: a `(pruning_level, precision, runtime)` key on disk more than once,
- failed resumes: a run that exited by itself with a non-zero status (not by our kill),
- lines set aside as torn.

    .venv/bin/python tools/kill_loop.py [--kills 20] [--max-seconds 45] [--out /tmp/kill_loop] [-- extra edge-opt flags]
"""
import argparse
import json
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

EDGE_OPT = str(Path(sys.executable).with_name("edge-opt"))


def rows_on_disk(out):
    files = list(Path(out).glob("runs/*/sweep_rows.jsonl"))
    rows = [json.loads(l) for f in files for l in f.read_text().splitlines() if l.strip().endswith("}")]
    return {(r["pruning_level"], r["precision"], r["runtime"]): r for r in rows}, len(rows)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--max-seconds", type=float, default=45.0)
    ap.add_argument("--out", default="/tmp/kill_loop")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("extra", nargs="*")
    args = ap.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    rng, seen, failed, duplicated = random.Random(args.seed), {}, 0, 0
    cmd = [EDGE_OPT, "--output-dir", args.out, "--no-progress", *args.extra]
    for i in range(args.kills):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        delay = rng.uniform(0.5, args.max_seconds)
        try: proc.wait(timeout=delay); killed = False
        except subprocess.TimeoutExpired: proc.send_signal(signal.SIGKILL); proc.wait(); killed = True
        err = proc.stderr.read()
        if not killed and proc.returncode != 0: failed += 1; print(f"run {i} failed ({proc.returncode}): {err.strip()[-300:]}")
        rows, n = rows_on_disk(args.out)
        duplicated += n - len(rows)
        for k, r in rows.items(): seen.setdefault(k, r)
        print(f"kill {i + 1:2d} after {delay:5.1f} s: {'killed' if killed else 'finished'}, {len(rows)} rows on disk", flush=True)
    final = subprocess.run(cmd, capture_output=True, text=True)
    failed += final.returncode != 0
    rows, n = rows_on_disk(args.out)
    lost = sum(1 for k, r in seen.items() if rows.get(k) != r)
    torn = sum(len(f.read_text().splitlines()) for f in Path(args.out).glob("runs/*/*.torn"))
    print(f"\nfinal run exit {final.returncode}; rows {len(rows)}; lost {lost}; duplicated {duplicated + n - len(rows)}; "
          f"failed resumes {failed}; torn lines set aside {torn}")
