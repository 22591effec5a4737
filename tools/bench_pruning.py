"""Benchmark for `prune_model` (issue 8): accuracy against Torch-Pruning's default pipeline and the seed L1
pruner, MAC reduction on ImageNet-shaped torchvision networks, and whether `round_to` changes latency.

1. Accuracy on mnist-5k at equal level and equal fine-tuning (`compare_criteria`): edge_opt's criteria
   (l1, l2, taylor, random) and Torch-Pruning's MetaPruner with group-magnitude importance, with and without
   the same fine-tune, against a fine-tuned unpruned control. SmallCNN (default baseline: 5 epochs) and
   ResNet-18 (torchvision, adapted to 1×28×28 and 10 classes; `--resnet-epochs` of training).
2. MACs at 224×224 of ResNet-18 and MobileNetV2 (random weights) before and after level 0.5, `round_to=8`.
3. Latency of MobileNetV2 at 1×3×224×224 pruned at `--round-level` with and without `round_to=8`, FP32 on
   every installed runtime, timed interleaved in one process (`time_interleaved`, medians of round medians
   and their 5–95 % spread).

    .venv/bin/python tools/bench_pruning.py [--threads 2] [--resnet-epochs 2] [--rounds 15]
"""
import argparse

import pandas as pd
import torch
import torchvision
import torch_pruning as tp

from edge_opt.hardware import estimate_layerwise_stats
from edge_opt.metrics import LatencyStats, cpu_name, time_interleaved
from edge_opt.model import build_model, seed_everything
from edge_opt.data import build_loaders
from edge_opt.pruning import compare_criteria, prune_model, torch_pruning_pipeline
from edge_opt.runtimes import default_runtimes, deploy, thread_limit
from edge_opt.training import train_baseline, train_model


def accuracy_tables(resnet_epochs):
    ref = {"torch-pruning default (MetaPruner, group L2)": torch_pruning_pipeline}
    model, train_dl, val_dl = train_baseline(seed=0)
    yield "SmallCNN (5 epochs)", compare_criteria(model, train_dl, val_dl, [0.5, 0.7], reference=ref)
    seed_everything(0)
    train_dl, val_dl = build_loaders(seed=0)
    net = train_model(build_model("resnet18"), train_dl, resnet_epochs, 1e-3, "cpu", False).eval()
    yield f"ResNet-18 ({resnet_epochs} epochs)", compare_criteria(net, train_dl, val_dl, [0.5, 0.7], random_seeds=1, reference=ref)


def mac_table():
    rows = {}
    for name in ("resnet18", "mobilenet_v2"):
        m, x = getattr(torchvision.models, name)().eval(), torch.randn(1, 3, 224, 224)
        p = prune_model(m, 0.5, x, "l2", round_to=8)
        before, after = (estimate_layerwise_stats(n, (1, 3, 224, 224)).macs.sum() / 1e6 for n in (m, p))
        rows[name] = dict(mmac_before=before, mmac_after=after, reduction=1 - after / before)
    return pd.DataFrame(rows).T


def round_to_latency(level, rounds, threads):
    m, x = torchvision.models.mobilenet_v2().eval(), torch.randn(1, 3, 224, 224)
    variants = {"any width": prune_model(m, level, x, "l2"), "round_to=8": prune_model(m, level, x, "l2", round_to=8)}
    calib = [(x, torch.zeros(1, dtype=torch.long))]
    built = {(name, rt): deploy(v, "fp32", rt, calib, 1, threads) for name, v in variants.items() for rt in default_runtimes()}
    times = time_interleaved({k: d.bind(x) for k, d in built.items()}, rounds, 10, 3)
    rows = []
    for (name, rt), t in times.items():
        s = LatencyStats.from_rounds(1, t)
        macs = estimate_layerwise_stats(variants[name], (1, 3, 224, 224)).macs.sum() / 1e6
        rows.append(dict(runtime=rt, variant=name, mmac=macs, median_ms=s.median_ms, low_ms=s.low_ms, high_ms=s.high_ms))
    return pd.DataFrame(rows).sort_values(["runtime", "variant"])


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--resnet-epochs", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--round-level", type=float, default=0.3)
    args = ap.parse_args()
    pd.set_option("display.width", 200)
    with thread_limit(args.threads):
        print(f"CPU: {cpu_name()}, {args.threads} threads, torch {torch.__version__}, torch-pruning {tp.__version__}\n")
        for name, table in accuracy_tables(args.resnet_epochs):
            print(f"== accuracy on mnist-5k validation: {name}, 1 epoch of fine-tuning for every pruned network ==")
            print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"), "\n", flush=True)
        print("== MACs at 1x3x224x224, level 0.5, round_to=8, l2 ==")
        print(mac_table().to_string(float_format=lambda v: f"{v:.3f}"), "\n", flush=True)
        print(f"== MobileNetV2 1x3x224x224 FP32, level {args.round_level}: latency (ms, median of {args.rounds} round medians, 5-95%) ==")
        print(round_to_latency(args.round_level, args.rounds, args.threads).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
