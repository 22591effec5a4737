"""Never delete what edge_opt did not write: exports, output folders, readers of a damaged run, and data that cannot train a classifier."""
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge_opt.cli import main
from edge_opt.data import _mnist5k_raw
from edge_opt.storage import MARKER_FILE, REPORT_FILES, read_marker

FAST = ["--benchmark-rounds", "1", "--benchmark-trials", "1", "--benchmark-stream-trials", "1", "--benchmark-warmup", "0",
        "--calibration-batches", "2", "--train-subset", "512", "--epochs", "1", "--no-progress"]
GRID = ["--runtimes", "eager", "onnxruntime", "--precisions", "fp32", "int8", "--pruning-levels", "0", "--max-accuracy-drop", "null", "--keep-artifacts", "all"]
ROW = ["--pruning-level", "0", "--precision", "fp32", "--runtime", "onnxruntime"]


def hashes(root: Path) -> dict:
    "Every file under `root` (links as their target's path) with its SHA-256: what 'untouched' is checked against."
    return {str(p.relative_to(root)): (os.readlink(p) if p.is_symlink() else hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(root.rglob("*")) if p.is_file() or p.is_symlink()}


def user_files(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "notes.txt").write_text("my notes")
    (root / "sub" / "photo.txt").write_text("a photo")
    return root


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    "A finished sweep in a folder that already held the user's notes."
    out = user_files(tmp_path_factory.mktemp("own") / "out")
    before = hashes(out)
    assert main(["--output-dir", str(out), *GRID, *FAST]) == 0
    after = hashes(out)
    assert {k: after[k] for k in before} == before   # the sweep wrote beside the user's files
    assert read_marker(out)["kind"] == "output" and "notes.txt" not in read_marker(out)["files"]
    assert set(REPORT_FILES) <= set(read_marker(out)["files"])   # the names a sweep writes are the ones storage knows
    return out


def export(out, to=None, *extra):
    return main(["export", "--from", str(out), *ROW, *(["--to", str(to)] if to else []), *extra])


@pytest.mark.parametrize("where", ["user_folder", "run_folder", "current_directory", "link_to_user_folder", "earlier_export_with_user_file"])
def test_export_never_replaces_what_edge_opt_did_not_write(sweep, tmp_path, monkeypatch, capsys, cli_error, where):
    user = user_files(tmp_path / "mine")
    if where == "earlier_export_with_user_file":
        assert export(sweep, tmp_path / "exp") == 0
        (tmp_path / "exp" / "notes.txt").write_text("added by hand")
    to = {"user_folder": user, "run_folder": sweep, "current_directory": Path("."), "link_to_user_folder": tmp_path / "link",
          "earlier_export_with_user_file": tmp_path / "exp"}[where]
    if where == "link_to_user_folder": (tmp_path / "link").symlink_to(user)
    if where == "current_directory": monkeypatch.chdir(user)
    before, run_before = hashes(tmp_path), hashes(sweep)
    capsys.readouterr()
    err = cli_error(["export", "--from", str(sweep.resolve()), *ROW, "--to", str(to)])
    assert f"--to '{to}'" in err and "--to NEW_FOLDER" in err
    assert hashes(tmp_path) == before and hashes(sweep) == run_before   # 0 files removed or changed


def test_export_goes_into_a_new_empty_or_earlier_export_and_swaps_by_renames(sweep, tmp_path):
    (tmp_path / "empty").mkdir()
    assert export(sweep, tmp_path / "empty") == 0
    first = hashes(tmp_path / "empty")
    assert read_marker(tmp_path / "empty") == {**read_marker(tmp_path / "empty"), "kind": "export"}
    assert export(sweep, tmp_path / "empty") == 0           # an earlier export is replaced ...
    assert hashes(tmp_path / "empty") == first              # ... by the same verified files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]   # no staging or old folder left behind
    (tmp_path / "real").mkdir(); (tmp_path / "link").symlink_to(tmp_path / "real")
    assert export(sweep, tmp_path / "link") == 0 and (tmp_path / "link").is_symlink()   # a link stays, its target gets the files
    assert (tmp_path / "real" / "manifest.json").exists()


def test_two_exports_into_one_folder_take_turns(sweep, tmp_path):
    args = ["export", "--from", str(sweep), *ROW, "--to", str(tmp_path / "exp")]
    code = "import sys; from edge_opt.cli import main; sys.exit(main(sys.argv[1:]))"
    procs = [subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=600) + (p.returncode,) for p in procs]
    assert [r[2] for r in results] == [0, 0], results
    manifest = json.loads((tmp_path / "exp" / "manifest.json").read_text())
    for name, digest in manifest["files"].items():   # one whole export, never a mix of two
        assert hashlib.sha256((tmp_path / "exp" / name).read_bytes()).hexdigest() == digest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]


def test_a_sweep_stops_before_any_work_when_its_names_are_taken(tmp_path, cli_error):
    out = user_files(tmp_path / "out")
    (out / "recommended").mkdir(); (out / "recommended" / "mine.txt").write_text("mine")
    before = hashes(out)
    err = cli_error(["--output-dir", str(out), *GRID, *FAST])
    assert "recommended' holds files edge_opt did not write (mine.txt)" in err
    assert hashes(out) == before and not (out / "runs").exists()
    (out / "recommended" / "mine.txt").unlink(); (out / "recommended").rmdir()
    (out / "summary.json").write_text("{}")   # the user's own file of a name a sweep writes
    assert "summary.json' was not written by edge_opt" in cli_error(["--output-dir", str(out), *GRID, *FAST])
    assert (out / "summary.json").read_text() == "{}"


def test_a_legacy_output_folder_is_recognised_and_marked(sweep, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(sweep, old, ignore=shutil.ignore_patterns(MARKER_FILE))   # as written before markers existed
    assert not list(old.rglob(MARKER_FILE))
    assert main(["recommend", "--from", str(old), "--max-accuracy-drop", "null"]) == 0
    assert read_marker(old)["kind"] == "output"
    assert main(["--output-dir", str(old), *GRID, *FAST]) == 0   # the same sweep again: resumed, reports and recommended/ replaced
    assert read_marker(old / "recommended")["kind"] == "recommended"


@pytest.mark.parametrize("damage", ["cut", "empty", "missing"])
@pytest.mark.parametrize("name", ["sweep_results.csv", "summary.json", "latest_run.txt"])
def test_readers_survive_a_damaged_run(sweep, tmp_path, capsys, name, damage):
    out = tmp_path / "copy"
    shutil.copytree(sweep, out)
    code = main(["recommend", "--from", str(out)])
    expected = capsys.readouterr().out
    path = out / name
    if damage == "missing": path.unlink()
    else: path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 3] if damage == "cut" else b"")
    assert main(["recommend", "--from", str(out)]) == code
    captured = capsys.readouterr()
    assert captured.out == expected and "Traceback" not in captured.err
    assert (name == "latest_run.txt") == ("reading the most recently finished run" in captured.err)
    assert export(out, tmp_path / "exp") == 0


def test_a_run_whose_own_files_are_damaged_says_so_in_one_line(sweep, tmp_path, cli_error):
    out = tmp_path / "copy"
    shutil.copytree(sweep, out)
    here = next((out / "runs").glob("*/sweep_rows.jsonl")).parent
    (here / "sweep_rows.jsonl").write_text("")   # the source of truth emptied
    assert "holds no complete row; run the sweep again" in cli_error(["recommend", "--from", str(out)])
    shutil.copyfile(next((sweep / "runs").glob("*/sweep_rows.jsonl")), here / "sweep_rows.jsonl")
    (here / "reproducibility.json").write_text('{"config": ')   # the run's configuration cut short
    assert "is damaged or missing" in cli_error(["export", "--from", str(out), *ROW, "--to", str(tmp_path / "exp")])
    assert not (tmp_path / "exp").exists()


def test_older_output_folders_are_recognised(sweep, tmp_path):
    "Folders of edge_opt's layout written before markers: a sweep cut before its first report, and one whose pointer is lost."
    for case in ("no_reports_yet", "pointer_lost"):
        old = tmp_path / case
        shutil.copytree(sweep, old, ignore=shutil.ignore_patterns(MARKER_FILE))
        if case == "no_reports_yet":
            for p in old.iterdir():
                if p.name not in ("runs", "notes.txt"): shutil.rmtree(p) if p.is_dir() else p.unlink()
            for p in next((old / "runs").glob("*")).iterdir():
                if p.name in ("reproducibility.json", "summary.json"): p.unlink()
            assert main(["--output-dir", str(old), *GRID, *FAST]) == 0   # resumed, not refused
        else:
            (old / "latest_run.txt").unlink()
            assert main(["recommend", "--from", str(old), "--max-accuracy-drop", "null"]) == 0
        assert read_marker(old)["kind"] == "output" and (old / "notes.txt").read_text() == "my notes"


def test_a_multi_seed_folder_names_its_seed_folders(tmp_path, cli_error):
    out = tmp_path / "seeds"
    assert main(["--output-dir", str(out), "--seeds", "1", "2", *GRID[:-4], *FAST]) == 0
    assert read_marker(out)["kind"] == "output" and {"seed_1", "seed_2"} <= set(read_marker(out)["files"])
    err = cli_error(["recommend", "--from", str(out)])
    assert "holds one sweep per seed; name one of them: --from" in err and "(seed_1, seed_2)" in err
    assert "seed_1" in cli_error(["export", "--from", str(out), *ROW])
    assert main(["recommend", "--from", str(out / "seed_1")]) in (0, 3)


@pytest.mark.parametrize("classes", [1, 0])
def test_data_that_cannot_train_a_classifier(tmp_path, cli_error, classes):
    x, y = _mnist5k_raw()
    for split in ("train", "val"):
        for k, i in enumerate(np.flatnonzero(y == 3)[:20]):
            folder = tmp_path / "digits" / split / ("three" if classes or k % 2 else "four"); folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(x[i].reshape(28, 28)).save(folder / f"{i}.png")
    if classes == 0:   # two class folders, but validation holds only one of them
        shutil.rmtree(tmp_path / "digits" / "val" / "four")
    err = cli_error(["--dataset", f"folder:{tmp_path / 'digits'}", "--output-dir", str(tmp_path / "out"), *GRID, *FAST])
    found = "its training images hold 1 class (three)" if classes else "its validation images hold 1 class (three)"
    assert found in err and "at least two classes" in err
