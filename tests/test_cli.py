"The edge-opt command: bad configs, resume after a kill, several seeds."
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from edge_opt.cli import main

EDGE_OPT = [str(Path(sys.executable).with_name("edge-opt"))]
SMALL = ["--pruning-levels", "0", "0.5", "--precisions", "fp32", "int8", "--runtimes", "eager", "onnxruntime",
         "--epochs", "1", "--train-subset", "512", "--benchmark-rounds", "2", "--no-progress"]


def edge_opt(*args, cwd=None, timeout=300):
    return subprocess.run(EDGE_OPT + list(args), capture_output=True, text=True, cwd=cwd, timeout=timeout)


@pytest.mark.parametrize("args,needle", [
    (["--budgets-mb", "0.1", "-0.5"], "config key 'memory_budgets_mb': '-0.5' is not allowed; expected a size"),
    (["--active-budget-mb", "-1"], "config key 'active_budget_mb': -1.0 is not allowed"),
    (["--pruning-levels", "0", "1.0"], "config key 'pruning_levels': 1.0 is not allowed; each value must be a number in [0, 1)"),
    (["--precisions", "fp32", "int4"], "config key 'precisions': 'int4' is not allowed; each value must be one of fp32, fp16, int8"),
    (["--dataset", "cifar10"], "config key 'dataset': 'cifar10' is not allowed; expected one of mnist-5k, mnist, fashion-mnist, kmnist"),
    (["--backend", "tensorrt"], "config key 'quantization_backend': 'tensorrt' is not allowed; expected one of auto, x86, fbgemm, qnnpack"),
    (["--seeds", "1", "1"], "--seeds [1, 1] is not allowed"),
    (["--distill-weight", "1.5"], "config key 'distill_weight': 1.5 is not allowed; expected a number in [0, 1]"),
    (["--distill-temperature", "0"], "config key 'distill_temperature': 0.0 is not allowed; expected a number > 0"),
    (["--int8-max-float-layers", "-1"], "config key 'int8_max_float_layers': -1 is not allowed; expected an integer in [0, "),
    (["--int8-max-drop", "-0.5"], "config key 'int8_max_drop': -0.5 is not allowed; expected a number in [0, 100]"),
    (["--holdout-fraction", "0"], "config key 'holdout_fraction': 0.0 is not allowed; int8_fallback chooses on held-out images"),
    (["--holdout-fraction", "0.001"], "config key 'holdout_fraction': 0.001 holds out no training image of mnist-5k"),
])
def test_bad_flags_end_with_one_error_line(args, needle, tmp_path, capsys):
    assert main(["--output-dir", str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("edge-opt: error: ") and needle in err
    assert not (tmp_path / "out").exists()   # nothing ran


def test_bad_flag_from_the_shell(tmp_path):
    "The installed console script: exit status 2, one line, no traceback."
    res = edge_opt("--output-dir", str(tmp_path / "out"), "--pruning-levels", "1.0")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == [
        "edge-opt: error: config key 'pruning_levels': 1.0 is not allowed; each value must be a number in [0, 1)"]


@pytest.mark.parametrize("yaml_text,needle", [
    ("precisions: []\n", "config key 'precisions': [] is not allowed; expected a non-empty list"),
    ("pruning_levels: []\n", "config key 'pruning_levels': [] is not allowed"),
    ("memory_budgets_mb: []\n", "config key 'memory_budgets_mb': [] is not allowed"),
    ("learning_rat: 0.01\n", "unknown config key 'learning_rat'; known keys: seed, dataset"),
    ("memory_budgets_mb: [0.1, -2]\n", "config key 'memory_budgets_mb': -2"),
    ("epochs: [oops\n", "is not valid YAML"),
    ("- just\n- a list\n", "a config must be a mapping"),
])
def test_bad_config_files(yaml_text, needle, tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml_text)
    assert main(["--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err


def test_bad_config_file_from_the_shell(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("precisions: []\n")
    res = edge_opt("--config", str(cfg))
    assert res.returncode == 2 and "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_missing_config_file(tmp_path, capsys):
    assert main(["--config", str(tmp_path / "nope.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_print_config_round_trips(tmp_path, capsys):
    assert main(["--print-config", "--precisions", "int8"]) == 0
    printed = capsys.readouterr().out
    cfg = tmp_path / "c.yaml"
    cfg.write_text(printed)
    assert main(["--config", str(cfg), "--print-config"]) == 0
    assert capsys.readouterr().out == printed and "precisions: [int8]" in printed


def test_killed_sweep_keeps_rows_and_resumes(tmp_path):
    out = tmp_path / "run"
    args = EDGE_OPT + ["--output-dir", str(out), *SMALL]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        found = list(out.glob("runs/*/sweep_rows.jsonl"))
        if found and len(found[0].read_text().splitlines()) >= 1:
            break
        time.sleep(0.02)
    rows_file = found[0]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = [json.loads(line) for line in rows_file.read_text().splitlines() if line.endswith("}")]
    assert 1 <= len(before) < 8, "the sweep should have been killed midway"

    res = edge_opt("--output-dir", str(out), *SMALL)
    assert res.returncode == 0, res.stderr
    results = pd.read_csv(out / "sweep_results.csv")
    assert len(results) == 8
    for row in before:   # earlier rows are kept as measured, not measured again
        again = results[(results.pruning_level == row["pruning_level"]) & (results.precision == row["precision"])
                        & (results.runtime == row["runtime"])]
        assert again.latency_ms.item() == pytest.approx(row["latency_ms"], rel=1e-12)
    assert len(rows_file.read_text().splitlines()) == 8
    check_report(res.stdout, results)   # stderr: the take-over notice, one line by contract
    verbose = edge_opt("--output-dir", str(out), *SMALL, "--verbose")   # resumed: nothing measured again
    assert verbose.returncode == 0 and "Pareto variants per runtime that fit the memory limit" in verbose.stdout, verbose.stderr
    table_rows = lambda text: len(re.findall(r"^\s*(?:0|0\.5)\s+(?:FP32|INT8)\s+(?:eager|onnxruntime)\s", text, re.M))
    measured = results[results.error.isna() & results.unsupported.isna()]   # what this CPU could build (not every CPU builds every INT8)
    expected = (len(measured.drop_duplicates(["pruning_level", "precision"])), len(measured))
    assert (table_rows(res.stdout), table_rows(verbose.stdout)) == expected   # each level and precision once; --verbose: every variant


def check_report(text, rows):
    "The terminal report reads answer first: the recommendation within 15 lines, lines of at most 120 characters, no column names, no exponents."
    lines = text.splitlines()
    assert any(l.startswith(("Ship pruning", "No variant of", "No recommendation:")) for l in lines[:15]), lines[:15]
    assert max(map(len, lines)) <= 120, max(lines, key=len)
    words = set(re.findall(r"[A-Za-z_]+", text))
    assert not {c for c in rows.columns if "_" in c} & words, {c for c in rows.columns if "_" in c} & words
    exponent = re.search(r"(?<![\w.])\d+(\.\d+)?[eE][-+]?\d+\b", text)   # 2.8e+04, 1e-05; not a hash such as 18e3a0
    assert exponent is None, exponent


def test_several_seeds_and_aggregate(tmp_path):
    res = edge_opt("--output-dir", str(tmp_path), *SMALL, "--seeds", "1", "2", "--precisions", "int8")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "seed_1" / "summary.json").exists() and (tmp_path / "seed_2" / "summary.json").exists()
    agg = pd.read_csv(tmp_path / "aggregate_summary.csv")
    assert agg.seeds.tolist() == [2, 2, 2, 2] and {"accuracy_mean", "accuracy_std", "latency_ms_mean"} <= set(agg.columns)
    assert sorted(set(agg.runtime)) == ["eager", "onnxruntime"]
    assert "mean ± std over seeds [1, 2]" in res.stdout
    assert "== seed 1 ==" in res.stdout and "Each pruning level and precision on its fastest runtime" in " ".join(res.stdout.split())
    check_report(res.stdout.split("== seed 2 ==")[0], agg)   # each seed's report and the aggregate read as the default run's do
    check_report("No recommendation:\n" + res.stdout.split("== mean ± std over seeds")[1], agg)


def test_a_baseline_at_chance_level_is_said_plainly(tmp_path):
    "An untrained network (0 epochs) classifies at chance: one warning line in the report and in summary.json; the recommendation is still computed."
    res = edge_opt("--output-dir", str(tmp_path), "--epochs", "0", "--pruning-levels", "0", "--precisions", "fp32", "int8",
                   "--runtimes", "eager", "--benchmark-rounds", "2", "--val-subset", "500", "--no-progress")
    assert res.returncode == 0, res.stderr
    warned = [l for l in res.stdout.splitlines() if l.startswith("WARNING: the baseline is at chance level")]
    assert len(warned) == 1 and "--epochs" in res.stdout and "--weights" in res.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["chance_warning"].startswith("the baseline is at chance level")
    assert json.loads((tmp_path / "recommendation.json").read_text())["candidates"] == 2
    check_report(res.stdout + res.stderr, pd.read_csv(tmp_path / "sweep_results.csv"))
