"""Benchmark: eager INT8 as shipped (FX graph mode, TorchScript) against PT2E lowered by Inductor, the replacement
PyTorch points to now that FX quantization is deprecated.

For the default sweep's baseline (and `--model resnet18 --input-size 64` for a deeper one), at each pruning level:
- FX: `build_artifact(..., "int8", "eager", ...)`, the shipped `model.torchscript.pt`, loaded as the sweep loads it;
- PT2E + Inductor, in process: `torch.export` → `prepare_pt2e(X86InductorQuantizer)` → the same calibration batches →
  `convert_pt2e` → `torch.compile` (one compiled graph per input shape, compiled before timing);
- PT2E + AOTInductor: the same graph compiled ahead of time into a `.pt2` package (a shared library for this CPU and
  this PyTorch), loaded with `torch._inductor.aoti_load_package`: the only one of the PT2E forms that is a file to ship.
Reported: build seconds (compile included), file size, accuracy and top-1 agreement with FX, and one-sample and
batch latency timed side by side in interleaved rounds (median and the 5–95% range of the round medians).

    .venv/bin/python tools/bench_eager_int8.py [--rounds 7] [--threads 2] [--model resnet18 --input-size 64] [--json FILE]

`--json` also writes the table with the CPU, its flags, the threads and the versions: the runtimes page reads
nbs/analyses/eager_int8_paths.json (made with `--json nbs/analyses/eager_int8_paths.json`).
"""
import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TORCHINDUCTOR_FORCE_DISABLE_CACHES", "1")   # a build's compile time as a user's first build sees it
import pandas as pd
import torch

from edge_opt.config import SweepConfig
from edge_opt.experiments import prepare_baseline
from edge_opt.metrics import LatencyStats, time_interleaved
from edge_opt.pruning import prune_and_finetune, reseed
from edge_opt.recipes import describe_cpu
from edge_opt.metrics import cpu_flags
from edge_opt.runtimes import build_artifact, load_artifact, package_version, take_batches, thread_limit


def pt2e_int8(model, calibration):
    "The PT2E INT8 graph of `model` with x86 Inductor's quantizer, calibrated on `calibration`."
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import X86InductorQuantizer, get_default_x86_inductor_quantization_config
    example = (calibration[0][0],)
    graph = torch.export.export(model.eval(), example, dynamic_shapes=({0: torch.export.Dim("batch", max=4096)},)).module()
    prepared = prepare_pt2e(graph, X86InductorQuantizer().set_global(get_default_x86_inductor_quantization_config()))
    with torch.inference_mode():
        for x, _ in calibration: prepared(x)
    return convert_pt2e(prepared), example


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default="smallcnn")
    ap.add_argument("--input-size", type=int, default=None)
    ap.add_argument("--levels", type=float, nargs="+", default=[0.0, 0.5])
    ap.add_argument("--json", help="also write the table and the machine it was measured on here")
    args = ap.parse_args()
    cfg = SweepConfig(model=args.model, input_size=args.input_size, threads=args.threads)
    model, train_dl, val_dl = prepare_baseline(cfg)
    images, labels = torch.cat([x for x, _ in val_dl]), torch.cat([y for _, y in val_dl])
    rows = []
    with tempfile.TemporaryDirectory() as tmp, thread_limit(args.threads):
        for level in args.levels:
            pruned = prune_and_finetune(model, level, train_dl, 0, cfg.learning_rate, torch.device("cpu"),
                                        importance=cfg.pruning_importance, seed=cfg.seed).eval()
            reseed(train_dl, cfg.seed)
            calibration = take_batches(train_dl, cfg.calibration_batches)
            built, runs, size = {}, {}, {}
            start = time.perf_counter()
            fx = build_artifact(pruned, "int8", "eager", calibration, Path(tmp) / f"fx-{level}", max_batch=cfg.batch_size)
            deployed = load_artifact(fx, args.threads)
            built["FX (shipped)"], size["FX (shipped)"] = time.perf_counter() - start, fx.artifact_bytes
            runs["FX (shipped)"] = lambda x, d=deployed: d.logits(x)
            start = time.perf_counter()
            graph, example = pt2e_int8(pruned, calibration)
            compiled = torch.compile(graph)
            with torch.inference_mode():
                for b in (1, cfg.batch_size): compiled(images[:b])   # compile each timed shape before timing
            built["PT2E + Inductor"], size["PT2E + Inductor"] = time.perf_counter() - start, None
            runs["PT2E + Inductor"] = lambda x, m=compiled: m(x)
            start = time.perf_counter()
            with torch.inference_mode():
                exported = torch.export.export(graph, example, dynamic_shapes=({0: torch.export.Dim("batch", max=4096)},))
                package = torch._inductor.aoti_compile_and_package(exported, package_path=str(Path(tmp) / f"aoti-{level}.pt2"))
            aoti = torch._inductor.aoti_load_package(package)
            built["PT2E + AOTInductor"], size["PT2E + AOTInductor"] = time.perf_counter() - start, os.path.getsize(package)
            runs["PT2E + AOTInductor"] = lambda x, m=aoti: m(x)
            with torch.inference_mode():
                preds = {n: torch.cat([f(images[i:i + cfg.batch_size]) for i in range(0, len(images), cfg.batch_size)]).argmax(1) for n, f in runs.items()}
            timing = {}
            for batch in (1, cfg.batch_size):
                x = images[:batch].contiguous()
                calls = {n: (lambda f=f: f(x)) for n, f in runs.items()}
                calls["FX (shipped)"] = deployed.bind(x)   # as the sweep times it (logits pads a short batch for scoring)
                rounds = time_interleaved(calls, args.rounds, 40 if batch == 1 else 4, 2)
                timing[batch] = {n: LatencyStats.from_rounds(batch, r) for n, r in rounds.items()}
            for n in runs:
                row = dict(pruning_level=level, path=n, build_s=round(built[n], 1), file_kB=None if size[n] is None else round(size[n] / 1e3, 1),
                           accuracy=float((preds[n] == labels).float().mean()), agreement_with_fx=float((preds[n] == preds["FX (shipped)"]).float().mean()))
                for batch, stats in timing.items():
                    s = stats[n]
                    row[f"batch {batch} µs" if batch == 1 else f"batch {batch} ms"] = (f"{s.median_ms * 1e3:.1f} ({s.low_ms * 1e3:.1f}–{s.high_ms * 1e3:.1f})" if batch == 1
                                                                                       else f"{s.median_ms:.3f} ({s.low_ms:.3f}–{s.high_ms:.3f})")
                rows.append(row)
    print(f"{args.model} (input {args.input_size or 'the data'}'s), CPU: {describe_cpu(args.threads)}; torch {torch.__version__}")
    if args.json:
        Path(args.json).write_text(json.dumps(dict(model=args.model, input_size=args.input_size, threads=args.threads, rounds=args.rounds,
                                                   cpu=describe_cpu(args.threads), cpu_flags=cpu_flags(), torch=package_version("torch"),
                                                   torchao=package_version("torchao"), date=time.strftime("%Y-%m-%d"), rows=rows), indent=1) + "\n")
    with pd.option_context("display.width", 250, "display.max_columns", 20):
        print(pd.DataFrame(rows).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
