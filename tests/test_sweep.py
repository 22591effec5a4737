"Cross-module behaviour of the sweep: consistency of the default run, failures, resume, Pareto."
import json

import pandas as pd
import pytest

import edge_opt.experiments as experiments
from edge_opt.config import SweepConfig
from edge_opt.experiments import ROWS_FILE, pareto_frontier, read_rows, run_sweep
from edge_opt.reporting import write_reports

FAST = dict(benchmark_trials=3, benchmark_stream_trials=5)


@pytest.fixture(scope="module")
def default_sweep(tmp_path_factory):
    "The default configuration (timing trials cut: they do not change accuracy or memory)."
    cfg = SweepConfig(**FAST)
    out = tmp_path_factory.mktemp("default")
    return cfg, run_sweep(cfg, out, progress=False), out


def test_default_sweep_is_consistent(default_sweep):
    cfg, df, _ = default_sweep
    assert len(df) == 12 and df.error.isna().all()
    memory = df.set_index(["pruning_level", "precision"]).memory_mb
    for level in cfg.pruning_levels:
        assert memory[(level, "int8")] < memory[(level, "fp16")] < memory[(level, "fp32")]
    for precision in cfg.precisions:
        assert memory.xs(precision, level="precision").is_monotonic_decreasing
    pd.testing.assert_series_equal(df.energy_proxy_j, cfg.power_watts * df.latency_ms / 1e3, check_names=False)
    acc = df.set_index(["pruning_level", "precision"]).accuracy
    assert abs(acc[(0.0, "int8")] - acc[(0.0, "fp32")]) <= 0.015
    assert acc[(0.0, "fp32")] >= 0.93
    assert (df.accepted == (df.memory_mb <= cfg.active_budget_mb)).all()
    assert (df["violates_0.05mb"] == (df.memory_mb > 0.05)).all()


def test_pareto_rows_are_not_dominated(default_sweep):
    _, df, _ = default_sweep
    for cost in ("latency_ms", "energy_proxy_j", "memory_mb"):
        front = pareto_frontier(df, cost)
        accepted = df[df.accepted]
        assert len(front) >= 1 and front.accepted.all()
        for r in front.itertuples():
            better = accepted[(accepted[cost] <= getattr(r, cost)) & (accepted.accuracy > r.accuracy)]
            assert better.empty


def test_reports_of_default_sweep(default_sweep):
    cfg, df, out = default_sweep
    paths = write_reports(df, cfg, out)
    expected = {"sweep_results.csv", "precision_tradeoffs.csv", "pareto_frontier_latency.csv",
                "pareto_frontier_energy.csv", "layerwise_breakdown.csv", "hardware_summary.csv",
                "summary.json", "reproducibility.json"}
    assert expected <= set(paths)
    assert len(pd.read_csv(paths["sweep_results.csv"])) == 12
    trade = pd.read_csv(paths["precision_tradeoffs.csv"])
    assert list(trade.columns) == ["precision", "accuracy_mean", "latency_ms_mean", "memory_mb_mean",
                                   "energy_proxy_j_mean", "accepted_ratio"]
    summary = json.loads(paths["summary.json"].read_text())
    assert summary["rows"] == 12 and summary["accepted"] + summary["rejected"] == 12
    assert summary["best_accepted_accuracy"]["accuracy"] == df[df.accepted].accuracy.max()
    repro = json.loads(paths["reproducibility.json"].read_text())
    assert repro["packages"]["torch"] and repro["seeds"] == [0] and repro["config"]["active_budget_mb"] == 0.05


SMALL = dict(pruning_levels=[0.0, 0.5], precisions=["fp32", "int8"], train_subset=512, epochs=1, **FAST)


def test_failing_configuration_becomes_error_row(tmp_path, monkeypatch):
    real = experiments.precision_variant

    def broken(model, precision, *args, **kwargs):
        if precision == "int8" and model.conv1.out_channels == 8:
            raise RuntimeError("no quantized kernels here")
        return real(model, precision, *args, **kwargs)

    monkeypatch.setattr(experiments, "precision_variant", broken)
    cfg = SweepConfig(**SMALL)
    df = run_sweep(cfg, tmp_path, progress=False)
    assert len(df) == 4
    failed = df[df.error.notna()]
    assert failed[["pruning_level", "precision"]].values.tolist() == [[0.5, "int8"]]
    assert "no quantized kernels here" in failed.error.iloc[0] and not failed.accepted.iloc[0]
    assert df.error.isna().sum() == 3 and df.accuracy.notna().sum() == 3
    paths = write_reports(df, cfg, tmp_path)   # reports still work with an error row
    assert json.loads(paths["summary.json"].read_text())["errors"] == 1

    monkeypatch.setattr(experiments, "precision_variant", real)   # a rerun retries only the failure
    again = run_sweep(cfg, tmp_path, progress=False)
    assert again.error.isna().all()
    kept = df[df.error.isna()].latency_ms.tolist()
    assert again[again.precision.ne("int8") | again.pruning_level.eq(0.0)].latency_ms.tolist() == kept


def test_other_settings_never_overwrite_rows(tmp_path):
    cfg = SweepConfig(**{**SMALL, "precisions": ["fp32"]})
    run_sweep(cfg, tmp_path, progress=False)
    first = read_rows(tmp_path / ROWS_FILE)
    other = SweepConfig(**{**SMALL, "precisions": ["fp32"], "seed": 1})
    run_sweep(other, tmp_path, progress=False)
    moved = tmp_path / f"sweep_rows.{cfg.fingerprint()}.jsonl"
    assert read_rows(moved) == first
    assert {r["seed"] for r in read_rows(tmp_path / ROWS_FILE)} == {1}
