"""Benchmark: is edge_opt's reported latency what a hand-written minimal timing loop of each runtime measures?

For SmallCNN (trained briefly), every runtime and precision, at batch 1 and at the batch size, in one process:
edge_opt's `time_interleaved` + `LatencyStats` median against the median of a plain loop that calls the
runtime's own API (`module(x)`, `method.execute([x])`, `session.run(...)`, `request.infer(...)`), the two
alternating over several repetitions (which one goes first alternates too: a runtime timed right after
PyTorch eager can inherit its OpenMP threads' spinning). Prints one line per variant with the ratio (edge_opt / hand loop).

    .venv/bin/python tools/bench_runtimes.py [--threads 2] [--reps 5]
"""
import argparse
import time

import numpy as np
import torch

from edge_opt.metrics import LatencyStats, time_interleaved
from edge_opt.runtimes import UnsupportedPrecisionError, default_runtimes, deploy, take_batches, thread_limit
from edge_opt.training import train_baseline


def hand_loop(d, x, calls):
    "The minimal loop a user would write against the runtime's own API."
    if d.runtime == "eager":
        m, xi = d.module, d.to_input(x)
        def call(): m(xi)
    elif d.runtime == "executorch":
        method, xi = d.keep[2], d.to_input(x)
        def call(): method.execute([xi])
    elif d.runtime == "onnxruntime":
        sess, xi = d.keep[0], np.ascontiguousarray(x.numpy())
        name = sess.get_inputs()[0].name
        def call(): sess.run(None, {name: xi})
    else:
        req, xi = d.keep[1], np.ascontiguousarray(x.numpy())
        def call(): req.infer({0: xi})
    with torch.inference_mode():
        for _ in range(2): call()
        times = []
        for _ in range(calls):
            t = time.perf_counter(); call(); times.append((time.perf_counter() - t) * 1e3)
    return float(np.median(times))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    model, train_dl, val_dl = train_baseline(epochs=1, train_subset=1000, seed=0)
    calibration, batch = take_batches(train_dl, 10), next(iter(val_dl))[0]
    with thread_limit(args.threads):
        built = {}
        for r in default_runtimes():
            for p in ("fp32", "fp16", "int8"):
                try: built[r, p] = deploy(model, p, r, calibration, len(batch), args.threads)
                except UnsupportedPrecisionError: pass
        print(f"threads {args.threads}, batch {len(batch)} and 1, {args.reps} alternations; ms")
        for x, calls in ((batch, 20), (batch[:1], 200)):
            ours = {k: [] for k in built}; hand = {k: [] for k in built}
            for rep in range(args.reps):
                for k, d in built.items():   # alternate which of the two goes first, so neither always follows another runtime
                    first, second = (ours, hand) if rep % 2 == 0 else (hand, ours)
                    for out in (first, second):
                        out[k].append(LatencyStats.from_rounds(len(x), time_interleaved({k: d.bind(x)}, 3, calls // 3, 2)[k]).median_ms
                                      if out is ours else hand_loop(d, x, calls))
            for k in built:
                a, b = np.median(ours[k]), np.median(hand[k])
                print(f"batch {len(x):>3} {k[0]:>11} {k[1]}: edge_opt {a:8.4f}  hand loop {b:8.4f}  ratio {a / b:5.2f}")


if __name__ == "__main__":
    main()
