"""The layer-wise search against the uniform grid, on the network and runtime you name.

1. Trains the baseline (kept where the search finds it) and measures, side by side, the unpruned network and the
   uniform level `--match` (pruned, not fine-tuned: latency does not depend on the weights) on the runtime:
   the level's latency as a share of the unpruned network's.
2. Runs `edge-opt search`'s `run_search` with that share as its latency target.
3. Reads the result beside the uniform levels, all timed side by side in one group after the same long fine-tune:
   the latency ratio of the result to each uniform level, and the paired accuracy difference (bootstrap 95 %).
A search found in --output-dir resumes (its seconds count every run of it); --share gives the target an earlier run measured.

    .venv/bin/python tools/bench_search.py --model resnet18 --input-size 32 --epochs 6 --json nbs/tutorials/search_resnet18.json
    .venv/bin/python tools/bench_search.py --model mobilenet_v2 --input-size 32 --epochs 6 --json nbs/tutorials/search_mobilenet_v2.json
"""
import argparse, json, platform, time
from pathlib import Path

import torch

from edge_opt.config import SweepConfig
from edge_opt.experiments import _calibration, evaluate, prepare_baseline
from edge_opt.metrics import cpu_flags, unpack_correct
from edge_opt.pruning import prune_model
from edge_opt.quantization import paired_drop
from edge_opt.recipes import cpu_name
from edge_opt.runtimes import resolve_threads, thread_limit
from edge_opt.search import SearchSettings, Target, _folder, run_search, search_config
from edge_opt.storage import RunLayout, read_rows


def uniform_share(cfg: SweepConfig, settings: SearchSettings, level: float, here: Path) -> tuple[float, str]:
    "The measured latency of uniform `level` as a share of the unpruned network's on the runtime (side by side), and the column read."
    model, train_dl, val_dl = prepare_baseline(cfg, here)
    threads, column = resolve_threads(cfg.threads), Target.of("50%", cfg=cfg).latency_column
    with thread_limit(threads):
        calibration = _calibration(train_dl, cfg)
        nets = {"unpruned": model, "uniform": prune_model(model, level, next(iter(val_dl))[0][:1], round_to=cfg.round_to)}
        rows = evaluate(nets, [(settings.precision, settings.runtime)], cfg, calibration, val_dl, threads)
    lat = {n: rows[n, settings.precision, settings.runtime][column] for n in nets}
    return lat["uniform"] / lat["unpruned"], column


def compare(result, level: float, column: str) -> dict:
    "The result against one uniform level timed beside it: latency ratio and the paired accuracy difference."
    grid = {p.rsplit("uniform-", 1)[1]: r for p, r in result.grid.items() if "uniform-" in p}
    u, f = grid[f"{level:g}"], result.result
    diff = paired_drop(unpack_correct(f["correct"]), unpack_correct(u["correct"]))   # points the result gets right that the level misses
    return dict(level=level, uniform_ms=u[column], result_ms=f[column], speedup=u[column] / f[column],
                uniform_accuracy=u["accuracy"], result_accuracy=f["accuracy"], accuracy_gain_points=diff[0], gain_low=diff[1], gain_high=diff[2],
                uniform_channels=u["channels"], result_channels=f["channels"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--input-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--runtime", default="onnxruntime")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--match", type=float, default=0.5, help="the uniform level whose measured latency is the target")
    ap.add_argument("--share", type=float, default=None, help="the target as a share, as an earlier run measured it for --match (a search resumed against the same target)")
    ap.add_argument("--step", type=float, default=SearchSettings.step)
    ap.add_argument("--finetune-batches", type=int, default=10)
    ap.add_argument("--output-dir", default="/tmp/bench_search")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    cfg = search_config(SweepConfig(model=a.model, input_size=a.input_size, epochs=a.epochs, output_dir=a.output_dir))
    settings = SearchSettings(a.runtime, a.precision, a.step, a.finetune_batches, uniform_levels=(0.25, 0.5))
    out = RunLayout(a.output_dir)
    with out.lock(): here = _folder(out, cfg, settings, Target.of("50%", cfg=cfg))   # made as the search makes it
    earlier = len(read_rows(here.steps))   # steps an earlier run of this search finished (it resumes from them)
    start = time.perf_counter()
    share, column = (a.share, Target.of("50%", cfg=cfg).latency_column) if a.share else uniform_share(cfg, settings, a.match, here)
    prep = time.perf_counter() - start
    result = run_search(cfg, settings, Target.of(f"{100 * share:.2f}%", cfg=cfg), a.output_dir)
    print(result.text())
    out = dict(command=" ".join(["tools/bench_search.py", *[f"--{k.replace('_', '-')} {v}" for k, v in vars(a).items() if k not in ("json", "output_dir") and v is not None]]),
               model=a.model, input_size=a.input_size, runtime=a.runtime, precision=a.precision, threads=resolve_threads(cfg.threads),
               cpu=cpu_name(), cpu_flags=cpu_flags(),
               latency_column=column, match=a.match, target_share=share, target_ms=result.target.latency_ms, met=result.met, steps=result.steps, resumed_after_steps=earlier,
               seconds=dict(result.spent, share_measurement=prep, total=time.perf_counter() - start),
               result_plan=result.result["plan"], result_channels=result.result["channels"],
               against=[compare(result, l, column) for l in (0.25, 0.5)], python=platform.python_version(), torch=torch.__version__)
    print(json.dumps(out, indent=1))
    if a.json: Path(a.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
