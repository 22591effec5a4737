"""The default sweep in-process and on a two-worker LocalCluster, side by side: wall times, cluster start-up,
whether the accuracy columns agree, overlap of timing windows per host, and how the latencies compare.

    .venv/bin/python tools/bench_distributed.py [--scheduler local:2]
"""
import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np

from edge_opt.analysis import measured_rows
from edge_opt.config import SweepConfig
from edge_opt.executors import DaskExecutor
from edge_opt.experiments import run_sweep
from edge_opt.metrics import describe_cpu

SWEEP_KEY = ["pruning_level", "precision", "runtime"]   # a sweep row's variant (rows.KEY less the plan, which sweeps do not set)
SAME = ["accuracy", "accuracy_ci_low", "accuracy_ci_high", "memory_mb", "macs", "correct"]


def overlap_seconds(rows):
    "Total seconds in which two distinct timing windows on one host overlap."
    total = 0.0
    for _, g in rows.dropna(subset=["timing_start"]).drop_duplicates(["host", "timing_start"]).groupby("host"):
        w = g.sort_values("timing_start")[["timing_start", "timing_end"]].to_numpy()
        total += sum(max(0.0, a[1] - b[0]) for a, b in zip(w[:-1], w[1:]))
    return total


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--scheduler", default="local:2")
    args = p.parse_args()
    cfg = SweepConfig()
    start = time.perf_counter()
    with DaskExecutor(args.scheduler): pass
    startup = time.perf_counter() - start
    runs = {}
    with tempfile.TemporaryDirectory() as out:
        for name, c in (("local", cfg), (f"dask {args.scheduler}", dataclasses.replace(cfg, executor="dask", scheduler=args.scheduler))):
            start = time.perf_counter()
            runs[name] = (run_sweep(c, Path(out) / name.replace(" ", "_"), progress=False), time.perf_counter() - start)
    (local, t_local), (dask, t_dask) = runs.values()
    print(describe_cpu())
    print(f"default sweep ({len(local)} variants): local {t_local:.1f} s; dask {args.scheduler} {t_dask:.1f} s "
          f"(cluster start-up, edge_opt imported on the workers, and shutdown alone: {startup:.1f} s)")
    a, b = local.set_index(SWEEP_KEY)[SAME], dask.set_index(SWEEP_KEY)[SAME]
    print(f"accuracy (with interval and per-image correctness), memory, MACs identical: {a.equals(b.loc[a.index])}")
    art = (dask.set_index(SWEEP_KEY).artifact_bytes / local.set_index(SWEEP_KEY).artifact_bytes - 1).abs()
    print(f"artifact bytes: identical on {int((art == 0).sum())} of {int(art.notna().sum())} variants; largest difference {art.max():.4%} "
          f"({', '.join(sorted(set(art[art > 0].index.get_level_values('runtime'))) or 'none')})")
    print(f"timing windows: {dask.drop_duplicates(['host', 'timing_start']).timing_start.notna().sum()} on "
          f"{dask.host.nunique()} host(s); overlap {overlap_seconds(dask):.3f} s; threads {sorted(dask.threads.unique())}")
    ml, md = measured_rows(local).set_index(SWEEP_KEY), measured_rows(dask).set_index(SWEEP_KEY)
    for col in ("stream_latency_ms", "latency_ms"):
        r = md[col] / ml.loc[md.index, col]
        lo, mid, hi = np.percentile(r, [5, 50, 95])
        print(f"{col}: dask/local ratio median {mid:.2f} (5-95%: {lo:.2f}-{hi:.2f}) over {len(r)} variants")


if __name__ == "__main__":
    main()
