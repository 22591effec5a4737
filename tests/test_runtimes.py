"Every runtime against eager: same logits, INT8 agreement, artifact sizes, refusals, threads and bad input."
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import edge_opt.runtimes as runtimes
from edge_opt.cli import main
from edge_opt.pruning import structured_channel_prune
from edge_opt.runtimes import (ORT_FP16_REASON, UnsupportedPrecisionError, check_runtimes, default_runtimes, deploy,
                               take_batches, thread_limit)

RUNTIMES = default_runtimes()
FP32_LOGIT_ATOL = 1e-4   # float32 kernels of different libraries differ by rounding only


@pytest.fixture(scope="module")
def setting(trained):
    model, train_dl, val_dl = trained
    images = torch.cat([x for x, _ in val_dl])
    with torch.inference_mode():
        reference = model(images)
    return model, take_batches(train_dl, 10), images, reference


@pytest.fixture(scope="module")
def built(setting):
    model, calibration, _, _ = setting
    out = {}
    with thread_limit(2):
        for runtime in RUNTIMES:
            for precision in ("fp32", "int8"):
                out[runtime, precision] = deploy(model, precision, runtime, calibration, max_batch=128, threads=2)
    return out


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_fp32_logits_match_eager(built, setting, runtime):
    _, _, images, reference = setting
    torch.testing.assert_close(built[runtime, "fp32"].logits(images), reference, atol=FP32_LOGIT_ATOL, rtol=1e-4)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_int8_top1_agrees_with_fp32(built, setting, runtime):
    _, _, images, _ = setting
    fp32 = built[runtime, "fp32"].logits(images).argmax(1)
    int8 = built[runtime, "int8"].logits(images).argmax(1)
    assert (fp32 == int8).float().mean().item() >= 0.98


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_artifact_bytes_shrink_with_pruning_and_int8(built, setting, runtime):
    model, calibration, _, _ = setting
    pruned = deploy(structured_channel_prune(model, 0.5), "fp32", runtime, calibration, max_batch=128)
    fp32, int8 = built[runtime, "fp32"].artifact_bytes, built[runtime, "int8"].artifact_bytes
    assert 0 < int8 < fp32 and 0 < pruned.artifact_bytes < fp32


def test_every_batch_size_up_to_max(built, setting):
    _, _, images, reference = setting
    for d in built.values():
        if d.precision != "fp32": continue
        for n in (1, 7, 128):
            torch.testing.assert_close(d.logits(images[:n]), reference[:n], atol=FP32_LOGIT_ATOL, rtol=1e-4)


def test_executorch_reports_what_runs_outside_xnnpack(built):
    d = built["executorch", "fp32"]
    assert d.non_delegated_ops is not None and "conv" not in d.non_delegated_ops   # every convolution is delegated


def test_onnxruntime_refuses_fp16_with_its_reason(setting):
    model, calibration, _, _ = setting
    with pytest.raises(UnsupportedPrecisionError, match="no FP16 Conv kernels") as info:
        deploy(model, "fp16", "onnxruntime", calibration)
    assert str(info.value) == ORT_FP16_REASON


@pytest.mark.skipif("openvino" not in RUNTIMES, reason="OpenVINO not installed")
def test_openvino_fp32_really_computes_fp32(built):
    assert built["openvino", "fp32"].inference_precision == "float32"


def test_input_model_untouched(setting):
    model, calibration, _, _ = setting
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for runtime in RUNTIMES:
        for precision in ("fp16", "int8"):
            try: deploy(model, precision, runtime, calibration[:2])
            except UnsupportedPrecisionError: pass
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_thread_limit_restores_torch_threads():
    outer = torch.get_num_threads()
    with thread_limit(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == outer


@pytest.mark.parametrize("value,needle", [
    (["tflite"], "config key 'runtimes': 'tflite' is not allowed; allowed: eager, executorch, onnxruntime, openvino"),
    ([], "config key 'runtimes': [] is not allowed; expected a non-empty list"),
    (["eager", "onnxruntime", "eager"], "expected each runtime once"),
    ("eager", "expected a non-empty list"),
])
def test_bad_runtime_lists(value, needle):
    with pytest.raises(ValueError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        check_runtimes(value)


def test_missing_runtime_package_is_named(monkeypatch, tmp_path, capsys):
    real = runtimes.importlib.util.find_spec
    monkeypatch.setattr(runtimes.importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    assert main(["--output-dir", str(tmp_path / "out"), "--runtimes", "eager", "onnxruntime"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and "'onnxruntime' is not allowed here; its package 'onnxruntime' is not installed" in err
    assert "onnxruntime" not in runtimes.default_runtimes()


@pytest.mark.parametrize("args,needle", [
    (["--runtimes", "tensorrt"], "config key 'runtimes': 'tensorrt' is not allowed"),
    (["--runtimes", "eager", "eager"], "config key 'runtimes': ['eager', 'eager'] is not allowed; expected each runtime once"),
])
def test_bad_runtime_flag_keeps_measured_rows(args, needle, tmp_path):
    "One line, exit 2, and the rows a previous run measured in the same directory stay as they were."
    out = tmp_path / "run"
    small = ["--output-dir", str(out), "--pruning-levels", "0", "--precisions", "fp32", "--runtimes", "eager",
             "--epochs", "1", "--train-subset", "256", "--benchmark-rounds", "1", "--no-progress"]
    assert main(small) == 0
    rows_file = next(out.glob("runs/*/sweep_rows.jsonl"))
    rows = rows_file.read_text()
    res = subprocess.run([str(Path(sys.executable).with_name("edge-opt")), "--output-dir", str(out), *args],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == [res.stderr.strip()] and needle in res.stderr
    assert rows_file.read_text() == rows and json.loads(rows.splitlines()[0])["runtime"] == "eager"



def test_an_artifact_stored_meanwhile_is_taken(setting, tmp_path, monkeypatch):
    "Two builds of the same network side by side (two pruning levels that gave the same one): the one that finishes second finds the folder taken when it moves its files in, and returns the artifact there instead of failing."
    model, calibration, _, _ = setting
    build, other = runtimes.build_artifact, []
    def racing(*args, **kwargs):   # the other build stores the same artifact while this one builds
        monkeypatch.setattr(runtimes, "build_artifact", build)
        other.append(runtimes.stored_artifact(model, "fp32", "eager", calibration, tmp_path)[0])
        return build(*args, **kwargs)
    monkeypatch.setattr(runtimes, "build_artifact", racing)
    artifact, reused = runtimes.stored_artifact(model, "fp32", "eager", calibration, tmp_path)
    assert reused and artifact.directory == other[0].directory and artifact.intact()
    assert [p.name for p in tmp_path.iterdir()] == [Path(artifact.directory).name]   # no temporary folder left
