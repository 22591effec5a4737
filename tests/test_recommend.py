"The recommendation end to end: a real sweep judged independently from its CSV, the CLI's exit codes and bad input."
import contextlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from edge_opt.cli import NO_VARIANT_EXIT, main
from edge_opt.constraints import Constraints, recommend
from edge_opt.metrics import unpack_correct
from edge_opt.storage import read_rows

EDGE_OPT = str(Path(sys.executable).with_name("edge-opt"))
SMALL = ["--pruning-levels", "0", "0.5", "--precisions", "fp32", "int8", "--runtimes", "eager", "onnxruntime",
         "--epochs", "2", "--train-subset", "1000", "--benchmark-rounds", "2", "--no-progress"]


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    assert main(["--output-dir", str(out), *SMALL]) == 0
    return out


class _no_exit:
    "A stand-in for `pytest.raises` when the call returns its exit code instead of raising."
    value = None
    def __enter__(self): return self
    def __exit__(self, *exc): return False


def shell(*args):
    "`edge-opt ARGS` as a shell runs it: a process of its own (its import, its exit status, its one-time warnings)."
    return subprocess.run([EDGE_OPT, *args], capture_output=True, text=True, timeout=600)


def run(*args):
    "`edge-opt ARGS` in this process, reported as a finished process is (exit status, stdout, stderr): the command's own code without a second interpreter importing the stack; `shell` checks what only a process shows."
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try: code = main(list(args))
        except SystemExit as e: code = e.code   # argparse's own errors
    return subprocess.CompletedProcess(["edge-opt", *args], code, out.getvalue(), err.getvalue())


def independent_answer(csv, memory_limit, max_drop, objective_col, max_latency_ms=None):
    "The recommendation recomputed from sweep_results.csv with numpy alone: paired bootstrap of the drop, filter, the fastest and the variants tied with it, the tie rule."
    rows = pd.read_csv(csv)
    rows = rows[rows.error.isna() & rows.unsupported.isna()].reset_index(drop=True)
    base = rows[(rows.pruning_level == 0) & (rows.precision == "fp32") & (rows.runtime == "eager")].iloc[0]
    max_memory_mb = float(memory_limit[:-1]) / 100 * base.memory_mb if str(memory_limit).endswith("%") else memory_limit
    b = unpack_correct(base.correct).astype(np.int8)
    idx = np.random.default_rng(0).integers(0, len(b), size=(1000, len(b)))
    high = [np.percentile((b - unpack_correct(c).astype(np.int8))[idx].mean(axis=1) * 100, 97.5) for c in rows.correct]
    ok = rows[(rows.memory_mb <= max_memory_mb) & (np.round(high, 9) <= max_drop)
              & ((rows.stream_latency_ms <= max_latency_ms) if max_latency_ms else True)]
    if ok.empty: return None
    fastest = ok.sort_values([objective_col, "accuracy", "memory_mb", "pruning_level"], ascending=[True, False, True, True]).iloc[0]
    low, high = objective_col.replace("_ms", "_low_ms"), objective_col.replace("_ms", "_high_ms")   # 5th/95th percentile of round medians
    low, high = (low, high) if low in ok else (objective_col, objective_col)   # a p95 objective has no spread
    tied = ok[ok[low] <= fastest[high]]   # spreads that overlap the fastest's: a tie, broken by less memory, then accuracy, then median
    best = tied.sort_values(["memory_mb", "accuracy", objective_col], ascending=[True, False, True]).iloc[0]
    return best.pruning_level, best.precision, best.runtime


@pytest.mark.parametrize("memory,drop,objective,col", [
    (0.05, 1.0, "single_median", "stream_latency_ms"),
    (0.2, 100.0, "batch_median", "latency_ms"),
    (0.03, 20.0, "batch_p95", "latency_p95_ms"),
    ("40%", 1.0, "single_median", "stream_latency_ms"),   # a share of the FP32 unpruned network's memory
])
def test_recommendation_matches_an_independent_computation(sweep_dir, memory, drop, objective, col):
    res = run("recommend", "--from", str(sweep_dir), "--memory-limit", str(memory), "--max-accuracy-drop", str(drop),
              "--objective", objective)
    expected = independent_answer(sweep_dir / "sweep_results.csv", memory, drop, col)
    assert res.returncode == (0 if expected else NO_VARIANT_EXIT), res.stderr
    rec = json.loads((sweep_dir / "recommendation.json").read_text())
    assert rec["passed"] == (expected is not None)
    if expected:
        assert (rec["pruning_level"], rec["precision"], rec["runtime"]) == expected
        assert {"accuracy", "memory_mb", col, "constraints"} <= set(rec)
        assert rec["constraints"]["memory_limit"] == memory and rec["constraints"]["objective"] == objective
        assert f"Ship pruning {expected[0]:g} + {expected[1].upper()} on {expected[2]}" in res.stdout


def test_nothing_passes_is_a_result_with_nearest_misses(sweep_dir):
    res = run("recommend", "--from", str(sweep_dir), "--memory-limit", "1%", "--max-accuracy-drop", "0")
    assert res.returncode == NO_VARIANT_EXIT and "Traceback" not in res.stderr
    assert "No variant of 8 meets every constraint. Nearest misses:" in res.stdout
    rec = json.loads((sweep_dir / "recommendation.json").read_text())
    assert rec["passed"] is False and rec["recommendation"] is None and "memory" in rec["nearest_misses"]
    command = res.stdout.strip().splitlines()[-1].split()   # the last line: the command that lets the nearest miss pass
    assert command[:4] == ["edge-opt", "recommend", "--from", str(sweep_dir)] and "--memory-limit" in command
    again = run(*command[1:])
    nearest = rec["loosen"]["variant"]
    assert again.returncode == 0, again.stdout
    assert json.loads((sweep_dir / "recommendation.json").read_text())["passed"] is True
    assert f"pruning {nearest['pruning_level']:g} {nearest['precision'].upper()} on {nearest['runtime']}" in " ".join(res.stdout.split())


def test_old_limit_keys_still_work_with_one_notice(sweep_dir):
    res = shell("recommend", "--from", str(sweep_dir), "--max-memory-mb", "0.05")
    assert res.returncode in (0, NO_VARIANT_EXIT) and res.stderr.strip().splitlines() == [
        "edge-opt: warning: config key 'max_memory_mb' is replaced by 'memory_limit'; read as memory_limit: 0.05"]
    assert json.loads((sweep_dir / "recommendation.json").read_text())["constraints"]["memory_limit"] == 0.05


def test_old_memory_on_value_still_works_with_one_notice(sweep_dir):
    res = shell("recommend", "--from", str(sweep_dir), "--memory-on", "true_storage", "--budgets-mb", "40kB", "0.1MB")
    assert res.returncode in (0, NO_VARIANT_EXIT) and res.stderr.strip().splitlines() == [
        "edge-opt: warning: config key 'memory_on': 'true_storage' is now called 'footprint'; read as memory_on: footprint"]
    rec = json.loads((sweep_dir / "recommendation.json").read_text())
    assert rec["constraints"]["memory_on"] == "footprint"


def test_latency_limit_and_allowed_runtimes(sweep_dir):
    rows = pd.read_csv(sweep_dir / "sweep_results.csv")
    rec = recommend(rows, Constraints(memory_limit=1.0, max_accuracy_drop=None, allowed_runtimes=("eager",)))
    assert rec.choice["runtime"] == "eager"
    assert set(rec.candidates[rec.candidates.passes].runtime) == {"eager"}
    limit = rec.choice["latency"] * 0.999   # just below the fastest eager variant: it must be excluded
    tighter = recommend(rows, Constraints(memory_limit=1.0, max_accuracy_drop=None, allowed_runtimes=("eager",), latency_limit=limit))
    assert tighter.choice is None or tighter.choice["latency"] <= limit


def test_default_run_prints_and_writes_a_recommendation(sweep_dir):
    rec = json.loads((sweep_dir / "recommendation.json").read_text())   # written by the sweep, then by later calls
    assert {"passed", "constraints", "baseline"} <= set(rec)


def test_from_an_empty_directory_runs_the_sweep_first(tmp_path):
    cfg = tmp_path / "small.yaml"
    cfg.write_text("pruning_levels: [0.0]\nprecisions: [fp32, int8]\nruntimes: [eager]\nepochs: 1\ntrain_subset: 500\n"
                   "benchmark_rounds: 1\nmax_accuracy_drop: 100\n")
    res = run("recommend", "--from", str(tmp_path / "new"), "--config", str(cfg), "--no-progress")
    assert res.returncode == 0, res.stderr
    assert "no sweep in" in res.stdout and (tmp_path / "new" / "sweep_results.csv").exists()
    assert json.loads((tmp_path / "new" / "recommendation.json").read_text())["constraints"]["max_accuracy_drop"] == 100


@pytest.mark.parametrize("args,needle", [
    (["--max-memory-mb", "-1"], "config key 'max_memory_mb': -1.0 is not allowed"),
    (["--max-latency-ms", "fast"], "argument --max-latency-ms: invalid float value: 'fast'"),
    (["--memory-limit", "-1"], "config key 'memory_limit': '-1' is not allowed; expected a size such as 40kB, 2MB or 1.5MiB (kB = 1,000 bytes, KiB = 1,024; a bare number is MB) or a share of the FP32 unpruned baseline"),
    (["--latency-limit", "fast"], "config key 'latency_limit': 'fast' is not allowed; expected a positive number (ms)"),
    (["--memory-limit", "150%"], "config key 'memory_limit': '150%' is not allowed"),
    (["--memory-limit", "0%"], "config key 'memory_limit': '0%' is not allowed"),
    (["--memory-limit", "25 %%"], "config key 'memory_limit': '25 %%' is not allowed"),
    (["--memory-limit=-5%"], "config key 'memory_limit': '-5%' is not allowed"),
    (["--memory-limit", "abc%"], "config key 'memory_limit': 'abc%' is not allowed"),
    (["--memory-limit", "40 kb s"], "config key 'memory_limit': '40 kb s' is not allowed; expected a size such as 40kB"),
    (["--memory-limit", "5GBs"], "config key 'memory_limit': '5GBs' is not allowed"),
    (["--memory-limit", "30%MB"], "config key 'memory_limit': '30%MB' is not allowed"),
    (["--memory-limit=-40kB"], "config key 'memory_limit': '-40kB' is not allowed"),
    (["--memory-limit", "25%", "--max-memory-mb", "0.05"], "config key 'max_memory_mb': 0.05 is not allowed; it and 'memory_limit': '25%' set the same limit"),
    (["--max-memory-mb", "0.05", "--active-budget-mb", "0.1"], "it and max_memory_mb: 0.05 set the same limit; give 'memory_limit' alone"),
    (["--max-accuracy-drop", "150"], "config key 'max_accuracy_drop': 150.0 is not allowed; expected a number in [0, 100] or null"),
    (["--max-accuracy-drop", "-0.5"], "config key 'max_accuracy_drop': -0.5 is not allowed"),
    (["--runtimes", "tflite"], "config key 'allowed_runtimes': 'tflite' is not allowed"),
    (["--precisions", "int4"], "config key 'allowed_precisions': 'int4' is not allowed"),
    (["--objective", "cheapest"], "config key 'objective': 'cheapest' is not allowed"),
    (["--budgets-mb", "40 kb s"], "config key 'memory_budgets_mb': '40 kb s' is not allowed; expected a size such as 40kB"),
    (["--budgets-mb", "40kB", "5GBs"], "config key 'memory_budgets_mb': '5GBs' is not allowed"),
    (["--budgets-mb=-40kB"], "config key 'memory_budgets_mb': '-40kB' is not allowed"),
    (["--budgets-mb", "40kB", "0.04"], "config key 'memory_budgets_mb': ['40kB', '0.04'] is not allowed; expected each size once"),
])
def test_bad_limits_end_in_one_line(args, needle, sweep_dir, capsys):
    "In process (the shell's view of the same parser is checked once below): one line, exit 2, rows untouched."
    rows_file = next(sweep_dir.glob("runs/*/sweep_rows.jsonl"))
    before = rows_file.read_text()
    with pytest.raises(SystemExit) if "invalid float" in needle else _no_exit() as stop:
        code = main(["recommend", "--from", str(sweep_dir), *args])
    code = stop.value.code if "invalid float" in needle else code
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.splitlines() == [err] and needle in err
    assert rows_file.read_text() == before


def test_a_bad_limit_from_the_shell(sweep_dir):
    res = shell("recommend", "--from", str(sweep_dir), "--max-accuracy-drop", "150")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == [res.stderr.strip()]
    assert res.stderr.startswith("edge-opt: error: config key 'max_accuracy_drop': 150.0 is not allowed; expected a number in [0, 100] or null")


def test_a_directory_with_no_sweep_and_no_way_to_run_one(tmp_path):
    afile = tmp_path / "results.txt"
    afile.write_text("not a sweep")
    res = run("recommend", "--from", str(afile))
    assert res.returncode == 2 and res.stderr.strip() == f"edge-opt: error: --from '{afile}' is not allowed; it is a file, expected a directory holding a sweep or one to run it in"
    res = run("recommend", "--from", "/proc/edge_opt_cannot_be_here", "--no-progress")
    assert res.returncode == 2 and "Traceback" not in res.stderr and "none can be run there" in res.stderr


def test_a_search_beside_the_sweep_is_judged_and_named(sweep_dir, tmp_path):
    "A search's result in the sweep's folder (same data, network and timing) is a variant like the sweep's levels: below every FP32 level's footprint, only the plan can pass."
    out = tmp_path / "out"
    shutil.copytree(sweep_dir, out)
    rows = pd.read_csv(out / "sweep_results.csv")
    smallest = rows[rows.precision == "fp32"].memory_mb.min()
    limit = f"{smallest * 0.9 * 1e3:.2f}kB"
    res = run("search", "--output-dir", str(out), "--memory-limit", limit, "--epochs", "2", "--train-subset", "1000", "--benchmark-rounds", "2",
              "--precision", "fp32", "--runtime", "onnxruntime", "--step", "0.5", "--finetune-batches", "2", "--uniform-levels", "0.5", "--no-progress")
    assert res.returncode == 0, res.stderr
    plan = json.loads(next(out.glob("searches/*/search.json")).read_text())["result"]["plan"]
    res = run("recommend", "--from", str(out), "--memory-limit", limit, "--precisions", "fp32", "--max-accuracy-drop", "100")
    assert res.returncode == 0 and res.stdout.startswith(f"Ship plan {plan} + FP32 on onnxruntime"), res.stdout + res.stderr
    rec = json.loads((out / "recommendation.json").read_text())
    results = {r["plan"] for r in read_rows(next(out.glob("searches/*/sweep_rows.jsonl"))) if r.get("search_role") == "result"}   # each measured result
    assert rec["plan"] == plan and plan in results and rec["candidates"] == len(rows[rows.error.isna() & rows.unsupported.isna()]) + len(results)
