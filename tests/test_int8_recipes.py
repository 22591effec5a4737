"INT8 recipes chosen for the CPU: the design document's API, the recipe in rows and reports, bad recipes, and emulated older CPUs."
import importlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from edge_opt.analysis import AGREEMENT_FLOOR
from edge_opt.cli import main
from edge_opt.pruning import prune_and_finetune, reseed
from edge_opt.recipes import CPU_CLASSES, INT8_RECIPES, cpu_features, int8_recipe, u8s8_saturates
from edge_opt.runtimes import deploy, onnx_artifact, take_batches

SPEC = Path(__file__).resolve().parents[2] / "shared" / "spec" / "pruning-and-quantization.md"
# Every name the design document gives, with the module it gives it in ("experiments.precision_variant",
# "hardware.precision_tradeoff_table", "from edge_opt.pruning import structured_channel_prune", ...).
DESIGN_API = {"edge_opt.model": ["SmallCNN"], "edge_opt.pruning": ["structured_channel_prune", "_topk_indices"],
              "edge_opt.quantization": ["to_fp16", "to_int8", "precision_variant"],
              "edge_opt.experiments": ["precision_variant"], "edge_opt.hardware": ["precision_tradeoff_table"]}


@pytest.mark.parametrize("module,name", [(m, n) for m, names in DESIGN_API.items() for n in names])
def test_design_document_names_import_from_its_modules(module, name):
    assert callable(getattr(importlib.import_module(module), name))


@pytest.mark.skipif(not SPEC.exists(), reason=f"the design document is not at {SPEC}")
def test_design_api_list_covers_the_document():
    "Every `from edge_opt.X import Y` and `module.function` the document names is in DESIGN_API."
    text = SPEC.read_text(encoding="utf-8")
    named = {(f"edge_opt.{m}", n) for m, names in re.findall(r"from edge_opt\.(\w+) import ([\w, ]+)", text) for n in names.split(", ")}
    named |= {(f"edge_opt.{m}", n) for m, n in re.findall(r"\b(model|pruning|quantization|experiments|hardware)\.(\w+) function", text)}
    assert named and named <= {(m, n) for m, names in DESIGN_API.items() for n in names}


def test_precision_tradeoff_table_has_the_documented_columns():
    import pandas as pd
    from edge_opt.hardware import precision_tradeoff_table
    rows = pd.DataFrame(dict(precision=["fp32", "int8"], accuracy=[0.9, 0.8], latency_ms=[2.0, 1.0], memory_mb=[4.0, 1.0],
                             energy_proxy_j=[0.01, 0.005], accepted=[False, True]))
    table = precision_tradeoff_table(rows)
    assert {"accuracy_mean", "latency_ms_mean", "memory_mb_mean", "energy_proxy_j_mean", "accepted_ratio"} <= set(table.columns)
    assert table.precision.tolist() == ["int8", "fp32"]   # sorted by mean latency, as documented


SMALL = ["--pruning-levels", "0", "--precisions", "fp32", "int8", "--runtimes", "eager", "onnxruntime", "--epochs", "1",
         "--train-subset", "512", "--val-subset", "256", "--benchmark-rounds", "1", "--benchmark-trials", "1",
         "--benchmark-stream-trials", "1", "--no-progress"]


def test_rows_and_reproducibility_name_the_recipe(tmp_path, capsys):
    "A recipe asked for a target CPU is built, recorded in every INT8 row and in reproducibility.json; agreement is measured."
    out = tmp_path / "out"
    assert main(["--output-dir", str(out), *SMALL, "--int8-recipe", "onnxruntime=u8u8"]) == 0
    import pandas as pd
    rows = pd.read_csv(out / "sweep_results.csv").set_index(["precision", "runtime"])
    assert rows.loc[("int8", "onnxruntime"), "int8_recipe"] == INT8_RECIPES["onnxruntime"]["u8u8"]
    assert rows.loc[("int8", "eager"), "int8_recipe"] == int8_recipe("eager").description   # not named: chosen for this CPU
    assert pd.isna(rows.loc[("fp32", "onnxruntime"), "int8_recipe"])   # a float precision has no recipe
    assert (rows.top1_agreement.between(0, 1)).all() and rows.loc[("fp32", "eager"), "top1_agreement"] == 1.0
    assert set(rows.cpu_flags.iloc[0].split()) == {k for k, v in cpu_features().items() if v is True}
    repro = json.loads((out / "reproducibility.json").read_text())
    assert repro["int8_recipes"]["onnxruntime"] == {"name": "u8u8", "description": INT8_RECIPES["onnxruntime"]["u8u8"], "reason": "requested"}
    assert repro["int8_recipes"]["eager"]["name"] == repro["int8_backend"]
    flagged = rows[(rows.index.get_level_values("precision") == "int8") & (rows.top1_agreement < AGREEMENT_FLOOR)]
    assert capsys.readouterr().out.count("LOW AGREEMENT") == len(flagged)


@pytest.mark.parametrize("args,needle", [
    (["--int8-recipe", "onnxruntime=u9u9"], "config key 'int8_recipe': 'onnxruntime=u9u9' is not allowed; expected auto or RUNTIME=RECIPE entries"),
    (["--int8-recipe", "executorch=u8u8"], "config key 'int8_recipe': 'executorch=u8u8' is not allowed; expected auto or RUNTIME=RECIPE entries (executorch: xnnpack-qs8;"),
    (["--int8-recipe", "eager=x86"], "eager's INT8 recipe is its kernel backend (set quantization_backend)"),
    (["--int8-recipe", "onnxruntime=u8u8", "--precisions", "fp32", "fp16"], "precisions ['fp32', 'fp16'] build no INT8"),
    (["--int8-recipe", "openvino=nncf", "--runtimes", "eager"], "names a runtime the sweep does not build"),
])
def test_bad_recipes_end_with_one_error_line(args, needle, tmp_path, cli_error):
    assert needle in cli_error(["--output-dir", str(tmp_path / "out"), *args])
    assert not (tmp_path / "out").exists()   # refused before anything ran


def test_bad_recipe_keeps_measured_rows(tmp_path, cli_error, capsys):
    "A bad recipe on a rerun is refused before the run directory is touched: the rows measured before stay as they were."
    out = tmp_path / "out"
    assert main(["--output-dir", str(out), *SMALL]) == 0
    capsys.readouterr()
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    cli_error(["--output-dir", str(out), *SMALL, "--int8-recipe", "onnxruntime=u8s9"])
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


# --- emulated older CPUs ---------------------------------------------------------------------------------------------
QEMU = shutil.which("qemu-x86_64")
AVX2_ONLY = CPU_CLASSES["AVX2 only (AMD Zen 2/3, Intel Haswell to Comet Lake)"]


@pytest.fixture(scope="module")
def half_pruned(trained):
    "The default baseline pruned by half as the sweep prunes it, its calibration batches and 1,000 validation images."
    model, train_dl, val_dl = trained
    pruned = prune_and_finetune(model, 0.5, train_dl, 0, 1e-3, torch.device("cpu"), importance="l1", seed=0).eval()
    reseed(train_dl, 0)
    images = torch.cat([x for x, _ in val_dl])
    with torch.inference_mode(): reference = pruned(images).argmax(1).numpy()
    return pruned, take_batches(train_dl, 10), images, reference


ORT_AGREEMENT = textwrap.dedent("""
    import json, sys, numpy as np, onnxruntime as ort
    d = sys.argv[1]; x = np.load(d + "/x.npy"); ref = np.load(d + "/ref.npy"); out = {}
    for name in sys.argv[2:]:
        options = ort.SessionOptions(); options.intra_op_num_threads = 1
        predicted = ort.InferenceSession(f"{d}/{name}/int8.onnx", options).run(None, {"input": x})[0].argmax(1)
        out[name] = float(np.mean(predicted == ref))
    print(json.dumps(out))
""")


@pytest.mark.skipif(platform.machine() != "x86_64" or QEMU is None,
                    reason="premise: QEMU's user-mode emulator (qemu-x86_64, Debian's qemu-user) can run this x86-64 Python as an "
                           "AVX2-only Haswell without VNNI; it is not installed here")
def test_onnxruntime_recipe_holds_on_an_emulated_avx2_cpu(half_pruned, tmp_path):
    """U8S8 saturates on x86 without VNNI (ONNX Runtime's kernels cannot be capped, so the CPU is emulated); the recipe
    `auto` picks for that CPU keeps the FP32 network's top-1 class on at least AGREEMENT_FLOOR of the images."""
    pruned, calibration, images, reference = half_pruned
    chosen = int8_recipe("onnxruntime", AVX2_ONLY)
    assert chosen.name != "u8s8" and u8s8_saturates(AVX2_ONLY)
    for name in {"u8s8", chosen.name}:
        (tmp_path / name).mkdir()
        onnx_artifact(pruned, "int8", calibration, 128, int8_recipe("onnxruntime", requested=name), tmp_path / name)
    np.save(tmp_path / "x.npy", images.numpy()); np.save(tmp_path / "ref.npy", reference)
    run = subprocess.run([QEMU, "-cpu", "Haswell", sys.executable, "-c", ORT_AGREEMENT, str(tmp_path), "u8s8", chosen.name],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    agreement = json.loads(run.stdout.strip().splitlines()[-1])
    assert agreement["u8s8"] < AGREEMENT_FLOOR, f"premise: U8S8 saturates on the emulated AVX2 CPU ({agreement})"
    assert agreement[chosen.name] >= AGREEMENT_FLOOR, agreement


CAPPED_AGREEMENT = textwrap.dedent("""
    import json, sys, torch
    from edge_opt.runtimes import deploy, runtime_available
    blob = torch.load(sys.argv[1], weights_only=False)
    out = {"torch_capability": torch.backends.cpu.get_cpu_capability()}
    for runtime in ("eager", "openvino"):
        if runtime_available(runtime):
            d = deploy(blob["model"], "int8", runtime, blob["calibration"], 128, threads=1)
            out[runtime] = d.logits(blob["images"]).argmax(1).tolist()
    print(json.dumps(out))
""")


@pytest.mark.skipif(platform.machine() != "x86_64", reason="premise: an x86-64 CPU, whose PyTorch and oneDNN kernels can be capped to AVX2")
def test_eager_and_openvino_int8_hold_when_capped_to_avx2(half_pruned, tmp_path):
    "PyTorch (ATEN_CPU_CAPABILITY=avx2) and oneDNN/OpenVINO (ONEDNN_MAX_CPU_ISA=AVX2) capped to AVX2 classify as uncapped."
    pruned, calibration, images, reference = half_pruned
    torch.save(dict(model=pruned, calibration=calibration, images=images), tmp_path / "blob.pt")
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    run = subprocess.run([sys.executable, "-c", CAPPED_AGREEMENT, str(tmp_path / "blob.pt")], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    capped = json.loads(run.stdout.strip().splitlines()[-1])
    assert capped.pop("torch_capability") == "AVX2"
    for runtime, predicted in capped.items():   # the same artifact built and run here, uncapped
        here = deploy(pruned, "int8", runtime, calibration, 128, threads=1).logits(images).argmax(1).numpy()
        assert np.mean(np.array(predicted) == here) >= 0.995, runtime
        assert abs(np.mean(np.array(predicted) == reference) - np.mean(here == reference)) <= 0.005, runtime
