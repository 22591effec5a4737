"""Kill-at-random-moments loop (issue 10): run the sweep, SIGKILL it at a random moment, resume it, and again,
until it finishes; then start a fresh sweep, until `--kills` kills have landed on running sweeps.

After every run the rows on disk are compared with everything seen before in that sweep:
- lost: a row that was on disk after some run and is missing (or changed) later,
- duplicated: a `(pruning_level, precision, runtime)` key on disk more than once,
- failed resumes: a run that exited by itself with a non-zero status (not by our kill),
- lines set aside as torn (a kill during a row write), which are measured again.

    .venv/bin/python tools/kill_loop.py [--kills 20] [--max-seconds 45] [--out /tmp/kill_loop] [-- extra edge-opt flags]
"""
import argparse
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from edge_opt.rows import row_key
from edge_opt.storage import RunLayout, read_rows

EDGE_OPT = str(Path(sys.executable).with_name("edge-opt"))


def rows_on_disk(out):
    "Every complete row of every run folder of `out` (finished or not), by variant, and how many there are with duplicates."
    rows = [r for run in RunLayout(out).runs() for r in read_rows(run.rows)]
    return {row_key(r): r for r in rows}, len(rows)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--max-seconds", type=float, default=45.0)
    ap.add_argument("--out", default="/tmp/kill_loop")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("extra", nargs="*")
    args = ap.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    rng, runs, kills, failed, duplicated, lost, cycle = random.Random(args.seed), 0, 0, 0, 0, 0, 0
    while kills < args.kills:
        # one cycle: a fresh sweep, killed at random moments and resumed until it finishes by itself
        out, seen, done = f"{args.out}/cycle_{cycle}", {}, False
        cmd = [EDGE_OPT, "--output-dir", out, "--no-progress", *args.extra]
        while not done:
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            delay = rng.uniform(0.5, args.max_seconds) if kills < args.kills else None
            try: proc.wait(timeout=delay); done = True
            except subprocess.TimeoutExpired: proc.send_signal(signal.SIGKILL); proc.wait(); kills += 1
            runs += 1
            err = proc.stderr.read()
            if done and proc.returncode != 0: failed += 1; print(f"run {runs} failed ({proc.returncode}): {err.strip()[-300:]}")
            rows, n = rows_on_disk(out)
            duplicated += n - len(rows)
            lost += sum(1 for k, r in seen.items() if rows.get(k) != r)   # a row seen earlier must stay exactly as it was
            seen.update(rows)
            print(f"cycle {cycle} run {runs:2d}: {'finished' if done else f'killed after {delay:4.1f} s'}, {len(rows)} rows on disk", flush=True)
        cycle += 1
    torn = sum(len(f.read_text().splitlines()) for c in range(cycle) for run in RunLayout(f"{args.out}/cycle_{c}").runs()
               for f in run.path.glob("*.torn"))
    print(f"\n{kills} kills over {cycle} sweep(s), {runs} runs: rows lost {lost}; rows duplicated {duplicated}; "
          f"failed resumes {failed}; torn lines set aside (and measured again) {torn}")
