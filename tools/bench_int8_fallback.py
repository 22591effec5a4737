"""Benchmark: INT8 that keeps accuracy (`int8_fallback`, the default) against INT8 of every layer, on a network whose
plain INT8 loses accuracy.

One baseline (trained once), two sweeps of it in one process: `int8_fallback: false`, then the default. Each measures
FP32 and INT8 on every installed runtime (pruning level 0 unless `--levels` says otherwise). Reported per runtime and
level: FP32 accuracy, each INT8's accuracy on the validation images with its drop against FP32 of the same level
(paired bootstrap 95% interval), the layers the fallback kept in floating point with the held-out drops that chose them,
and the seconds the level's builds took in each sweep.

    .venv/bin/python tools/bench_int8_fallback.py [--model mobilenet_v2 --input-size 32 --epochs 4] [--levels 0] [--json FILE]
    .venv/bin/python tools/bench_int8_fallback.py --dead-channel [--json FILE]

`--dead-channel`: the default SmallCNN, trained as the default sweep trains it, then given a dead channel: one conv1
channel's bias set so low that ReLU zeroes it for every image, and the conv2 weights that read it set to 170 times
conv2's largest weight. The FP32 network computes exactly what it computed before (the channel is zero), but each conv2
output channel's INT8 weight scale now spans weights that do nothing, and its real weights fall into a few steps:
weights an untouched, dead channel can carry when nothing (such as weight decay) shrinks them. The sweep gets it as
given weights (`--weights`, not retrained).

`--json` also writes the CPU, its flags, the threads and the versions: the pruning page reads
nbs/analyses/int8_fallback.json (made with `--json nbs/analyses/int8_fallback.json`).
"""
import argparse
import dataclasses
import json
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd
import torch

from edge_opt.analysis import measured_rows
from edge_opt.config import SweepConfig
from edge_opt.constraints import accuracy_drops
from edge_opt.experiments import prepare_baseline, run_sweep
from edge_opt.metrics import cpu_flags
from edge_opt.recipes import describe_cpu
from edge_opt.runtimes import package_version, resolve_threads


def compare(cfg: SweepConfig) -> tuple[pd.DataFrame, dict]:
    "The per-runtime table of one network, and the seconds each part took."
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        baseline = prepare_baseline(cfg, tmp)
        trained = time.perf_counter() - start
        rows = {}
        for fallback in (False, True):
            swept = time.perf_counter()
            rows[fallback] = measured_rows(run_sweep(dataclasses.replace(cfg, int8_fallback=fallback), Path(tmp) / f"fallback-{fallback}",
                                                     progress=False, baseline=baseline))
            rows[fallback]["sweep_s"] = time.perf_counter() - swept
    out = []
    for (level, runtime), plain in rows[False][rows[False].precision == "int8"].groupby(["pruning_level", "runtime"]):
        kept = rows[True].query("pruning_level == @level and runtime == @runtime")
        fp32 = rows[False].query("pruning_level == @level and precision == 'fp32' and runtime == 'eager'").iloc[0]
        again = rows[True].query("pruning_level == @level and precision == 'fp32' and runtime == 'eager'")
        assert len(again) and again.predictions_sha256.iloc[0] == fp32.predictions_sha256, "the two sweeps' FP32 networks differ"
        both = pd.concat([plain, kept[kept.precision == "int8"]], ignore_index=True)
        if len(both) < 2: print(f"level {level:g} {runtime}: the fallback sweep measured no INT8 row; left out"); continue
        drops = accuracy_drops(both, fp32)
        p, k = both.iloc[0], both.iloc[1]
        out.append(dict(pruning_level=level, runtime=runtime, fp32_accuracy=fp32.accuracy,
                        plain_accuracy=p.accuracy, plain_drop=drops.drop_points[0], plain_drop_low=drops.drop_low[0], plain_drop_high=drops.drop_high[0],
                        kept_accuracy=k.accuracy, kept_drop=drops.drop_points[1], kept_drop_low=drops.drop_low[1], kept_drop_high=drops.drop_high[1],
                        float_layers=k.int8_float_layers if isinstance(k.int8_float_layers, str) else "",
                        held_out_plain_drop=k.int8_plain_drop, held_out_kept_drop=k.int8_drop,
                        plain_level_build_s=p.level_build_s, kept_level_build_s=k.level_build_s))
    seconds = dict(training_s=trained, plain_sweep_s=rows[False].sweep_s.iloc[0], kept_sweep_s=rows[True].sweep_s.iloc[0])
    return pd.DataFrame(out), seconds


DEAD_CHANNEL = ("the default SmallCNN, trained as the default sweep trains it, with conv1's channel 0 made dead (its bias set so "
                "low that ReLU zeroes it for every image) and the conv2 weights that read it set to 170 times conv2's largest weight")

def dead_channel_weights(path: Path, channel: int = 0, gain: float = 170.0, cfg: SweepConfig | None = None) -> Path:
    "The baseline of `cfg` (None: the default sweep's) with conv1's `channel` dead and the conv2 weights reading it `gain` times conv2's largest, saved to `path`."
    model = prepare_baseline(cfg or SweepConfig(), path.parent)[0]
    with torch.no_grad():
        model.conv1.bias[channel] = -1e4   # below any pre-activation of a normalised image: ReLU gives 0
        model.conv2.weight[:, channel] = gain * model.conv2.weight.abs().max()
    torch.save(model.state_dict(), path)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="mobilenet_v2")
    ap.add_argument("--input-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--levels", type=float, nargs="+", default=[0.0])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--dead-channel", action="store_true", help="the default SmallCNN with a dead conv1 channel (see above)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    warnings.simplefilter("ignore")
    fast = dict(pruning_levels=tuple(a.levels), precisions=("fp32", "int8"), threads=a.threads, benchmark_rounds=2, benchmark_trials=1, benchmark_stream_trials=2)
    with tempfile.TemporaryDirectory() as tmp:
        if a.dead_channel:
            a.model, a.input_size, a.epochs = "smallcnn (a dead conv1 channel)", 28, SweepConfig().baseline_epochs
            cfg = SweepConfig(weights=str(dead_channel_weights(Path(tmp) / "dead_channel.pt")), **fast)
        else: cfg = SweepConfig(model=a.model, input_size=a.input_size, epochs=a.epochs, **fast)
        table, seconds = compare(cfg)
    pd.set_option("display.width", 200)
    print(describe_cpu(resolve_threads(a.threads)))
    print(table.round(3).to_string(index=False))
    print({k: round(v, 1) for k, v in seconds.items()})
    if a.json:
        record = dict(command="tools/bench_int8_fallback.py " + ("--dead-channel" if a.dead_channel else f"--model {a.model} --input-size {a.input_size} --epochs {a.epochs}")
                              + f" --levels {' '.join(f'{l:g}' for l in a.levels)}",
                      construction=DEAD_CHANNEL if a.dead_channel else None, model=a.model, input_size=a.input_size, epochs=a.epochs, max_drop=cfg.int8_max_drop, max_float_layers=cfg.int8_max_float_layers,
                      cpu=describe_cpu(resolve_threads(a.threads)), cpu_flags=cpu_flags(), threads=resolve_threads(a.threads),
                      versions={p: package_version(p) for p in ("torch", "executorch", "onnxruntime", "openvino", "nncf")},
                      seconds=seconds, rows=table.to_dict("records"))
        Path(a.json).write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
