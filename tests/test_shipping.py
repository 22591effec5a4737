"""Artifacts as files: the store and its reuse, the recommended variant shipped, `edge-opt export`, verification, bad input."""
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from edge_opt import shipping
from edge_opt.cli import main
from edge_opt.config import SweepConfig
from edge_opt.experiments import run_sweep
from edge_opt.storage import read_rows

FAST = ["--benchmark-rounds", "1", "--benchmark-trials", "1", "--benchmark-stream-trials", "1", "--benchmark-warmup", "0",
        "--calibration-batches", "2", "--train-subset", "512", "--epochs", "1", "--no-progress"]
GRID = ["--runtimes", "eager", "onnxruntime", "--precisions", "fp32", "fp16", "int8", "--pruning-levels", "0", "0.5",
        "--max-accuracy-drop", "null", "--keep-artifacts", "all"]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("ship") / "out"
    assert main(["--output-dir", str(out), *GRID, *FAST]) == 0
    return out


def rows_of(out: Path) -> list[dict]:
    return read_rows(next((out / "runs").glob("*/sweep_rows.jsonl")))


def test_every_artifact_is_a_file_with_its_hash(sweep):
    rows = [r for r in rows_of(sweep) if r.get("predictions_sha256")]
    assert len(rows) == 10   # 12 pairs, ONNX Runtime FP16 unsupported at both levels
    for r in rows:
        folder = next((sweep / "runs").glob("*/artifacts")) / r["artifact_dir"]
        files = r["artifact_files"].split()
        assert [sha(folder / f) for f in files] == r["artifact_sha256"].split()
        assert r["artifact_bytes"] == sum((folder / f).stat().st_size for f in files)
        assert {"eager": {".pt2", ".pt"}, "onnxruntime": {".onnx"}}[r["runtime"]] & {Path(f).suffix for f in files}


def test_recommended_is_shipped_with_a_verified_manifest(sweep):
    rec = json.loads((sweep / "recommendation.json").read_text())
    manifest = json.loads((sweep / "recommended" / "manifest.json").read_text())
    assert manifest["variant"] == {k: rec[k] for k in ("pruning_level", "precision", "runtime")}
    for name, digest in manifest["files"].items():
        assert sha(sweep / "recommended" / name) == digest
    assert manifest["verified"]["matches_sweep"] and manifest["verified"]["images"] == 1000
    assert manifest["preprocessing"]["channels"] == 1 and len(manifest["preprocessing"]["mean"]) == 1
    assert manifest["classes"] == [str(d) for d in range(10)] and "predict(" in manifest["load_and_run"]
    assert manifest["measured"]["latency_ms"]["low"] <= manifest["measured"]["latency_ms"]["median"] <= manifest["measured"]["latency_ms"]["high"]


def test_export_any_row_and_rebuild_what_the_store_lost(sweep, tmp_path, capsys):
    to = tmp_path / "int8-onnx"
    assert main(["export", "--from", str(sweep), "--pruning-level", "0.5", "--precision", "int8", "--runtime", "onnxruntime", "--to", str(to)]) == 0
    first = json.loads((to / "manifest.json").read_text())
    row = next(r for r in rows_of(sweep) if (r["pruning_level"], r["precision"], r["runtime"]) == (0.5, "int8", "onnxruntime"))
    assert first["verified"]["predictions_sha256"] == row["predictions_sha256"]
    store = next((sweep / "runs").glob("*/artifacts"))
    (store / row["artifact_dir"] / "model.onnx").write_bytes(b"tampered")       # a changed file is rebuilt, never shipped
    capsys.readouterr()
    assert main(["export", "--from", str(sweep), "--pruning-level", "0.5", "--precision", "int8", "--runtime", "onnxruntime", "--to", str(to)]) == 0
    assert "SHA-256 mismatch" in capsys.readouterr().err
    assert json.loads((to / "manifest.json").read_text())["files"] == first["files"]   # rebuilt bit for bit
    eager = next(r for r in rows_of(sweep) if (r["pruning_level"], r["precision"], r["runtime"]) == (0.5, "fp16", "eager"))
    shutil.rmtree(store / eager["artifact_dir"])                                   # a lost one too
    assert main(["export", "--from", str(sweep), "--pruning-level", "0.5", "--precision", "fp16", "--runtime", "eager", "--to", str(tmp_path / "e")]) == 0
    assert "missing" in capsys.readouterr().err


def test_a_mismatch_is_never_shipped(sweep, tmp_path, monkeypatch):
    monkeypatch.setattr(shipping, "verify_export", lambda *args, **kwargs: "0" * 64)
    with pytest.raises(shipping.ShipError, match="predicts other classes"):
        shipping.export_variant(sweep, 0, "fp32", "eager", tmp_path / "x")
    assert not (tmp_path / "x").exists() and not list(tmp_path.glob(".x.*"))


def test_bad_export_requests(sweep, tmp_path, cli_error):
    base = ["export", "--from", str(sweep), "--precision", "int8", "--runtime", "onnxruntime"]
    assert "did not measure it; nearest measured rows: pruning 0.5 int8 on onnxruntime" in cli_error(base + ["--pruning-level", "0.3"])
    assert "unsupported" in cli_error(["export", "--from", str(sweep), "--pruning-level", "0", "--precision", "fp16", "--runtime", "onnxruntime"])
    (tmp_path / "file").write_text("x")
    assert "is a file" in cli_error(base + ["--pruning-level", "0", "--to", str(tmp_path / "file")])
    assert "no finished sweep" in cli_error(["export", "--from", str(tmp_path), "--pruning-level", "0", "--precision", "int8", "--runtime", "eager"])
    with pytest.raises(SystemExit) as stop:
        main(["export", "--from", str(sweep), "--pruning-level", "0", "--precision", "int4", "--runtime", "eager"])
    assert stop.value.code == 2


def test_a_resumed_level_reuses_its_artifacts(tmp_path):
    cfg = SweepConfig(runtimes=["eager", "onnxruntime"], precisions=["fp32", "int8"], pruning_levels=[0.0, 0.5], train_subset=512, epochs=1,
                      benchmark_rounds=1, benchmark_trials=1, benchmark_stream_trials=1, calibration_batches=2)
    first = run_sweep(cfg, tmp_path, progress=False)
    assert not first.artifact_reused.any()
    rows_file = next(tmp_path.glob("runs/*/sweep_rows.jsonl"))
    kept = [line for line in rows_file.read_text().splitlines() if json.loads(line)["pruning_level"] == 0.0]
    rows_file.write_text("\n".join(kept) + "\n")            # level 0.5 lost its rows, as after a kill; its artifacts stay
    again = run_sweep(cfg, tmp_path, progress=False)
    redone = again[again.pruning_level == 0.5]
    assert redone.artifact_reused.all() and len(redone) == 4
    assert (redone.predictions_sha256.values == first[first.pruning_level == 0.5].predictions_sha256.values).all()


def test_builds_in_worker_processes_give_the_same_artifacts(tmp_path):
    "`build_workers: 2` builds a level's artifacts side by side in fresh processes: the same predictions as building here."
    base = dict(runtimes=["eager", "onnxruntime"], precisions=["fp32", "int8"], pruning_levels=[0.5], train_subset=512, epochs=1,
                benchmark_rounds=1, benchmark_trials=1, benchmark_stream_trials=1, calibration_batches=2)
    here = run_sweep(SweepConfig(**base), tmp_path / "here", progress=False)
    pool = run_sweep(SweepConfig(**base, build_workers=2), tmp_path / "pool", progress=False)
    assert pool.error.isna().all(), pool.error.dropna().tolist()
    assert here.predictions_sha256.tolist() == pool.predictions_sha256.tolist()
    assert here.artifact_dir.tolist() == pool.artifact_dir.tolist()


def test_the_store_keeps_what_keep_artifacts_says(sweep, tmp_path):
    import pandas as pd
    copy = tmp_path / "out"; shutil.copytree(sweep, copy)
    here = next((copy / "runs").glob("*"))
    rows = pd.DataFrame(read_rows(here / "sweep_rows.jsonl"))
    choice = json.loads((copy / "recommendation.json").read_text())
    line = shipping.tidy_store(here, rows, "recommended", choice)
    left = {d.name for d in (here / "artifacts").iterdir()}
    pick = rows[(rows.pruning_level == choice["pruning_level"]) & (rows.precision == choice["precision"]) & (rows.runtime == choice["runtime"])]
    pruned = rows[(rows.pruning_level == choice["pruning_level"]) & (rows.precision == "fp32") & (rows.runtime == "eager")]
    assert left == set(pick.artifact_dir) | set(pruned.artifact_dir)
    assert line.startswith(f"Artifacts: {len(left)} kept") and "removed" in line
