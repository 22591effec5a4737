"A sweep on a Dask cluster: the same rows as in-process, one timing per host at a time, a killed worker retried, bad input in one line."
import os
import signal
import threading
import time
from pathlib import Path
from unittest import mock

import pandas as pd
import pytest

distributed = pytest.importorskip("distributed")

from edge_opt.config import SweepConfig
from edge_opt.experiments import run_sweep
from edge_opt.storage import ROWS_FILE, read_rows

SMALL = dict(pruning_levels=[0.0, 0.3, 0.6], precisions=["fp32", "int8"], runtimes=["eager", "onnxruntime"], train_subset=512,
             val_subset=400, epochs=1, benchmark_rounds=2, benchmark_trials=2, benchmark_stream_trials=4)
SAME = ["accuracy", "accuracy_ci_low", "accuracy_ci_high", "model_memory_mb", "activation_memory_mb", "memory_mb", "macs",
        "artifact_bytes", "channels", "parameters", "accepted", "threads", "correct", "predictions_sha256"]


def same_rows(a: pd.DataFrame, b: pd.DataFrame):
    "Equal results; eager INT8's TorchScript archive is the one artifact whose bytes carry the process's history (TorchScript numbers\n    the classes it compiles per process), so its size may differ by a few kB while its predictions do not."
    torchscript = (a.index.get_level_values("runtime") == "eager") & (a.index.get_level_values("precision") == "int8")
    pd.testing.assert_frame_equal(a[~torchscript], b.loc[a.index][~torchscript])
    pd.testing.assert_frame_equal(a[torchscript].drop(columns="artifact_bytes"), b.loc[a.index][torchscript].drop(columns="artifact_bytes"))


def overlaps(rows: pd.DataFrame) -> list:
    "Pairs of distinct timing windows that overlap on the same host."
    windows = rows.dropna(subset=["timing_start"]).drop_duplicates(["host", "timing_start", "timing_end"])
    found = []
    for _, same_host in windows.groupby("host"):
        w = same_host.sort_values("timing_start")[["timing_start", "timing_end"]].to_numpy()
        found += [(a, b) for a, b in zip(w[:-1], w[1:]) if b[0] < a[1]]
    return found


@pytest.fixture(scope="module")
def local_rows(tmp_path_factory):
    return run_sweep(SweepConfig(**SMALL), tmp_path_factory.mktemp("local"), progress=False)


def test_local_cluster_gives_the_local_rows(local_rows, tmp_path):
    "`local:2`: accuracy, memory, MACs, artifacts identical to the in-process run; latency measured; no two timings at once."
    cfg = SweepConfig(**SMALL, executor="dask", scheduler="local:2")
    assert cfg.fingerprint() == SweepConfig(**SMALL).fingerprint()   # where it runs is not part of the result
    rows = run_sweep(cfg, tmp_path, progress=False)
    assert rows.error.isna().all(), rows.error.dropna().tolist()
    key = ["pruning_level", "precision", "runtime"]
    a, b = local_rows.set_index(key)[SAME], rows.set_index(key)[SAME]
    same_rows(a, b)
    measured = rows[rows.unsupported.isna()]
    assert measured.latency_ms.gt(0).all() and measured.stream_latency_ms.gt(0).all()
    assert set(rows.host) == {local_rows.host.iloc[0]} and measured.timing_end.ge(measured.timing_start).all()
    assert overlaps(rows) == []
    assert len(read_rows(next(tmp_path.glob(f"runs/*/{ROWS_FILE}")))) == len(rows)   # the client wrote every row


def test_a_killed_worker_costs_only_its_task(local_rows, tmp_path):
    "A worker killed while it works on a level: the level is rerun elsewhere and the sweep finishes with the same results."
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
         distributed.Client(cluster) as client:
        cfg = SweepConfig(**SMALL, executor="dask", scheduler=cluster.scheduler_address)
        result = {}
        sweep = threading.Thread(target=lambda: result.update(rows=run_sweep(cfg, tmp_path, progress=False)))
        sweep.start()
        pids, killed, deadline = client.run(os.getpid), None, time.time() + 120
        while killed is None and time.time() < deadline:
            busy = [w for w, tasks in client.processing().items() if any(t.startswith("level_task") for t in tasks)]
            if busy: os.kill(pids[busy[0]], signal.SIGKILL); killed = busy[0]
            time.sleep(0.05)
        sweep.join(300)
    assert killed is not None, "no level task was seen running"
    rows = result["rows"]
    assert rows.error.isna().all(), rows.error.dropna().tolist()
    key = ["pruning_level", "precision", "runtime"]
    a, b = local_rows.set_index(key)[SAME], rows.set_index(key)[SAME]
    same_rows(a, b)


TINY = ["--pruning-levels", "0", "--precisions", "fp32", "--runtimes", "eager", "--epochs", "1", "--train-subset", "256",
        "--benchmark-rounds", "1", "--no-progress"]


@pytest.mark.parametrize("args,needle", [
    (["--executor", "spark"], "config key 'executor': 'spark' is not allowed; expected one of local, dask"),
    (["--executor", "dask"], "config key 'scheduler': None is not allowed; executor 'dask' needs local:N"),
    (["--executor", "dask", "--scheduler", "local:0"], "config key 'scheduler': 'local:0' is not allowed; expected local:N"),
    (["--executor", "dask", "--scheduler", "tcp://127.0.0.1:9"], "config key 'scheduler': 'tcp://127.0.0.1:9' is not allowed; no Dask scheduler answered"),
])
def test_bad_executors_end_in_one_line_and_keep_rows(args, needle, tmp_path, cli_error):
    from edge_opt.cli import main
    assert main(["--output-dir", str(tmp_path), *TINY]) == 0
    rows = next(tmp_path.glob(f"runs/*/{ROWS_FILE}"))
    before = rows.read_text()
    main_args = ["--output-dir", str(tmp_path), *TINY, "--pruning-levels", "0", "0.5", *args]
    assert needle in cli_error(main_args)
    assert rows.read_text() == before


def test_dask_not_installed_is_one_line(tmp_path, cli_error):
    with mock.patch("edge_opt.config.dask_available", return_value=False):
        err = cli_error(["--output-dir", str(tmp_path), *TINY, "--executor", "dask", "--scheduler", "local:2"])
    assert "config key 'executor': 'dask' is not allowed; Dask is not installed here (pip install 'edge_opt[distributed]')" in err
