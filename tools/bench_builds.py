"""Where a sweep's build time goes, and a check of the one shortcut taken in it.

    .venv/bin/python tools/bench_builds.py [--repeats 2]

1. Seconds to build SmallCNN at each precision for each runtime (`edge_opt.runtimes.build_artifact`, the sweep's
   builder), `--repeats` times: the first pass pays each runtime's imports, the later ones are what a level costs.
2. ExecuTorch INT8 (PT2E with the XNNPACK quantizer) with and without the quantizer's conv-BN patterns, which serve QAT
   and which `edge_opt.runtimes.xnnpack_ptq_quantizer` leaves out: on BatchNorm networks (ResNet-18, MobileNetV2) the converted
   graphs must have the same nodes and give identical outputs, and the time each takes is printed (median and range of
   `--repeats` interleaved runs, after a warm-up export).
"""
import argparse
import statistics
import tempfile
import time
import warnings

import torch
import torchvision

from edge_opt.host import cpu_flags, cpu_name
from edge_opt.model import SmallCNN
from edge_opt.runtimes import PRECISIONS, UnsupportedPrecisionError, build_artifact, default_runtimes, xnnpack_ptq_quantizer


def builds(repeats: int):
    net, cal = SmallCNN().eval(), [(torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))) for _ in range(4)]
    for rep in range(repeats):
        for runtime in default_runtimes():   # those installed here
            for precision in PRECISIONS:
                start = time.perf_counter()
                try: build_artifact(net, precision, runtime, cal, tempfile.mkdtemp(), 64); note = ""
                except UnsupportedPrecisionError: note = " (unsupported)"
                print(f"pass {rep + 1}  {runtime:12s} {precision:5s} {time.perf_counter() - start:6.2f} s{note}", flush=True)


def ptq_without_conv_bn_patterns(repeats: int):
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    torch.manual_seed(0)
    for name in ("resnet18", "mobilenet_v2"):
        net = getattr(torchvision.models, name)(num_classes=10).eval()
        for m in net.modules():   # BatchNorm statistics far from the identity, so that folding them matters
            if isinstance(m, torch.nn.BatchNorm2d): m.running_mean.normal_(0, 0.1); m.running_var.uniform_(0.5, 2); m.weight.data.uniform_(0.5, 1.5)
        x, found, seconds = torch.randn(8, 3, 32, 32), {}, {True: [], False: []}
        torch.export.export(net, (x,))   # the first export's warm-up, paid by neither side
        for rep in range(repeats):
            for keep in ((True, False) if rep % 2 == 0 else (False, True)):   # interleaved, each side first in turn
                start = time.perf_counter()
                prepared = prepare_pt2e(torch.export.export(net, (x,)).module(), xnnpack_ptq_quantizer(qat_patterns=keep))
                prepared(x)
                converted = convert_pt2e(prepared)
                seconds[keep].append(time.perf_counter() - start)
                found[keep] = (converted(x), [str(n.target) for n in converted.graph.nodes])
        (a, nodes_a), (b, nodes_b) = found[True], found[False]
        assert nodes_a == nodes_b and torch.equal(a, b), f"{name}: PTQ differs without the conv-BN patterns"
        text = lambda t: f"{statistics.median(t):.2f} s ({min(t):.2f}–{max(t):.2f})"
        print(f"{name}: same graph ({len(nodes_a)} nodes) and identical outputs; {text(seconds[True])} with the conv-BN patterns, "
              f"{text(seconds[False])} without (median and range of {repeats} interleaved runs each)")


if __name__ == "__main__":
    warnings.filterwarnings("ignore")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    print(f"CPU: {cpu_name()}; flags: {cpu_flags()}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          "builds calibrated on 4 batches of 64, PT2E on a batch of 8 at 32 x 32")
    ptq_without_conv_bn_patterns(args.repeats)
    builds(args.repeats)
