"""INT8 that keeps accuracy, end to end: a network whose INT8 loses accuracy, swept with and without the fallback,
reported, exported and verified in a fresh process."""
import json
import sys
from pathlib import Path

import pytest

from edge_opt.cli import main
from edge_opt.config import SweepConfig
from edge_opt.storage import read_rows

sys.path.insert(0, str(Path(__file__).parents[1] / "tools"))
from bench_int8_fallback import dead_channel_weights   # noqa: E402  the tool's network: SmallCNN with a dead conv1 channel

FAST = ["--benchmark-rounds", "1", "--benchmark-trials", "1", "--benchmark-stream-trials", "1", "--benchmark-warmup", "0",
        "--pruning-levels", "0", "--precisions", "fp32", "int8", "--runtimes", "eager", "onnxruntime", "--no-progress"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    quick = SweepConfig(epochs=2, train_subset=1024)   # a shorter training than the tool's: the premise is checked below
    return dead_channel_weights(tmp_path_factory.mktemp("dead") / "dead_channel.pt", cfg=quick)


def int8_rows(out: Path) -> dict:
    rows = read_rows(next((out / "runs").glob("*/sweep_rows.jsonl")))
    fp32 = next(r for r in rows if r["precision"] == "fp32" and r["runtime"] == "eager")
    return {r["runtime"]: {**r, "drop": (fp32["accuracy"] - r["accuracy"]) * 100} for r in rows if r["precision"] == "int8"}


def test_without_the_fallback_int8_loses_accuracy(weights, tmp_path):
    "The premise: INT8 of every layer of this network loses more than 2 points on the validation images. It holds on any CPU: conv2's per-channel weight scales span the 170-fold weights, and every INT8 recipe (7-bit x86 activations, reduce_range, QNNPACK's per-tensor weights) is at least as coarse."
    assert main(["--weights", str(weights), "--output-dir", str(tmp_path / "plain"), "--no-int8-fallback", *FAST]) == 0
    for runtime, r in int8_rows(tmp_path / "plain").items():
        assert r["drop"] > 2 and not r["int8_float_layers"] and r["int8_drop"] is None, (runtime, r["drop"])


def test_the_fallback_keeps_the_layer_in_float_and_ships_it(weights, tmp_path, capsys):
    out = tmp_path / "kept"
    assert main(["--weights", str(weights), "--output-dir", str(out), "--max-accuracy-drop", "null", *FAST]) == 0
    assert "INT8 (1 float)" in capsys.readouterr().out   # the report's table names it
    for runtime, r in int8_rows(out).items():
        assert r["int8_float_layers"] == "conv2", runtime
        assert r["int8_plain_drop_low"] > 1 >= r["int8_drop"] and r["drop"] <= 1, (runtime, r["int8_plain_drop"], r["int8_drop"], r["drop"])
    to = tmp_path / "export"
    assert main(["export", "--from", str(out), "--pruning-level", "0", "--precision", "int8", "--runtime", "onnxruntime", "--to", str(to)]) == 0
    manifest = json.loads((to / "manifest.json").read_text())
    assert manifest["int8_float_layers"] == ["conv2"] and manifest["verified"]["matches_sweep"]
    assert manifest["int8_held_out_drop"]["every_layer_int8"] > manifest["int8_held_out_drop"]["shipped"]
