"Cross-module behaviour of the sweep: consistency of the default run across runtimes, failures, resume, Pareto."
import json

import pandas as pd
import pytest

import edge_opt.runtimes as runtimes
from edge_opt.config import SweepConfig
from edge_opt.experiments import cached_sweep, run_sweep
from edge_opt.analysis import pareto_frontier
from edge_opt.storage import RunLayout, read_rows
from edge_opt.analysis import measured_rows
from edge_opt.reporting import write_reports

FAST = dict(benchmark_rounds=2, benchmark_trials=2, benchmark_stream_trials=5)


@pytest.fixture(scope="module")
def default_sweep(tmp_path_factory):
    "The default configuration, shared with the docs pages through the cache (computed once per code version)."
    cfg = SweepConfig()
    df, _ = cached_sweep(cfg)
    return cfg, df, tmp_path_factory.mktemp("reports")


def test_default_sweep_is_consistent(default_sweep):
    cfg, df, _ = default_sweep
    assert len(df) == 4 * 3 * len(cfg.runtimes) and df.error.isna().all()
    ok = measured_rows(df)
    assert set(df[df.unsupported.notna()].precision) == {"fp16"}   # ORT (and OpenVINO without FP16 kernels) refuse FP16
    for runtime in cfg.runtimes:
        memory = ok[ok.runtime == runtime].set_index(["pruning_level", "precision"]).memory_mb
        for level in cfg.pruning_levels:
            assert memory[(level, "int8")] < memory[(level, "fp32")]
        for precision in set(memory.index.get_level_values("precision")):
            assert memory.xs(precision, level="precision").is_monotonic_decreasing
    pd.testing.assert_series_equal(ok.energy_proxy_j, cfg.power_watts * ok.latency_ms / 1e3, check_names=False)
    limit = 0.3 * ok.baseline_memory_mb.iloc[0]   # memory_limit: 30% of the FP32 unpruned network's memory
    assert cfg.memory_limit == "30%" and (ok.accepted == (ok.memory_mb <= limit)).all()
    budgets = sorted(float(c.removeprefix("violates_").removesuffix("mb")) for c in ok.columns if c.startswith("violates_"))
    assert budgets == [float(f"{limit * k:.3g}") for k in (0.5, 1, 2)]   # the violation report: half, once and twice the limit
    assert all((ok[f"violates_{b:g}mb"] == (ok.memory_mb > b)).all() for b in budgets)
    assert (ok.latency_low_ms <= ok.latency_ms).all() and (ok.latency_ms <= ok.latency_high_ms).all()
    assert (ok.threads == ok.threads.iloc[0]).all()


def test_accuracy_targets_per_runtime(default_sweep):
    "FP32 on every runtime within 0.2 points of eager; INT8 within 1.5 points of the same runtime's FP32."
    _, df, _ = default_sweep
    acc = measured_rows(df).pivot_table(index=["pruning_level", "runtime"], columns="precision", values="accuracy")
    eager = acc.xs("eager", level="runtime").fp32
    assert ((acc.fp32 - eager.reindex(acc.index, level="pruning_level")).abs() <= 0.002).all()
    assert ((acc.int8 - acc.fp32).abs() <= 0.015).all()
    assert acc.loc[(0.0, "eager"), "fp32"] >= 0.93


def test_artifacts_shrink_with_pruning_and_int8(default_sweep):
    _, df, _ = default_sweep
    art = measured_rows(df).set_index(["runtime", "pruning_level", "precision"]).artifact_bytes
    assert (art > 0).all()
    for runtime in art.index.get_level_values(0).unique():
        by = art.loc[runtime]
        assert by.loc[(0.7, "fp32")] < by.loc[(0.0, "fp32")] and by.loc[(0.7, "int8")] < by.loc[(0.0, "int8")]
        assert by.loc[(0.0, "int8")] < by.loc[(0.0, "fp32")]


def test_pareto_rows_are_not_dominated(default_sweep):
    _, df, _ = default_sweep
    ok = measured_rows(df)
    for cost in ("latency_ms", "energy_proxy_j", "memory_mb"):
        front = pareto_frontier(df, cost)
        accepted = ok[ok.accepted]
        assert len(front) >= 1 and front.accepted.all()
        for r in front.itertuples():
            better = accepted[(accepted[cost] <= getattr(r, cost)) & (accepted.accuracy > r.accuracy)]
            assert better.empty


def test_reports_of_default_sweep(default_sweep):
    cfg, df, out = default_sweep
    paths = write_reports(df, cfg, out)
    expected = {"sweep_results.csv", "precision_tradeoffs.csv", "fastest_runtime.csv", "pareto_frontier_latency.csv",
                "pareto_frontier_energy.csv", "layerwise_breakdown.csv", "hardware_summary.csv",
                "summary.json", "reproducibility.json", "latency_by_runtime.png"}
    assert expected <= set(paths)
    assert len(pd.read_csv(paths["sweep_results.csv"])) == len(df)
    trade = pd.read_csv(paths["precision_tradeoffs.csv"])
    assert list(trade.columns[:3]) == ["runtime", "precision", "accuracy_mean"]
    assert set(trade.runtime) == set(cfg.runtimes)
    summary = json.loads(paths["summary.json"].read_text())
    ok = measured_rows(df)
    assert summary["rows"] == len(df) and summary["measured"] == len(ok)
    fastest = ok[ok.accepted].sort_values("latency_ms").iloc[0]
    assert (summary["fastest_accepted"]["runtime"], summary["fastest_accepted"]["latency_ms"]) == (fastest.runtime, fastest.latency_ms)
    repro = json.loads(paths["reproducibility.json"].read_text())
    assert repro["packages"]["torch"] and repro["packages"]["executorch"] and repro["packages"]["onnxruntime"]
    assert repro["seeds"] == [0] and repro["config"]["runtimes"] == list(cfg.runtimes)
    assert repro["int8_backend"] in ("x86", "fbgemm", "qnnpack") and "torch_capability" in repro["cpu_features"]


SMALL = dict(pruning_levels=[0.0, 0.5], precisions=["fp32", "int8"], runtimes=["eager", "onnxruntime"],
             train_subset=512, epochs=1, **FAST)


def test_failing_conversion_becomes_error_row_and_is_retried(tmp_path, monkeypatch):
    real = runtimes.BUILDERS["onnxruntime"]

    def broken(model, precision, *args, **kwargs):
        if precision == "int8" and model.conv1.out_channels == 8:
            raise RuntimeError("quantizer crashed")
        return real(model, precision, *args, **kwargs)

    monkeypatch.setitem(runtimes.BUILDERS, "onnxruntime", broken)
    cfg = SweepConfig(**SMALL, build_workers=1)   # builds in this process, where the patch is
    df = run_sweep(cfg, tmp_path, progress=False)
    assert len(df) == 8
    failed = df[df.error.notna()]
    assert failed[["pruning_level", "precision", "runtime"]].values.tolist() == [[0.5, "int8", "onnxruntime"]]
    assert "quantizer crashed" in failed.error.iloc[0] and not failed.accepted.iloc[0]
    assert df.accuracy.notna().sum() == 7
    paths = write_reports(df, cfg, tmp_path)   # reports still work with an error row
    assert json.loads(paths["summary.json"].read_text())["errors"] == 1

    monkeypatch.setitem(runtimes.BUILDERS, "onnxruntime", real)   # a rerun retries only the failure
    again = run_sweep(cfg, tmp_path, progress=False)
    assert again.error.isna().all()
    keep = df.error.isna()
    assert again[keep].latency_ms.tolist() == df[keep].latency_ms.tolist()


def test_unsupported_combination_is_a_row_not_a_crash(tmp_path):
    cfg = SweepConfig(**{**SMALL, "pruning_levels": [0.0], "precisions": ["fp16"]})
    df = run_sweep(cfg, tmp_path, progress=False)
    ort = df.set_index("runtime").loc["onnxruntime"]
    assert ort.unsupported == runtimes.ORT_FP16_REASON and pd.isna(ort.error) and pd.isna(ort.accuracy) and not ort.accepted
    assert df.set_index("runtime").loc["eager"].accuracy > 0.1   # eager FP16 still measured (above chance): no fallback, no crash
    rows_file = RunLayout(tmp_path).run(cfg.fingerprint()).rows
    assert len(read_rows(rows_file)) == 2
    assert len(run_sweep(cfg, tmp_path, progress=False)) == 2 and len(read_rows(rows_file)) == 2  # not retried


def test_other_settings_never_overwrite_rows(tmp_path):
    "A -> B -> A: each configuration keeps its rows in its own run directory, and returning to A resumes it."
    cfg = SweepConfig(**{**SMALL, "precisions": ["fp32"]})
    a = run_sweep(cfg, tmp_path, progress=False)
    first = read_rows(RunLayout(tmp_path).run(cfg.fingerprint()).rows)
    other = SweepConfig(**{**SMALL, "precisions": ["fp32"], "seed": 1})
    run_sweep(other, tmp_path, progress=False)
    assert read_rows(RunLayout(tmp_path).run(cfg.fingerprint()).rows) == first
    assert {r["seed"] for r in read_rows(RunLayout(tmp_path).run(other.fingerprint()).rows)} == {1}
    again = run_sweep(cfg, tmp_path, progress=False)     # back to A: resumed, nothing measured again
    assert again.latency_ms.tolist() == a.latency_ms.tolist()
    assert read_rows(RunLayout(tmp_path).run(cfg.fingerprint()).rows) == first