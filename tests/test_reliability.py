"Nothing lost, never a traceback: bad output locations and config files, torn rows, corrupt checkpoints, config switches, two writers, device fallback."
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from edge_opt.cli import main
from edge_opt.model import SmallCNN
from edge_opt.pruning import structured_channel_prune, random_channel_prune
from edge_opt.quantization import to_int8
from edge_opt.storage import LOCK_FILE, ROWS_FILE, atomic_write, read_rows
from edge_opt.training import evaluate_accuracy

EDGE_OPT = str(Path(sys.executable).with_name("edge-opt"))
TINY = ["--pruning-levels", "0", "0.5", "--precisions", "fp32", "--runtimes", "eager", "--epochs", "1",
        "--train-subset", "256", "--benchmark-rounds", "1", "--no-progress"]


def rows_file(out):
    found = list(Path(out).glob(f"runs/*/{ROWS_FILE}"))
    assert len(found) == 1, found
    return found[0]


# --- bad inputs -------------------------------------------------------------------------------------------

def test_output_locations(tmp_path, cli_error):
    a_file = tmp_path / "results.txt"; a_file.write_text("keep me")
    assert "'output_dir': '" in cli_error(["--output-dir", str(a_file), *TINY])
    assert "is a file, expected a directory" in cli_error(["--output-dir", str(a_file), *TINY])
    assert "results.txt' is a file, expected directories" in cli_error(["--output-dir", str(a_file / "sub"), *TINY])
    assert "File name too long" in cli_error(["--output-dir", str(tmp_path / ("x" * 300)), *TINY])
    assert a_file.read_text() == "keep me"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_dir(tmp_path, cli_error):
    locked = tmp_path / "ro"; locked.mkdir(); locked.chmod(0o500)
    try: assert "Permission denied" in cli_error(["--output-dir", str(locked / "out"), *TINY])
    finally: locked.chmod(0o700)


@pytest.mark.parametrize("make,needle", [
    (lambda d: d, "is a directory; expected a YAML file"),
    (lambda d: (d / "weights.pt").write_bytes(bytes(range(256))) and d / "weights.pt", "is not text (not UTF-8)"),
    (lambda d: d / ("y" * 300 + ".yaml"), "cannot be read (File name too long)"),
])
def test_config_files_that_are_not_yaml_text(make, needle, tmp_path, cli_error):
    assert needle in cli_error(["--config", str(make(tmp_path)), "--output-dir", str(tmp_path / "out")])


@pytest.mark.parametrize("args,needle", [
    (["--pruning-levels", "0", "0.0"], "expected each value once"),
    (["--pruning-levels", "-0", "0.5", "0"], "expected each value once"),
    (["--seeds", str(2**64)], "--seeds [18446744073709551616] is not allowed; expected distinct integers in [0, 4294967295]"),
    (["--epochs", str(2**40)], "config key 'epochs': 1099511627776 is not allowed; expected an integer in [0, 2147483647]"),
    (["--threads", "0"], "config key 'threads': 0"),
])
def test_numbers_spelled_differently_or_too_large(args, needle, tmp_path, cli_error):
    assert needle in cli_error(["--output-dir", str(tmp_path / "out"), *args])
    assert not (tmp_path / "out").exists()


def test_python_api_misuse_names_the_problem():
    other = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(10))
    for fn in (structured_channel_prune, random_channel_prune):
        with pytest.raises(TypeError, match="use prune_model"): fn(other, 0.5)
    with pytest.raises(ValueError, match="calibration loader is empty"): to_int8(SmallCNN(), [], 1)
    with pytest.raises(ValueError, match="loader is empty"): evaluate_accuracy(SmallCNN(), [])


# --- crashes during writes --------------------------------------------------------------------------------

def test_a_torn_row_is_set_aside_and_measured_again(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--output-dir", str(out), *TINY]) == 0
    path = rows_file(out)
    lines = path.read_text().splitlines()
    path.write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])        # the second row cut mid-JSON by a kill
    capsys.readouterr()
    assert main(["--output-dir", str(out), *TINY]) == 0
    assert "set aside 1 unfinished row(s)" in capsys.readouterr().err
    rows = read_rows(path)
    assert len(rows) == 2 and len({(r["pruning_level"], r["precision"], r["runtime"]) for r in rows}) == 2   # none lost, none twice
    assert rows[0] == json.loads(lines[0])                                    # the finished row was kept as measured
    assert all(l.strip().startswith("{") and l.strip().endswith("}") for l in path.read_text().splitlines())
    assert (path.parent / f"{ROWS_FILE}.torn").read_text().strip() == lines[1][: len(lines[1]) // 2].strip()   # the cut may end in a space


def test_a_corrupt_checkpoint_is_set_aside_and_rebuilt(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--output-dir", str(out), *TINY]) == 0
    ckpt = next(out.glob("runs/*/baseline-*.pt"))
    ckpt.write_bytes(ckpt.read_bytes()[:100])                               # half-written
    rows_file(out).unlink()                                                 # so the baseline is needed again
    capsys.readouterr()
    assert main(["--output-dir", str(out), *TINY]) == 0
    assert "does not load" in capsys.readouterr().err
    assert ckpt.with_name(ckpt.name + ".corrupt").exists()
    torch.load(ckpt, weights_only=True)                                     # rebuilt, loadable


def test_a_kill_during_a_checkpoint_write_leaves_a_loadable_file(tmp_path):
    "A child rewrites a large checkpoint in a loop and is killed at once: whatever is on disk still loads."
    path = tmp_path / "baseline.pt"
    atomic_write(path, lambda tmp: torch.save({"w": torch.zeros(10)}, tmp))
    code = (f"import torch\nfrom edge_opt.storage import atomic_write\nbig = {{'w': torch.randn(4_000_000)}}\n"
            f"while True: atomic_write({str(path)!r}, lambda tmp: torch.save(big, tmp))")
    for delay in (0.3, 0.55, 0.8, 1.1):
        child = subprocess.Popen([sys.executable, "-c", code])
        time.sleep(delay); child.send_signal(signal.SIGKILL); child.wait()
        assert set(torch.load(path, weights_only=True)) == {"w"}


# --- configurations, writers, devices ---------------------------------------------------------------------

def test_switching_configurations_keeps_each_and_resumes(tmp_path, capsys):
    out = tmp_path / "out"
    a, b = ["--output-dir", str(out), *TINY], ["--output-dir", str(out), *TINY, "--seeds", "1"]
    assert main(a) == 0; first = pd.read_csv(out / "sweep_results.csv")
    assert main(b) == 0
    assert "stay in" in capsys.readouterr().err
    assert len(list(out.glob("runs/*/sweep_results.csv"))) == 2              # both configurations' reports are kept
    assert main(a) == 0                                                     # back to A: resumed, not measured again
    again = pd.read_csv(out / "sweep_results.csv")
    assert again.latency_ms.tolist() == first.latency_ms.tolist()


def test_two_sweeps_into_one_directory(tmp_path):
    out = tmp_path / "out"
    first = subprocess.Popen([EDGE_OPT, "--output-dir", str(out), *TINY, "--epochs", "500"],   # still training when killed
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lock = out / LOCK_FILE
    deadline = time.time() + 60
    while time.time() < deadline and not (lock.exists() and lock.read_text().strip()):
        time.sleep(0.05)
    second = subprocess.run([EDGE_OPT, "--output-dir", str(out), *TINY], capture_output=True, text=True, timeout=120)
    assert second.returncode == 2 and "Traceback" not in second.stderr
    assert second.stderr.strip().splitlines() == [second.stderr.strip()] and f"PID {first.pid}" in second.stderr
    first.send_signal(signal.SIGKILL); first.wait()                          # its lock is left behind...
    third = subprocess.run([EDGE_OPT, "--output-dir", str(out), *TINY], capture_output=True, text=True, timeout=300)
    assert third.returncode == 0, third.stderr                               # ...and taken over
    assert f"the sweep that held it" in third.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="the fallback needs a machine without CUDA")
def test_device_fallback_is_recorded_and_warned_once(tmp_path):
    res = subprocess.run([EDGE_OPT, "--output-dir", str(tmp_path), *TINY, "--device", "cuda"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    warnings = [l for l in res.stderr.splitlines() if "falling back" in l]
    assert warnings == ["edge-opt: warning: Device 'cuda' is not available here; falling back to 'cpu'."]
    record = json.loads((tmp_path / "reproducibility.json").read_text())
    assert record["device_requested"] == "cuda" and record["devices_used"] == ["cpu"]
    rows = read_rows(rows_file(tmp_path))
    assert {r["requested_device"] for r in rows} == {"cuda"} and {r["device"] for r in rows} == {"cpu"}
