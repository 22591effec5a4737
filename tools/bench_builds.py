"""Where a sweep's build time goes, and a check of the one shortcut taken in it.

    .venv/bin/python tools/bench_builds.py [--repeats 2]

1. Seconds to build SmallCNN at each precision for each runtime (`edge_opt.runtimes.build_artifact`, the sweep's
   builder), `--repeats` times: the first pass pays each runtime's imports, the later ones are what a level costs.
2. ExecuTorch INT8 (PT2E with the XNNPACK quantizer) with and without the quantizer's conv-BN patterns, which serve QAT
   and which `edge_opt.runtimes._pt2e_int8` leaves out: on BatchNorm networks (ResNet-18, MobileNetV2) the converted
   graphs must have the same nodes and give identical outputs, and the time each takes is printed.
"""
import argparse
import tempfile
import time
import warnings

import torch
import torchvision

from edge_opt.host import cpu_flags
from edge_opt.model import SmallCNN
from edge_opt.runtimes import PRECISIONS, UnsupportedPrecisionError, build_artifact, default_runtimes


def builds(repeats: int):
    net, cal = SmallCNN().eval(), [(torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))) for _ in range(4)]
    for rep in range(repeats):
        for runtime in default_runtimes():   # those installed here
            for precision in PRECISIONS:
                start = time.perf_counter()
                try: build_artifact(net, precision, runtime, cal, tempfile.mkdtemp(), 64); note = ""
                except UnsupportedPrecisionError: note = " (unsupported)"
                print(f"pass {rep + 1}  {runtime:12s} {precision:5s} {time.perf_counter() - start:6.2f} s{note}", flush=True)


def ptq_without_conv_bn_patterns():
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer, get_symmetric_quantization_config
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    torch.manual_seed(0)
    for name in ("resnet18", "mobilenet_v2"):
        net = getattr(torchvision.models, name)(num_classes=10).eval()
        for m in net.modules():   # BatchNorm statistics far from the identity, so that folding them matters
            if isinstance(m, torch.nn.BatchNorm2d): m.running_mean.normal_(0, 0.1); m.running_var.uniform_(0.5, 2); m.weight.data.uniform_(0.5, 1.5)
        x, found = torch.randn(8, 3, 32, 32), []
        for drop in (False, True):
            q = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
            if drop: q.SUPPORTED_PATTERNS = [p for p in q.SUPPORTED_PATTERNS if not (p.is_qat and "_bn" in p.name)]
            start = time.perf_counter()
            prepared = prepare_pt2e(torch.export.export(net, (x,)).module(), q)
            prepared(x)
            converted = convert_pt2e(prepared)
            found.append((converted(x), [str(n.target) for n in converted.graph.nodes], time.perf_counter() - start))
        (a, nodes_a, s_a), (b, nodes_b, s_b) = found
        assert nodes_a == nodes_b and torch.equal(a, b), f"{name}: PTQ differs without the conv-BN patterns"
        print(f"{name}: same graph ({len(nodes_a)} nodes) and identical outputs; {s_a:.2f} s with the conv-BN patterns, {s_b:.2f} s without")


if __name__ == "__main__":
    warnings.filterwarnings("ignore")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    print(f"CPU flags: {cpu_flags()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    ptq_without_conv_bn_patterns()
    builds(args.repeats)
