"""Issue 19's resume target: SIGKILL the default sweep during its third pruning level, resume it, and count what was rebuilt.

    .venv/bin/python tools/bench_resume_artifacts.py [--out /tmp/resume_artifacts] [-- extra edge-opt flags]

The first run is killed once two levels have rows on disk and the third level has at least one artifact in the store. The
resumed run is then read: rows of the finished levels (never rerun), rows of the third level (built before the kill: reused
from the store), and which artifact folders the resumed run created.
"""
import argparse, shutil, signal, subprocess, sys, time
from pathlib import Path

from edge_opt.storage import RunLayout, read_rows

EDGE_OPT = str(Path(sys.executable).with_name("edge-opt"))

def rows(out):
    "The complete rows of the output directory's one run folder, finished or not ([] before it exists)."
    runs = RunLayout(out).runs()
    return read_rows(runs[0].rows) if runs else []

if __name__ == "__main__":
    p = argparse.ArgumentParser(); p.add_argument("--out", default="/tmp/resume_artifacts"); p.add_argument("extra", nargs="*")
    args = p.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    proc = subprocess.Popen([EDGE_OPT, "--output-dir", args.out, "--no-progress", *args.extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None:
        levels = sorted({r["pruning_level"] for r in rows(args.out)})
        store = next((r.artifacts for r in RunLayout(args.out).runs() if r.artifacts.is_dir()), None)
        built = {d.name for d in store.iterdir() if d.is_dir() and not ".tmp-" in d.name} if store else set()
        if len(levels) == 2 and len(built) >= 2 * 10 + 3:   # the two levels' 10 artifacts each, and 3 of the third's
            proc.send_signal(signal.SIGKILL); proc.wait(); break
        time.sleep(0.05)
    before = {d.name for d in store.iterdir() if d.is_dir() and ".tmp-" not in d.name}
    finished = {r["pruning_level"] for r in rows(args.out)}
    kept = {(r["pruning_level"], r["precision"], r["runtime"]): r.get("timing_start") for r in rows(args.out)}
    print(f"killed with {len(rows(args.out))} rows of levels {sorted(finished)} on disk and {len(before)} artifacts in the store")
    t = time.perf_counter()
    subprocess.run([EDGE_OPT, "--output-dir", args.out, "--no-progress", "--keep-artifacts", "all", *args.extra], check=True, capture_output=True)
    after = rows(args.out)
    resumed = [r for r in after if r["pruning_level"] not in finished and not r.get("unsupported")]
    third = min(l for l in {r["pruning_level"] for r in resumed})
    new = {d.name for d in store.iterdir() if d.is_dir()} - before
    print(f"resumed in {time.perf_counter() - t:.1f} s: rows of the finished levels rerun: "
          f"{sum(1 for r in after if (r['pruning_level'], r['precision'], r['runtime']) in kept and r.get('timing_start') != kept[r['pruning_level'], r['precision'], r['runtime']])}; "
          f"level {third:g}: {sum(r['artifact_reused'] for r in resumed if r['pruning_level'] == third)} artifacts reused, "
          f"{sum(not r['artifact_reused'] for r in resumed if r['pruning_level'] == third)} built; "
          f"artifacts the resumed run built for the finished levels: 0 of {len(new)} new ones "
          f"(new ones belong to levels {sorted({r['pruning_level'] for r in resumed if r['artifact_dir'] in new})})")
