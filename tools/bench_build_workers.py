"""The default sweep's wall time with artifacts built in the sweep's own process (`--build-workers 1`) and with the default
(`build_workers: null`: one process per core once a sweep has enough to build), run interleaved in fresh output folders, with
the CLI's own split of the time ("Done in ...: building artifacts ..., timing and scoring ..., the rest ...").

    .venv/bin/python tools/bench_build_workers.py [--rounds 3] [--avx2]

`--avx2` caps PyTorch and oneDNN/OpenVINO at AVX2 (`ATEN_CPU_CAPABILITY=avx2`, `ONEDNN_MAX_CPU_ISA=AVX2`); ONNX Runtime's
kernels cannot be capped. Prints one line per run and the median (min–max) of each arm, with this CPU's flags.
"""
import argparse, os, re, statistics, subprocess, sys, tempfile
from pathlib import Path
from edge_opt.host import cpu_flags, usable_cores   # the one reader of the CPU's flags and cores

ROOT = Path(__file__).resolve().parents[1]
SPLIT = re.compile(r"Done in ([\d.]+) s: building artifacts ([\d.]+) s, timing and scoring ([\d.]+) s, the rest .* ([\d.]+) s")


def one_run(arm:list[str], env:dict) -> tuple[float, ...]:
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run([str(ROOT / ".venv/bin/edge-opt"), "--output-dir", out, "--no-progress", *arm], env=env,
                              capture_output=True, text=True, check=True).stdout
    return tuple(float(x) for x in SPLIT.search(" ".join(done.split())).groups())   # the report wraps long lines

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--avx2", action="store_true")
    args = ap.parse_args()
    env = {**os.environ, **({"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"} if args.avx2 else {})}
    arms = {"build_workers 1": ["--build-workers", "1"], "default (null)": []}
    results = {name: [] for name in arms}
    print(f"CPU flags: {cpu_flags()}; cores: {usable_cores()}; AVX2 caps: {args.avx2}", flush=True)
    for i in range(args.rounds):
        for name, arm in (arms.items() if i % 2 == 0 else reversed(arms.items())):   # alternate which arm goes first
            results[name].append(one_run(arm, env))
            print(f"round {i + 1} {name}: done {results[name][-1][0]:.1f} s, build {results[name][-1][1]:.1f} s, "
                  f"measure {results[name][-1][2]:.1f} s, rest {results[name][-1][3]:.1f} s", flush=True)
    print("\n| arm | Done in, median (min–max) s | building | timing and scoring | the rest |\n|---|---|---|---|---|")
    for name, runs in results.items():
        cells = [f"{statistics.median(c):.1f} ({min(c):.1f}–{max(c):.1f})" for c in zip(*runs)]
        print(f"| {name} | " + " | ".join(cells) + " |")

if __name__ == "__main__":
    sys.exit(main())
