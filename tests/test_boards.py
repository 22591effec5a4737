"Measuring on a board (`measure_on`): a Dask worker holding a resource times and scores the files built here; a killed board, a board without a runtime and bad input."
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest

distributed = pytest.importorskip("distributed")

from edge_opt.boards import Boards
from edge_opt.config import SweepConfig
from edge_opt.experiments import run_sweep
from edge_opt.storage import ROWS_FILE, read_rows

from test_distributed import SAME, overlaps, same_rows

SMALL = dict(pruning_levels=[0.0, 0.5], precisions=["fp32", "int8"], runtimes=["eager", "onnxruntime"], train_subset=512,
             val_subset=400, epochs=1, benchmark_rounds=2, benchmark_trials=2, benchmark_stream_trials=4)
SWEEP_KEY = ["pruning_level", "precision", "runtime"]   # a sweep row's variant (rows.KEY less the plan, which sweeps do not set)


BLOCK = "import sys; sys.modules['onnxruntime'] = None"   # run on a worker: ONNX Runtime looks uninstalled there (as on a board without it)
UNBLOCK = "import sys; sys.modules.get('onnxruntime', 0) is None and sys.modules.pop('onnxruntime')"


@pytest.fixture(scope="module")
def cluster():
    "A scheduler with one plain worker and one board: a `dask worker` process holding resource `board`, started as a user starts one."
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as local, \
         distributed.Client(local) as client:
        board = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", local.scheduler_address, "--resources", "board=1",
                                  "--nthreads", "1", "--name", "board-1", "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            client.wait_for_workers(2, timeout=120)
            yield local.scheduler_address, client
        finally:
            board.terminate(); board.wait(30)


@pytest.fixture(scope="module")
def local_rows(tmp_path_factory):
    return run_sweep(SweepConfig(**SMALL), tmp_path_factory.mktemp("local"), progress=False)


def board_config(scheduler, **kw):
    return SweepConfig(**{**SMALL, **kw}, executor="dask", scheduler=scheduler, measure_on="board", measure_timeout_s=60)


def test_every_row_is_measured_on_the_board(cluster, local_rows, tmp_path):
    "Rows measured by the board worker alone, with the local run's accuracy, interval, memory, MACs and artifact bytes; no two timings at once."
    scheduler, client = cluster
    rows = run_sweep(board_config(scheduler), tmp_path, progress=False)
    assert rows.error.isna().all() and rows.unsupported.isna().all(), rows[["error", "unsupported"]].dropna(how="all")
    assert set(rows.measured_by) == {"board-1"}
    board = Boards(client, "board").facts()["board-1"]
    assert (rows.cpu == board["cpu"]).all() and (rows.cpu_flags == board["cpu_flags"]).all()
    assert (rows.runtime_version == rows.runtime.map(board["runtime_versions"])).all()
    assert set(rows.built_on) == {local_rows.host.iloc[0]}
    same = [c for c in SAME if c not in ("threads", "accepted")]
    same_rows(local_rows.set_index(SWEEP_KEY)[same], rows.set_index(SWEEP_KEY)[same])
    assert rows.latency_ms.gt(0).all() and overlaps(rows) == []
    assert len(read_rows(next(tmp_path.glob(f"runs/*/{ROWS_FILE}")))) == len(rows)


def test_a_board_without_a_runtime_gives_rows_that_name_it(cluster, tmp_path):
    scheduler, client = cluster
    board = list(Boards(client, "board").wait())
    client.run(exec, BLOCK, workers=board)
    try: rows = run_sweep(board_config(scheduler, runtimes=["eager", "onnxruntime"], pruning_levels=[0.0]), tmp_path, progress=False)
    finally: client.run(exec, UNBLOCK, workers=board)
    ort = rows[rows.runtime == "onnxruntime"]
    assert ort.unsupported.str.contains("onnxruntime is not installed on measuring worker 'board-1'").all(), ort.unsupported.tolist()
    assert rows[rows.runtime == "eager"].accuracy.notna().all() and rows.error.isna().all()


def test_a_killed_board_costs_only_its_measurement(cluster, local_rows, tmp_path):
    "The board's worker process SIGKILLed while it measures: its nanny restarts it, the level is measured again, no row is lost or doubled."
    scheduler, client = cluster
    result = {}
    sweep = threading.Thread(target=lambda: result.update(rows=run_sweep(board_config(scheduler), tmp_path, progress=False)))
    sweep.start()
    killed, deadline = None, time.time() + 180
    while killed is None and time.time() < deadline and sweep.is_alive():
        busy = [w for w, tasks in client.processing().items() if any(t.startswith("measure_shipped") for t in tasks)]
        if busy:
            os.kill(client.run(os.getpid, workers=busy)[busy[0]], signal.SIGKILL); killed = busy[0]
        time.sleep(0.05)
    sweep.join(300)
    assert killed is not None, "no measurement was seen running"
    rows = result["rows"]
    assert rows.error.isna().all(), rows.error.dropna().tolist()
    assert set(rows.measured_by) == {"board-1"}
    same = [c for c in SAME if c not in ("threads", "accepted")]
    same_rows(local_rows.set_index(SWEEP_KEY)[same], rows.set_index(SWEEP_KEY)[same])
    on_disk = pd.DataFrame(read_rows(next(tmp_path.glob(f"runs/*/{ROWS_FILE}"))))
    assert len(on_disk) == len(rows) and not on_disk.duplicated(SWEEP_KEY).any()


def test_int8_recipes_follow_the_board(cluster, tmp_path, monkeypatch):
    "With `auto`, ONNX Runtime's INT8 recipe is chosen for the board's CPU, not for the machine that builds: a board of the other class than this CPU gets the other recipe."
    from edge_opt.recipes import CPU_CLASSES, INT8_RECIPES, cpu_features, u8s8_saturates
    scheduler, _ = cluster
    here_saturates = u8s8_saturates(cpu_features())
    other = CPU_CLASSES["AVX-512 VNNI (Cascade Lake, Zen 4)" if here_saturates else "AVX2 only (AMD Zen 2/3, Intel Haswell to Comet Lake)"]
    expected = INT8_RECIPES["onnxruntime"]["u8s8" if here_saturates else "u8s8-reduce-range"]
    facts = Boards.facts
    monkeypatch.setattr(Boards, "facts", lambda self: {n: {**f, "features": other} for n, f in facts(self).items()})
    rows = run_sweep(board_config(scheduler, runtimes=["onnxruntime"], pruning_levels=[0.0]), tmp_path, progress=False)
    assert rows.error.isna().all()
    assert (rows[rows.precision == "int8"].int8_recipe == expected).all(), rows.int8_recipe.tolist()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    "One tiny finished run, copied by each bad-input test into its own folder."
    from edge_opt.cli import main
    out = tmp_path_factory.mktemp("tiny")
    assert main(["--output-dir", str(out), *TINY]) == 0
    return out


TINY = ["--pruning-levels", "0", "--precisions", "fp32", "--runtimes", "eager", "--epochs", "1", "--train-subset", "256",
        "--benchmark-rounds", "1", "--no-progress"]


@pytest.mark.parametrize("args,needle", [
    (["--measure-on", "pi5"], "config key 'measure_on': 'pi5' is not allowed; it needs executor: dask"),
    (["--executor", "dask", "--scheduler", "local:1", "--measure-on", ""], "config key 'measure_on': '' is not allowed; expected a Dask worker resource name"),
    (["--executor", "dask", "--scheduler", "local:1", "--measure-on", "pi 5"], "config key 'measure_on': 'pi 5' is not allowed"),
    (["--executor", "dask", "--scheduler", "local:1", "--measure-on", "pi5", "--device", "cuda"],
     "config key 'device': 'cuda' is not allowed; with measure_on 'pi5' the board runs every runtime and precision, INT8 included, on its CPU"),
    (["--executor", "dask", "--scheduler", "local:1", "--measure-on", "pi5", "--measure-timeout-s", "1"],
     "config key 'measure_on': 'pi5' is not allowed; no Dask worker held that resource within 1 s"),
])
def test_bad_boards_end_in_one_line_and_keep_rows(args, needle, tiny_run, tmp_path, cli_error):
    from edge_opt.cli import main
    shutil.copytree(tiny_run, tmp_path, dirs_exist_ok=True)   # a finished run's folder
    rows = next(tmp_path.glob(f"runs/*/{ROWS_FILE}"))
    before = rows.read_text()
    assert needle in cli_error(["--output-dir", str(tmp_path), *TINY, *args])
    assert rows.read_text() == before and len(list(tmp_path.glob(f"runs/*/{ROWS_FILE}"))) == 1


def test_a_search_measures_every_plan_on_the_board(cluster, tmp_path):
    "edge-opt search with measure_on: every candidate is pruned and built here, timed and scored on the board."
    from edge_opt.search import SearchSettings, Target, run_search
    scheduler, _ = cluster
    cfg = board_config(scheduler, finetune_epochs=1)
    settings = SearchSettings(step=0.25, finetune_batches=2, max_steps=2, uniform_levels=(0.5,))
    result = run_search(cfg, settings, Target.of(memory_limit="70%", cfg=cfg), tmp_path, progress=False)
    rows = pd.DataFrame(read_rows(result.here / ROWS_FILE))
    assert rows.error.isna().all(), rows.error.dropna()
    assert set(rows.measured_by) == {"board-1"} and set(rows.measure_on) == {"board"} and set(rows.search_role) >= {"baseline", "proposal", "result"}
    assert result.result["measured_by"] == "board-1" and overlaps(rows) == []
