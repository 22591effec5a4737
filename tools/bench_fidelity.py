"""Fidelity check: is the latency a sweep reports what the runtime itself measures, on the same file?

For artifacts of a finished sweep (default: pruning level 0, FP32 and INT8, every runtime), at one sample and at
the sweep's batch size, three clocks alternate over --reps repetitions, each in a fresh process:

  sweep  edge_opt's own path: `load_artifact` (the lines a manifest ships), then `time_and_predict` over every
         artifact at once (one turn per artifact, batch then one sample), with the sweep's rounds, calls and warm-up;
  loop   a minimal loop written here against the runtime's own Python API (no edge_opt import), one artifact
         per process: median of 5 rounds' medians;
  tool   the runtime's own benchmark tool where its wheel ships one: OpenVINO's `benchmark_app` (C++, static
         shape, sync API, 1 stream, the same threads and inference precision). ONNX Runtime's `onnxruntime_perf_test`
         and ExecuTorch's `executor_runner` are C++ builds that their Python wheels do not ship.

It also times the Python binding's own cost, an identity network called through the same binding (ONNX Runtime
and OpenVINO), so that a C++ deployment can read what the binding adds. Prints a table (medians in µs, with the
range over repetitions) and, with --json, writes every figure.

    .venv/bin/python tools/bench_fidelity.py --from OUT [--levels 0] [--precisions fp32 int8] [--reps 3] [--seconds 2]
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

LOOP = r'''
import json, sys, time
import numpy as np
runtime, folder, files, dtype, threads, shape, seconds = json.loads(sys.argv[1])
x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
if runtime == "onnxruntime":
    import onnxruntime as ort
    so = ort.SessionOptions(); so.intra_op_num_threads = threads
    sess = ort.InferenceSession(f"{folder}/{files[0]}", so, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: x}
    call = lambda: sess.run(None, feed)
elif runtime == "openvino":
    import openvino as ov
    core = ov.Core(); model = core.read_model(f"{folder}/{files[0]}"); model.reshape(list(shape))
    req = core.compile_model(model, "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads,
                                            "INFERENCE_PRECISION_HINT": "f16" if dtype == "float16" else "f32"}).create_infer_request()
    def call():   # a new input each call, as a deployment has
        req.set_input_tensor(ov.Tensor(x, shared_memory=True)); req.infer(); return req.get_output_tensor(0).data
elif runtime == "executorch":
    import torch
    from executorch.runtime import Runtime
    from executorch.extension.pybindings import portable_lib
    portable_lib._unsafe_reset_threadpool(threads)
    program = Runtime.get().load_program(open(f"{folder}/{files[0]}", "rb").read())
    method = program.load_method("forward"); xt = torch.from_numpy(x).to(getattr(torch, dtype))
    call = lambda: method.execute([xt])
else:
    import torch
    torch.set_num_threads(threads)
    f = f"{folder}/{files[0]}"
    module = torch.export.load(f).module() if f.endswith(".pt2") else torch.jit.load(f)
    xt = torch.from_numpy(x).to(getattr(torch, dtype))
    def call():
        with torch.inference_mode(): return module(xt)
for _ in range(3): call()
start = time.perf_counter(); n = 0
while time.perf_counter() - start < 0.2: call(); n += 1
per_round = max(5, int(n * seconds / 5 / 0.2))
medians = []
for _ in range(5):
    t = []
    for _ in range(per_round):
        s = time.perf_counter(); call(); t.append(time.perf_counter() - s)
    medians.append(float(np.median(t)) * 1e3)
print(json.dumps(float(np.median(medians))))
'''

IDENTITY = r'''
import json, sys, time
import numpy as np
runtime, threads, shape, seconds = json.loads(sys.argv[1])
x = np.zeros(shape, np.float32)
if runtime == "onnxruntime":
    import onnx, onnxruntime as ort
    from onnx import helper, TensorProto
    g = helper.make_graph([helper.make_node("Identity", ["input"], ["logits"])], "identity",
                          [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)], [helper.make_tensor_value_info("logits", TensorProto.FLOAT, shape)])
    so = ort.SessionOptions(); so.intra_op_num_threads = threads
    sess = ort.InferenceSession(helper.make_model(g).SerializeToString(), so, providers=["CPUExecutionProvider"])
    call = lambda: sess.run(None, {"input": x})
else:
    import openvino as ov
    p = ov.opset13.parameter(shape, ov.Type.f32)
    req = ov.Core().compile_model(ov.Model([ov.opset13.convert(p, ov.Type.f32)], [p]), "CPU",
                                  {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads}).create_infer_request()
    def call():   # the binding as the shipped lines use it
        req.set_input_tensor(ov.Tensor(x, shared_memory=True)); req.infer(); return req.get_output_tensor(0).data
for _ in range(100): call()
medians = []
for _ in range(5):
    t = []
    for _ in range(max(200, int(seconds * 2000))):
        s = time.perf_counter(); call(); t.append(time.perf_counter() - s)
    medians.append(float(np.median(t)) * 1e3)
print(json.dumps(float(np.median(medians))))
'''


def sweep_clock(args, keys, shapes):
    "edge_opt's path in this (fresh) process: every artifact loaded by its loader and timed interleaved as a sweep does."
    import torch
    from edge_opt.boards import time_and_predict
    from edge_opt.metrics import LatencyStats
    from edge_opt.runtimes import load_artifact, thread_limit
    cfg, arts, threads = _run(args, keys)
    result = {}
    with thread_limit(threads):
        built = {k: load_artifact(a, threads) for k, a in arts.items()}
        x = torch.randn(*shapes["batch"])
        timed, _ = time_and_predict(built, [(x, torch.zeros(len(x), dtype=torch.long))], cfg.benchmark_rounds, cfg.benchmark_trials,
                                    cfg.benchmark_stream_trials, cfg.benchmark_warmup)   # the sweep's own call
        for k, t in timed.items():
            result[f"{k}|batch"] = LatencyStats.from_rounds(len(x), t.full).median_ms
            result[f"{k}|one"] = LatencyStats.from_rounds(1, t.one).median_ms
    return result


def _run(args, keys):
    "`(config, {key: Artifact}, threads)` of the sweep: a finished one in --from, or --run's rows with --config's settings."
    from edge_opt.runtimes import Artifact
    from edge_opt.shipping import finished_sweep, sweep_config
    from edge_opt.storage import RunFolder
    from edge_opt.config import load_config
    if args.run: here, cfg = RunFolder(args.run), load_config(args.config)
    else: here = RunFolder(finished_sweep(args.out)); cfg = sweep_config(args.out, here.path)
    arts, threads = {}, None
    for r in here.sweep_rows():
        k = f"{r['runtime']}|{r['precision']}|{float(r['pruning_level']):g}"
        if k in keys and r.get("artifact_dir") and (a := Artifact.read(here.artifacts / r["artifact_dir"])) is not None:
            arts[k] = a; threads = int(r["threads"])   # an artifact the store no longer holds is left out
    return cfg, arts, threads


def benchmark_app(art, threads, shape, seconds):
    "OpenVINO's own benchmark tool: median latency (ms) at a static shape, sync API, one stream."
    exe = shutil.which("benchmark_app") or str(Path(sys.executable).parent / "benchmark_app")
    hint = "f16" if art["input_dtype"] == "float16" or art["precision"] == "fp16" else "f32"
    cmd = [exe, "-m", str(Path(art["directory"]) / art["files"][0]), "-d", "CPU", "-shape", "[" + ",".join(map(str, shape)) + "]",
           "-hint", "none", "-nstreams", "1", "-nthreads", str(threads), "-api", "sync", "-t", str(max(1, round(seconds))), "-infer_precision", hint]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    found = re.search(r"Median:\s*([0-9.]+) (ms|us)", proc.stdout + proc.stderr)
    return float(found.group(1)) / (1e3 if found.group(2) == "us" else 1) if found else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--from", dest="out", help="a finished sweep's output directory (keep_artifacts: all)")
    ap.add_argument("--run", help="or a run directory (OUT/runs/<fingerprint>/: RunLayout(OUT).run(fingerprint); `cached_sweep` returns OUT) ...")
    ap.add_argument("--config", help="... with its configuration as YAML (`SweepConfig.to_yaml()`)")
    ap.add_argument("--levels", nargs="+", type=float, default=[0.0])
    ap.add_argument("--precisions", nargs="+", default=["fp32", "int8"])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.0, help="timed seconds per loop and per benchmark_app run")
    ap.add_argument("--json", help="write every figure here")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not args.out and not (args.run and args.config): ap.error("give --from OUT, or --run DIR with --config FILE")
    if args.worker:   # the sweep's clock, in a fresh process
        print(json.dumps(sweep_clock(args, *json.loads(args.worker)))); return
    from edge_opt.experiments import sweep_data
    cfg, arts, threads = _run(args, _all_keys(args))
    data = sweep_data(cfg)
    shapes = {"one": [1, data.channels, data.size, data.size], "batch": [cfg.batch_size, data.channels, data.size, data.size]}
    figures = {}
    for rep in range(args.reps):
        source = ["--from", args.out] if args.out else ["--run", args.run, "--config", args.config]
        sweep = json.loads(subprocess.run([sys.executable, __file__, *source, "--seconds", str(args.seconds),
                                           "--worker", json.dumps([sorted(arts), shapes])], capture_output=True, text=True, check=True).stdout.splitlines()[-1])
        for k, a in arts.items():
            for label, shape in shapes.items():
                f = figures.setdefault(f"{k}|{label}", {"sweep": [], "loop": [], "tool": []})
                f["sweep"].append(sweep[f"{k}|{label}"])
                spec = [a.runtime, a.directory, list(a.files), a.input_dtype, threads, shape, args.seconds]
                f["loop"].append(json.loads(subprocess.run([sys.executable, "-c", LOOP, json.dumps(spec)], capture_output=True, text=True, check=True).stdout))
                if a.runtime == "openvino": f["tool"].append(benchmark_app(a.record() | {"directory": a.directory}, threads, shape, args.seconds))
    overhead = {r: json.loads(subprocess.run([sys.executable, "-c", IDENTITY, json.dumps([r, threads, shapes["one"], args.seconds])],
                                             capture_output=True, text=True, check=True).stdout) for r in ("onnxruntime", "openvino") if any(a.runtime == r for a in arts.values())}
    report(figures, overhead, threads, cfg, args)
    if args.json: Path(args.json).write_text(json.dumps(dict(figures=figures, binding_overhead_ms=overhead, threads=threads, cpu_flags=_flags()), indent=1))


def _all_keys(args):
    from edge_opt.runtimes import RUNTIMES
    return {f"{r}|{p}|{l:g}" for r in RUNTIMES for p in args.precisions for l in args.levels}


def _flags():
    from edge_opt.metrics import cpu_flags   # the project's one reading of the CPU's flags
    return cpu_flags()


def _span(values):
    v = [x for x in values if x is not None]
    return f"{np.median(v) * 1e3:,.1f} ({min(v) * 1e3:,.1f}–{max(v) * 1e3:,.1f})" if v else "–"


def report(figures, overhead, threads, cfg, args):
    print(f"{threads} threads, {cfg.benchmark_rounds} rounds; µs, median over {args.reps} repetitions (their range); CPU flags: {_flags()}")
    print(f"{'variant':<28}{'shape':<7}{'sweep':>24}{'loop':>24}{'tool':>24}{'sweep/loop':>12}{'(sweep-ovh)/tool':>18}")
    for key, f in sorted(figures.items()):
        runtime, precision, level, label = key.split("|")
        ratio = np.median(f["sweep"]) / np.median(f["loop"])
        tool = [t for t in f["tool"] if t is not None]
        vs_tool = f"{(np.median(f['sweep']) - overhead.get(runtime, 0)) / np.median(tool):.2f}" if tool else "–"
        print(f"{runtime + ' ' + precision + ' ' + level:<28}{label:<7}{_span(f['sweep']):>24}{_span(f['loop']):>24}{_span(f['tool']):>24}{ratio:>12.2f}{vs_tool:>18}")
    for r, ms in overhead.items(): print(f"binding overhead (identity call, one sample) {r}: {ms * 1e3:.1f} µs")


if __name__ == "__main__":
    main()
