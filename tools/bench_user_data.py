"""Issue 18's targets: decoding a folder of 10,000 32×32 PNG files, and peak memory while streaming two folders, one 5× the other.

    python tools/bench_user_data.py [--workdir DIR]

Each measurement runs in a fresh process (`python -c`), so the page cache is warm but nothing else is shared;
RSS is the process's peak (`ru_maxrss`) after loading and one pass over both loaders.
"""
import argparse, json, subprocess, sys, tempfile, time
from pathlib import Path

import numpy as np
from PIL import Image

from edge_opt.data import _mnist5k_raw

CHILD = """
import json, resource, sys, time
t = time.perf_counter()
from edge_opt.data import load_data
import torchvision.transforms.v2   # imports apart: a sweep has them loaded already
imported = time.perf_counter() - t; t = time.perf_counter()
data = load_data(sys.argv[1], memory_mb=float(sys.argv[2]), num_workers=int(sys.argv[3]))
loaded = time.perf_counter() - t
n = 0
for dl in data.loaders(batch_size=256):
    for x, y in dl: n += len(y)
print(json.dumps(dict(import_s=imported, load_s=loaded, pass_s=time.perf_counter() - t - loaded, images=n, in_memory=data.in_memory,
                      peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      children_peak_rss_mb=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)))
"""

def write(root: Path, n: int):
    x, y = _mnist5k_raw()
    for i in range(n):
        j = i % len(y)
        d = root / str(y[j]); d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[j].reshape(28, 28)).resize((32, 32), Image.BILINEAR).convert("RGB").save(d / f"{i:06d}.png")
    return root

def child(dataset, memory_mb, workers):
    out = subprocess.run([sys.executable, "-c", CHILD, dataset, str(memory_mb), str(workers)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])

if __name__ == "__main__":
    p = argparse.ArgumentParser(); p.add_argument("--workdir", default=None); p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp())
    for n in (10_000, 50_000):
        if not (work / f"png{n}").exists(): write(work / f"png{n}", n)
    loads = [child(f"folder:{work / 'png10000'}", 2048, 0) for _ in range(args.repeats)]
    print("10,000 PNG files, in memory: list, check, decode and normalise", [f"{r['load_s']:.2f} s" for r in loads],
          f"median {np.median([r['load_s'] for r in loads]):.2f} s; imports before it (torch, torchvision) {np.median([r['import_s'] for r in loads]):.2f} s")
    for n in (10_000, 50_000):
        r = child(f"folder:{work / f'png{n}'}", 0, 2)
        print(f"{n:,} PNG files, streamed (2 workers): load {r['load_s']:.1f} s, one pass {r['pass_s']:.1f} s, "
              f"peak RSS {r['peak_rss_mb']:.0f} MB (largest worker {r['children_peak_rss_mb']:.0f} MB), images {r['images']:,}")
