"""What measuring on a board costs (`measure_on`), on this machine's loopback, with a `dask worker` holding resource `board`
playing the board.

    .venv/bin/python tools/bench_boards.py ship [--rounds 20]     # shipping one ResNet-18-sized FP32 artifact (~45 MB)
    .venv/bin/python tools/bench_boards.py sweep [--rounds 2]     # the default sweep: local against an emulated board

`ship` times, per round, sending one artifact's files to the board (`Boards`' path: `client.scatter` to the worker holding
the resource) and unpacking them there with their SHA-256 checked (`Shipment.unpack`), i.e. everything a measurement on a
board adds before loading; it prints the median and the 5–95% range. `sweep` first times the cluster's start-up alone (scheduler and
board started, edge_opt and the runtimes imported on the board), then runs the default `edge-opt` in fresh output
folders, interleaved: in-process (`executor: local`), and with `--executor dask --measure-on board` against a scheduler and a
single-threaded board worker started for that run, whose start-up is counted in its wall time. Both print the CPU flags.
"""
import argparse, logging, os, re, statistics, subprocess, sys, tempfile, time
from pathlib import Path

import numpy as np
from edge_opt.host import cpu_flags, usable_cores   # the one reader of the CPU's flags and cores
from edge_opt.rows import MB

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv/bin"




def spread(xs) -> str:
    lo, hi = np.percentile(xs, [5, 95])
    return f"median {statistics.median(xs):.3f} s (5–95%: {lo:.3f}–{hi:.3f}; min {min(xs):.3f}, max {max(xs):.3f}; n={len(xs)})"


def _unpack(shipments: dict) -> int:
    "On the board: unpack and check every shipment, as `measure_shipped` does before loading; the bytes received."
    with tempfile.TemporaryDirectory() as tmp:
        for i, s in enumerate(shipments.values()):
            folder = Path(tmp) / str(i); folder.mkdir(); s.unpack(folder)
    return sum(s.nbytes for s in shipments.values())


def ship(rounds: int):
    import torch
    from distributed import Client, LocalCluster
    from edge_opt.boards import Boards, Shipment
    from edge_opt.model import build_model
    from edge_opt.runtimes import build_artifact
    torch.manual_seed(0)
    net, calib = build_model("resnet18", 10, 3, 32).eval(), [(torch.randn(8, 3, 32, 32), torch.zeros(8, dtype=torch.long))]
    with tempfile.TemporaryDirectory() as d:
        shipment = Shipment.of(build_artifact(net, "fp32", "onnxruntime", calib, Path(d) / "a"))
    print(f"artifact: ResNet-18 (10 classes) FP32 ONNX, {shipment.nbytes / MB:.1f} MB; CPU flags: {cpu_flags()}", flush=True)
    with LocalCluster(n_workers=1, threads_per_worker=1, resources={"board": 1}, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        boards = Boards(client, "board")
        held = list(boards.wait())
        times = []
        for i in range(rounds + 1):
            start = time.perf_counter()
            shipped = client.scatter([{("fp32", "onnxruntime"): shipment}], workers=held, hash=False)[0]
            got = client.submit(_unpack, shipped, resources={"board": 1}, pure=False).result()
            if i: times.append(time.perf_counter() - start)   # the first round warms the connection and the worker's imports
            assert got == shipment.nbytes
            del shipped
    print(f"shipping + unpacking + SHA-256 check of one {shipment.nbytes / MB:.1f} MB artifact on loopback: {spread(times)}")
    print(f"throughput: {shipment.nbytes / MB / statistics.median(times):.0f} MB/s")


def _run(cmd, env):
    return subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout


def _cluster(port: int, env: dict) -> list:
    "A scheduler and a board (`dask worker --resources board=1 --nthreads 1`) on loopback."
    procs = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)]
    procs.append(subprocess.Popen([str(BIN / "dask"), "worker", f"tcp://127.0.0.1:{port}", "--resources", "board=1",
                                   "--nthreads", "1", "--name", "board", "--no-dashboard"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env))
    return procs


def startup(port: int, env: dict) -> float:
    "Seconds from starting the scheduler and the board to a board that has imported edge_opt and every installed runtime (what a sweep's first measurement would otherwise wait for)."
    import importlib
    from distributed import Client
    from edge_opt.boards import import_runtimes
    from edge_opt.runtimes import RUNTIMES
    start = time.perf_counter()
    procs = _cluster(port, env)
    try:
        with Client(f"tcp://127.0.0.1:{port}", timeout="60s") as client:
            client.wait_for_workers(1, timeout=120)
            client.run(importlib.import_module, "edge_opt.experiments"); client.run(import_runtimes, list(RUNTIMES))
            return time.perf_counter() - start
    finally:
        for p in reversed(procs): p.terminate(); p.wait(30)


def sweep(rounds: int):
    env = dict(os.environ)
    print(f"default sweep, CPU flags: {cpu_flags()}; cores: {usable_cores()}", flush=True)
    starts = [startup(17786 + i, env) for i in range(3)]
    print(f"cluster start-up (scheduler and board started, edge_opt and the runtimes imported on the board): "
          f"median {statistics.median(starts):.1f} s (min {min(starts):.1f}, max {max(starts):.1f}; n=3)", flush=True)
    done = re.compile(r"Done in ([\d.]+) s")
    results = {"local": [], "emulated board": []}
    for i in range(rounds):
        for arm in (["local", "emulated board"] if i % 2 == 0 else ["emulated board", "local"]):
            with tempfile.TemporaryDirectory() as out:
                start = time.perf_counter()
                if arm == "local":
                    text = _run([str(BIN / "edge-opt"), "--output-dir", out, "--no-progress"], env)
                else:
                    port = 18786 + i
                    procs = _cluster(port, env)
                    try: text = _run([str(BIN / "edge-opt"), "--output-dir", out, "--no-progress", "--executor", "dask",
                                      "--scheduler", f"tcp://127.0.0.1:{port}", "--measure-on", "board"], env)
                    finally:
                        for p in reversed(procs): p.terminate(); p.wait(30)
                wall = time.perf_counter() - start
            results[arm].append(wall)
            print(f"round {i + 1} {arm}: wall {wall:.1f} s (with cluster start-up for the board); {text.strip().splitlines()[-1]}", flush=True)
    for arm, xs in results.items():
        print(f"{arm}: median {statistics.median(xs):.1f} s (min {min(xs):.1f}, max {max(xs):.1f}; n={len(xs)})")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["ship", "sweep"])
    ap.add_argument("--rounds", type=int, default=None)
    args = ap.parse_args()
    ship(args.rounds or 20) if args.what == "ship" else sweep(args.rounds or 2)
