"`edge-opt search`: bad input, a search killed with SIGKILL and resumed, a plan exported, a target no plan meets."
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge_opt.cli import main
from edge_opt.storage import read_rows

EDGE_OPT = [str(Path(sys.executable).with_name("edge-opt"))]
SMALL = ["--train-subset", "512", "--val-subset", "400", "--epochs", "1", "--finetune-epochs", "1", "--benchmark-rounds", "2", "--threads", "1",
         "--step", "0.25", "--finetune-batches", "4", "--uniform-levels", "0.5", "--no-progress"]


@pytest.mark.parametrize("args,needle", [
    (["--latency-limit", "fast"], "config key 'latency_limit': 'fast' is not allowed"),
    (["--memory-limit", "40 parsecs"], "config key 'memory_limit': '40 parsecs' is not allowed"),
    (["--latency-limit", "150%"], "config key 'latency_limit': '150%' is not allowed"),
    (["--latency-limit", "50%", "--step", "1.5"], "search setting 'step': 1.5 is not allowed"),
    (["--latency-limit", "50%", "--max-steps", "0"], "search setting 'max_steps': 0 is not allowed"),
    (["--latency-limit", "50%", "--runtime", "tflite"], "argument --runtime: invalid choice: 'tflite'"),
    (["--latency-limit", "50%", "--no-int8-fallback", "--holdout-fraction", "0"], "the search chooses on held-out training images"),
])
def test_bad_search_input_is_one_line(args, needle, tmp_path, capsys):
    with pytest.raises(SystemExit) if "--runtime" in args else _nothing():
        assert main(["search", "--output-dir", str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("edge-opt") and needle in err, err
    assert not (tmp_path / "out").exists()   # nothing ran, nothing was made


def test_a_runtime_not_installed_is_one_line(tmp_path, capsys, monkeypatch):
    import edge_opt.runtimes as rt
    monkeypatch.setitem(rt.RUNTIME_PACKAGES, "openvino", "openvino_not_installed_here")
    assert main(["search", "--output-dir", str(tmp_path / "out"), "--latency-limit", "50%", "--runtime", "openvino"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and "'openvino' is not allowed here; its package 'openvino_not_installed_here' is not installed" in err


class _nothing:
    def __enter__(self): return self
    def __exit__(self, *exc): return False


def _steps(here: Path) -> list[dict]:
    return read_rows(here / "search_steps.jsonl")


def test_killed_search_resumes_exports_and_says_when_no_plan_meets(tmp_path, capsys):
    out = tmp_path / "out"
    args = EDGE_OPT + ["search", "--output-dir", str(out), "--memory-limit", "45%", *SMALL]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, found = time.time() + 240, []
    while time.time() < deadline and proc.poll() is None:
        found = list(out.glob("searches/*/search_steps.jsonl"))
        if found and found[0].read_text().count("\n") >= 1: break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL); proc.wait()
    here = found[0].parent
    before, rows_before = _steps(here), read_rows(here / "sweep_rows.jsonl")
    assert 1 <= len(before) and not (here / "search.json").exists(), "the search should have been killed midway"

    capsys.readouterr()
    assert main(args[1:]) == 0   # resumed here: the killed process's files are all it has
    printed = capsys.readouterr().out
    steps, rows = _steps(here), read_rows(here / "sweep_rows.jsonl")
    assert [s["step"] for s in steps] == list(range(1, len(steps) + 1))   # no finished step repeated
    assert steps[:len(before)] == before
    done = {s["step"] for s in before}
    assert [r for r in rows if r.get("search_step") in done and r["search_role"] == "proposal"] == \
           [r for r in rows_before if r.get("search_step") in done and r["search_role"] == "proposal"]   # measured once
    summary = json.loads((here / "search.json").read_text())
    plan = summary["result"]["plan"]
    assert summary["met"] and f"Plan {plan} meets the target" in printed and "Shipped:" in printed
    manifest = json.loads((out / "recommended" / "manifest.json").read_text())
    assert manifest["variant"]["plan"] == plan and manifest["verified"]["matches_sweep"]
    assert manifest["variant"]["channels"] == json.loads(summary["result"]["plan_channels"])

    for d in (here / "artifacts").iterdir(): shutil.rmtree(d)   # a tidied store: export rebuilds from the kept plan
    assert main(["export", "--from", str(out), "--plan", plan, "--precision", "fp32", "--runtime", "onnxruntime", "--to", str(tmp_path / "exported")]) == 0
    assert f"Exported plan {plan} FP32 on onnxruntime" in capsys.readouterr().out
    assert json.loads((tmp_path / "exported" / "manifest.json").read_text())["verified"]["matches_sweep"]
    capsys.readouterr()
    assert main(["export", "--from", str(out), "--plan", "nope", "--precision", "fp32", "--runtime", "onnxruntime"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--plan 'nope' is not allowed" in err and plan in err

    # a tighter target of the same kind continues the same steps; with no step left to take it is a result, exit 3
    shipped = (out / "recommended" / "manifest.json").read_text()
    assert main(["search", "--output-dir", str(out), "--memory-limit", "1kB", "--max-steps", str(len(steps)), *SMALL]) == 3
    printed = capsys.readouterr().out
    assert f"No plan met the target within {len(steps)} step(s)" in printed and f"closest: plan {plan}" in printed
    assert (out / "recommended" / "manifest.json").read_text() == shipped   # the earlier answer is left as it was
    assert len(read_rows(here / "sweep_rows.jsonl")) == len(rows)   # nothing measured again


def test_a_target_the_unpruned_network_meets_ships_it(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["search", "--output-dir", str(out), "--latency-limit", "100%", *SMALL]) == 0
    printed = capsys.readouterr().out
    assert "The unpruned network already meets the target" in printed and "Shipped:" in printed
    manifest = json.loads((out / "recommended" / "manifest.json").read_text())
    assert manifest["variant"]["plan"].endswith("-unpruned") and manifest["variant"]["pruning_level"] == 0
    assert not list(out.glob("searches/*/search_steps.jsonl"))   # no step was taken
