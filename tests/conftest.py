import os
import tempfile

import pytest

from edge_opt.cli import main

from edge_opt.training import train_baseline


@pytest.fixture(scope="session")
def trained():
    "The default baseline on mnist-5k: (model, train_loader, val_loader)."
    return train_baseline(seed=0)


@pytest.fixture
def cli_error(capsys):
    "Run `edge-opt ARGS` in process and check it ends in exit 2 and one line `edge-opt: error: ...`; returns that line."
    def run(args):
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("edge-opt: error: "), err
        return err
    return run


def pytest_configure(config):
    "Each test process its own host lock (`edge_opt.executors.host_lock_path`): the suite's timings are not measurements, and would otherwise wait for the builds of the other test processes. An xdist worker that crashes leaves the stacks of all its threads in `$TMPDIR/edge-opt-faulthandler-gwN.log`."
    os.environ["EDGE_OPT_LOCK_DIR"] = tempfile.mkdtemp(prefix="edge-opt-lock-")
    if hasattr(config, "workerinput"):
        import faulthandler
        config._crash_log = open(os.path.join(tempfile.gettempdir(), f"edge-opt-faulthandler-{config.workerinput['workerid']}.log"), "w")
        faulthandler.enable(file=config._crash_log, all_threads=True)


def pytest_unconfigure(config):
    "A pytest-xdist worker ends here without running the native libraries' exit-time destructors (a worker that had run clusters, pools and every runtime crashed in them at exit, and xdist then reports its last test as crashed)."
    if hasattr(config, "workerinput"):
        import sys
        sys.stdout.flush(); sys.stderr.flush()
        os._exit(0)
