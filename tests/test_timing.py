"""Latency you can trust: each runtime loaded and timed as it ships, turns that do not pay for the one before, the method recorded and fingerprinted."""
import json
import os
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import edge_opt.runtimes as runtimes
from edge_opt.config import SweepConfig
from edge_opt.executors import usable_cores
from edge_opt.experiments import run_sweep
from edge_opt.metrics import time_interleaved, time_turns, wait_for_quiet_threads
from edge_opt.runtimes import default_runtimes, deploy, load_snippet, take_batches, thread_limit

RUNTIMES = default_runtimes()


@pytest.fixture(scope="module")
def shipped(trained):
    "Every runtime's INT8 artifact, loaded by the sweep's loaders with 2 threads."
    model, train_dl, _ = trained
    calibration = take_batches(train_dl, 4)
    built = {}
    with thread_limit(2):
        for r in RUNTIMES:
            try: built[r] = deploy(model, "int8", r, calibration, max_batch=128, threads=2)
            except runtimes.UnsupportedPrecisionError: pass   # a runtime without INT8 on this CPU: its tests skip
    return built, calibration[0][0]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_the_shipped_lines_are_the_timed_lines(shipped, runtime):
    built, _ = shipped
    if runtime not in built: pytest.skip(f"{runtime} offers no INT8 on this CPU")
    d = built[runtime]
    here, there = load_snippet(d.artifact, 2, d.artifact.directory), load_snippet(d.artifact, 2)
    for name in d.artifact.files:   # the manifest's lines differ from the loader's only by where the files are
        here = here.replace(repr(str(Path(d.artifact.directory) / name)), repr(name))
    assert here == there
    if runtime != "eager":   # the loader ran those very lines: its `run` is the snippet's
        assert d.run is d.keep[0]["run"] and "predict" in d.keep[0]


@pytest.mark.skipif("onnxruntime" not in RUNTIMES, reason="ONNX Runtime is not installed")
def test_onnxruntime_is_timed_with_its_defaults(shipped):
    session = shipped[0]["onnxruntime"].keep[0]["session"]
    options = session.get_session_options()
    assert options.intra_op_num_threads == 2
    try: spinning = options.get_session_config_entry("session.intra_op.allow_spinning")
    except RuntimeError: spinning = None   # never set: ONNX Runtime's default, spinning on
    assert spinning in (None, "", "1")      # as deployed
    assert "allow_spinning" not in load_snippet(shipped[0]["onnxruntime"].artifact, 2)


@pytest.mark.skipif("openvino" not in RUNTIMES, reason="OpenVINO is not installed")
def test_openvino_compiles_a_static_shape_per_input_shape(shipped):
    d, batch = shipped[0]["openvino"], shipped[1]
    d.bind(batch[:1]); d.bind(batch)
    requests = d.keep[0]["requests"]
    assert set(requests) == {(1, *batch.shape[1:]), tuple(batch.shape)}
    for shape, request in requests.items():
        compiled = request.get_compiled_model()
        assert list(compiled.input(0).get_shape()) == list(shape)        # static, not ?,?,?,?
        assert str(compiled.get_property("PERFORMANCE_HINT")) in ("LATENCY", "PerformanceMode.LATENCY")
        assert compiled.get_property("INFERENCE_NUM_THREADS") == 2
    odd = d.logits(batch[:24])                                           # scoring pads a short batch: no shape besides the timed ones
    assert odd.shape == (24, 10) and set(requests) == {(1, *batch.shape[1:]), tuple(batch.shape)}
    assert torch.equal(odd, d.logits(batch)[:24])
    shipped_odd = d.run(np.ascontiguousarray(batch[:24].numpy()))          # the shipped lines: another batch size compiles its own
    assert shipped_odd.shape == (24, 10) and (24, *batch.shape[1:]) in requests
    agree = (torch.from_numpy(np.array(shipped_odd)).argmax(1) == odd.argmax(1)).float().mean().item()
    assert agree >= 23 / 24   # each shape has its own INT8 kernels: rounding may differ, the classes hardly


SPIN = """
import threading, time
import numpy as np
from edge_opt.metrics import wait_for_quiet_threads
a, stop = np.ones((300, 300)), time.perf_counter() + 0.05
def busy():   # numpy's matrix products run without the GIL, as a runtime's worker threads do
    while time.perf_counter() < stop: a @ a
worker = threading.Thread(target=busy); worker.start(); time.sleep(0.005)
waited = wait_for_quiet_threads(); worker.join()
print(waited, wait_for_quiet_threads())
"""


def test_a_turn_does_not_pay_for_threads_left_spinning():
    # a fresh process, one thread computing: in a test worker, threads of earlier tests may be running
    waited, idle = map(float, subprocess.run([sys.executable, "-c", SPIN], capture_output=True, text=True, check=True,
                                             env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}).stdout.split())
    assert waited >= 0.02 and idle < 0.02   # it waited for the computing thread to stop, and not when nothing runs


def test_interleaved_turns_wait_and_warm_up():
    calls, order = {"a": lambda: order.append("a"), "b": lambda: order.append("b")}, []
    times = time_interleaved(calls, rounds=2, per_round=3, warmup=1, warmup_s=0)
    assert [len(r) for r in times["a"]] == [3, 3] and order == ["a"] * 4 + ["b"] * 4 + ["b"] * 4 + ["a"] * 4
    order.clear(); time_interleaved({"a": calls["a"]}, rounds=1, per_round=1, warmup=0, warmup_s=0.01)
    assert len(order) > 10                     # warm-up lasts at least warmup_s
    order.clear()
    parts = time_turns({"a": [(calls["a"], 2), (lambda: order.append("a1"), 1)], "b": [(calls["b"], 1)]}, rounds=2, warmup=0, warmup_s=0)
    assert order == ["a", "a", "a1", "b", "b", "a", "a", "a1"]   # a turn runs its parts back to back
    assert [[len(r) for r in p] for p in parts["a"]] == [[2, 2], [1, 1]]


def test_the_timing_method_is_recorded_and_fingerprinted(tmp_path, monkeypatch):
    too_many = usable_cores() + 1
    cfg = SweepConfig(runtimes=["eager"], precisions=["fp32"], pruning_levels=[0.0], train_subset=256, epochs=1, threads=too_many,
                      benchmark_rounds=1, benchmark_trials=1, benchmark_stream_trials=1, benchmark_warmup=0, calibration_batches=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = run_sweep(cfg, tmp_path, progress=False)
    said = [str(w.message) for w in caught if "usable cores" in str(w.message)]
    assert len(said) == 1 and f"threads {too_many}" in said[0] and f"the {usable_cores()} usable" in said[0]   # one warning, both numbers
    assert rows.stream_latency_ms.notna().all() and f"{too_many} threads" in rows.timing_method.iloc[0]   # timing still ran
    before = cfg.fingerprint()
    monkeypatch.setattr("edge_opt.config.TIMING_VERSION", runtimes.TIMING_VERSION + 1)
    assert cfg.fingerprint() != before        # a resumed run never mixes rows timed two ways
