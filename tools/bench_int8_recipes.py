"""Benchmark: ONNX Runtime's INT8 recipes (U8S8, U8S8 with reduce_range, U8U8) on the default sweep's pruned networks.

For each pruning level of the default configuration (the sweep's baseline, pruning and calibration batches), every
recipe is built once. Then, in one table:
- accuracy and top-1 agreement with the FP32 network, on this CPU;
- the same on an emulated AVX2-only CPU without VNNI (QEMU user mode, `-cpu Haswell`), when `qemu-x86_64` is installed:
  ONNX Runtime's kernel dispatch reads CPUID, so it takes its AVX2 path there (timings under emulation mean nothing,
  so none are taken);
- latency on this CPU, batch 1 and the sweep's batch, one thread, the recipes timed in interleaved rounds
  (`time_interleaved`): median and the 5–95% spread of the round medians.

    .venv/bin/python tools/bench_int8_recipes.py [--rounds 7]
"""
import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from edge_opt.config import SweepConfig
from edge_opt.experiments import prepare_baseline
from edge_opt.metrics import LatencyStats, time_interleaved
from edge_opt.pruning import prune_and_finetune, reseed
from edge_opt.recipes import INT8_RECIPES, describe_cpu, int8_recipe
from edge_opt.runtimes import _ort_session, onnx_artifact, take_batches

EMULATED = textwrap.dedent("""
    import json, sys, numpy as np, onnxruntime as ort
    d = sys.argv[1]; x = np.load(d + "/x.npy"); out = {}
    for path in sys.argv[2:]:
        options = ort.SessionOptions(); options.intra_op_num_threads = 1
        out[path] = ort.InferenceSession(path, options).run(None, {"input": x})[0].argmax(1).tolist()
    print(json.dumps(out))
""")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    cfg = SweepConfig()
    model, train_dl, val_dl = prepare_baseline(cfg)
    images, labels = torch.cat([x for x, _ in val_dl]), torch.cat([y for _, y in val_dl]).numpy()
    qemu, rows = shutil.which("qemu-x86_64"), []
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "x.npy", images.numpy())
        for level in cfg.pruning_levels:
            pruned = prune_and_finetune(model, level, train_dl, 0, cfg.learning_rate, torch.device("cpu"),
                                        importance=cfg.pruning_importance, seed=cfg.seed).eval()
            reseed(train_dl, cfg.seed)
            calibration = take_batches(train_dl, cfg.calibration_batches)
            with torch.inference_mode(): reference = pruned(images).argmax(1).numpy()
            paths = {}
            for name in INT8_RECIPES["onnxruntime"]:
                (Path(tmp) / f"{level}-{name}").mkdir()
                paths[name] = str(onnx_artifact(pruned, "int8", calibration, cfg.batch_size,
                                                int8_recipe("onnxruntime", requested=name), Path(tmp) / f"{level}-{name}"))
            sessions = {n: _ort_session(p, 1) for n, p in paths.items()}
            here = {n: s.run(None, {"input": images.numpy()})[0].argmax(1) for n, s in sessions.items()}
            emulated = {}
            if qemu:
                run = subprocess.run([qemu, "-cpu", "Haswell", sys.executable, "-c", EMULATED, tmp, *paths.values()],
                                     capture_output=True, text=True, timeout=600)
                out = json.loads(run.stdout.strip().splitlines()[-1])
                emulated = {n: np.array(out[p]) for n, p in paths.items()}
            timing = {}
            for batch in (1, cfg.batch_size):
                x = images[:batch].numpy()
                calls = {n: (lambda s=s: s.run(None, {"input": x})) for n, s in sessions.items()}
                rounds = time_interleaved(calls, args.rounds, 20 if batch == 1 else 4, 2)
                timing[batch] = {n: LatencyStats.from_rounds(batch, r) for n, r in rounds.items()}
            for n in paths:
                row = dict(pruning_level=level, recipe=n, accuracy=np.mean(here[n] == labels), agreement=np.mean(here[n] == reference))
                if n in emulated:
                    row.update(avx2_accuracy=np.mean(emulated[n] == labels), avx2_agreement=np.mean(emulated[n] == reference))
                for batch, stats in timing.items():
                    s = stats[n]
                    row[f"batch {batch} ms"] = f"{s.median_ms:.4f} ({s.low_ms:.4f}–{s.high_ms:.4f})"
                rows.append(row)
    print(f"CPU: {describe_cpu(1)}; onnxruntime {__import__('onnxruntime').__version__}; "
          f"emulated AVX2 (QEMU -cpu Haswell): {'yes' if qemu else 'no (qemu-x86_64 not installed)'}")
    with pd.option_context("display.width", 250, "display.max_columns", 20):
        print(pd.DataFrame(rows).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
