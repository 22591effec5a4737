"""Latency you can trust: each runtime loaded and timed as it ships, turns that do not pay for the one before, the method recorded and fingerprinted."""
import json
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
from edge_opt.experiments import run_sweep
from edge_opt.metrics import time_interleaved, time_turns, wait_for_quiet_threads
from edge_opt.runtimes import default_runtimes, deploy, load_snippet, take_batches, thread_limit

RUNTIMES = default_runtimes()


@pytest.fixture(scope="module")
def shipped(trained):
    "Every runtime's INT8 artifact, loaded by the sweep's loaders with 2 threads."
    model, train_dl, _ = trained
    calibration = take_batches(train_dl, 4)
    with thread_limit(2):
        return {r: deploy(model, "int8", r, calibration, max_batch=128, threads=2) for r in RUNTIMES}, calibration[0][0]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_the_shipped_lines_are_the_timed_lines(shipped, runtime):
    built, _ = shipped
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
    odd = d.logits(batch[:24])                                           # another batch size compiles its own
    assert odd.shape == (24, 10) and (24, *batch.shape[1:]) in requests
    torch.testing.assert_close(odd, d.logits(batch)[:24], atol=1e-4, rtol=1e-4)


SPIN = """
import numpy as np, onnxruntime as ort
from onnx import TensorProto, helper
from edge_opt.metrics import wait_for_quiet_threads
io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [256, 256]) for n in ("a", "b", "c")]
graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "matmul", io[:2], io[2:])
options = ort.SessionOptions(); options.intra_op_num_threads = 2
session = ort.InferenceSession(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString(), options,
                               providers=["CPUExecutionProvider"])
x = np.ones((256, 256), np.float32)
for _ in range(20): session.run(None, {"a": x, "b": x})
print(wait_for_quiet_threads(), wait_for_quiet_threads())
"""


@pytest.mark.skipif("onnxruntime" not in RUNTIMES, reason="ONNX Runtime is not installed")
def test_a_turn_does_not_pay_for_threads_left_spinning():
    "Premise: ONNX Runtime's intra-op threads spin after a call (its default), in a fresh process where nothing else runs."
    waited, idle = map(float, subprocess.run([sys.executable, "-c", SPIN], capture_output=True, text=True, check=True).stdout.split())
    assert waited >= 0.005 and idle < waited   # it waited for the spinning threads to stop, and not when nothing spins


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
    cfg = SweepConfig(runtimes=["eager"], precisions=["fp32"], pruning_levels=[0.0], train_subset=256, epochs=1, threads=64,
                      benchmark_rounds=1, benchmark_trials=1, benchmark_stream_trials=1, benchmark_warmup=0, calibration_batches=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = run_sweep(cfg, tmp_path, progress=False)
    too_many = [str(w.message) for w in caught if "usable cores" in str(w.message)]
    assert len(too_many) == 1 and "threads 64" in too_many[0]   # one warning naming both numbers; timing still ran
    assert rows.stream_latency_ms.notna().all() and "64 threads" in rows.timing_method.iloc[0]
    before = cfg.fingerprint()
    monkeypatch.setattr("edge_opt.config.TIMING_VERSION", runtimes.TIMING_VERSION + 1)
    assert cfg.fingerprint() != before        # a resumed run never mixes rows timed two ways
