"""Your network on your images: folder, npz and factory data, given weights, the fingerprint of what can change in place, bad input."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torchvision import datasets, transforms

from edge_opt.cli import main
from edge_opt.config import SweepConfig
from edge_opt.data import _mnist5k_raw, load_data
from edge_opt.metrics import unpack_correct

NET = """import torch
from torch import nn
def build(num_classes=10, in_channels=3, input_size=32):
    return nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(8 * (input_size // 2) ** 2, num_classes))
"""
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)   # the user's own normalisation, not the data's statistics
FAST = ["--runtimes", "eager", "onnxruntime", "--precisions", "fp32", "int8", "--pruning-levels", "0", "0.5",
        "--benchmark-rounds", "1", "--benchmark-trials", "1", "--benchmark-stream-trials", "1", "--benchmark-warmup", "0",
        "--calibration-batches", "2", "--no-progress"]


def write_digits(root: Path, n: int = 600, size: int = 32, splits: bool = True) -> Path:
    "`n` embedded digits of every class as RGB PNG files in class folders (train/ and val/ when `splits`)."
    x, y = _mnist5k_raw()
    for k, i in enumerate(np.linspace(0, len(y) - 1, n).astype(int)):
        split = ("val" if k % 5 == 0 else "train") if splits else ""
        folder = root / split / str(y[i]); folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[i].reshape(28, 28)).resize((size, size), Image.BILINEAR).convert("RGB").save(folder / f"{i:05d}.png")
    return root


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    "A user's folder of digits, network file and checkpoint, trained with torchvision's own ImageFolder pipeline."
    root = tmp_path_factory.mktemp("user")
    write_digits(root / "digits")
    (root / "my_net.py").write_text(NET)
    ns = {}; exec(NET, ns)
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    train = datasets.ImageFolder(root / "digits" / "train", tf)
    torch.manual_seed(0)
    net = ns["build"]()
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    for _ in range(3):
        for xb, yb in torch.utils.data.DataLoader(train, 64, shuffle=True):
            opt.zero_grad(); torch.nn.functional.cross_entropy(net(xb), yb).backward(); opt.step()
    torch.save({"epoch": 3, "model_state_dict": net.eval().state_dict()}, root / "ckpt.pt")
    val = datasets.ImageFolder(root / "digits" / "val", tf)   # an independent evaluation, image for image
    with torch.no_grad():
        correct = torch.cat([net(xb).argmax(1) == yb for xb, yb in torch.utils.data.DataLoader(val, 50)]).numpy()
    return root, correct


def user_args(root: Path, out: Path, *extra):
    return ["--model", f"{root}/my_net.py:build", "--weights", str(root / "ckpt.pt"), "--dataset", f"folder:{root}/digits",
            "--normalize-mean", *map(str, MEAN), "--normalize-std", *map(str, STD), "--output-dir", str(out), *FAST, *extra]


def test_given_checkpoint_is_the_baseline_image_for_image(user, tmp_path, capsys):
    root, correct = user
    assert main(user_args(root, tmp_path / "out")) == 0
    text = " ".join(capsys.readouterr().out.split())   # the report wraps long lines at spaces
    rows = pd.read_csv(tmp_path / "out" / "sweep_results.csv")
    base = rows[(rows.pruning_level == 0) & (rows.precision == "fp32") & (rows.runtime == "eager")].iloc[0]
    rows_file = next((tmp_path / "out" / "runs").glob("*/sweep_rows.jsonl"))
    packed = next(r for r in map(json.loads, rows_file.read_text().splitlines())
                  if r["pruning_level"] == 0 and r["precision"] == "fp32" and r["runtime"] == "eager")["correct"]
    assert np.array_equal(unpack_correct(packed).astype(bool), correct)   # the same images right and wrong
    assert base.accuracy == pytest.approx(correct.mean())
    assert f"accuracy {correct.mean():.4f}" in text and "as they are (not retrained)" in text
    record = json.loads((tmp_path / "out" / "reproducibility.json").read_text())
    assert record["data"]["classes"] == [str(d) for d in range(10)] and record["data"]["normalize_mean"] == list(MEAN)
    assert record["data"]["class_counts"]["3"] == [43, 12] and record["inputs"]["weights"]   # 48 training images, 5 of them held out
    assert record["data"]["holdout_images"] + record["data"]["train_images"] == 480 and record["data"]["holdout_images"] > 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["data"]["val_images"] == 120 and "given weights" in summary["baseline_line"]


def test_explicit_epochs_train_given_weights_further_and_say_so(user, tmp_path, capsys):
    root, _ = user
    assert main(user_args(root, tmp_path / "out", "--epochs", "1", "--pruning-levels", "0", "--runtimes", "eager",
                          "--precisions", "fp32")) == 0
    captured = capsys.readouterr()
    assert "training the given weights" in captured.err and "trained 1 more epoch(s)" in " ".join(captured.out.split())


def test_fingerprint_follows_the_content_of_data_model_and_weights(user, tmp_path):
    root, _ = user
    work = tmp_path / "copy"
    (work / "digits" / "train" / "0").mkdir(parents=True)
    for p in (root / "digits" / "train" / "0").glob("*.png"): (work / "digits" / "train" / "0" / p.name).write_bytes(p.read_bytes())
    (work / "digits" / "val" / "0").mkdir(parents=True)
    (work / "digits" / "val" / "0" / "a.png").write_bytes(next((root / "digits" / "val" / "0").glob("*.png")).read_bytes())
    (work / "my_net.py").write_text(NET)
    (work / "ckpt.pt").write_bytes((root / "ckpt.pt").read_bytes())
    cfg = SweepConfig(dataset=f"folder:{work}/digits", model=f"{work}/my_net.py:build", weights=str(work / "ckpt.pt"))
    prints = [cfg.fingerprint()]
    image = next((work / "digits" / "train" / "0").glob("*.png"))
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9)); prints.append(cfg.fingerprint())   # a file touched
    (work / "my_net.py").write_text(NET + "\n# edited\n"); prints.append(cfg.fingerprint())                                 # the model's source
    state = torch.load(work / "ckpt.pt", weights_only=True); state["epoch"] = 4
    torch.save(state, work / "ckpt.pt"); prints.append(cfg.fingerprint())                                                   # the weights
    assert len(set(prints)) == 4
    assert SweepConfig(dataset=f"folder:{work}/digits", model=f"{work}/my_net.py:build", weights=str(work / "ckpt.pt")).fingerprint() == prints[-1]
    x, y = _mnist5k_raw()
    arrays = dict(x_train=x[::10], y_train=y[::10], x_val=x[5::50], y_val=y[5::50])
    np.savez(work / "a.npz", **arrays); first = SweepConfig(dataset=f"npz:{work}/a.npz").fingerprint()
    arrays["x_val"] = arrays["x_val"].copy(); arrays["x_val"][0, 0] = 255
    np.savez(work / "a.npz", **arrays); assert SweepConfig(dataset=f"npz:{work}/a.npz").fingerprint() != first   # one pixel


def test_npz_and_factory_sources_run_a_sweep(tmp_path, capsys):
    x, y = _mnist5k_raw()
    order = np.random.default_rng(0).permutation(len(y))
    tr, va = order[:800], order[800:1000]
    np.savez(tmp_path / "d.npz", x_train=x[tr].reshape(-1, 28, 28, 1), y_train=y[tr], x_val=x[va].reshape(-1, 1, 28, 28),
             y_val=y[va], classes=np.array([f"digit {d}" for d in range(10)]))
    (tmp_path / "my_data.py").write_text(
        "import numpy as np, torch\nfrom torch.utils.data import TensorDataset\n"
        f"def digits():\n    z = np.load({str(tmp_path / 'd.npz')!r})\n"
        "    return (TensorDataset(torch.from_numpy(z['x_train']).permute(0, 3, 1, 2), torch.from_numpy(z['y_train'])),\n"
        "            TensorDataset(torch.from_numpy(z['x_val']), torch.from_numpy(z['y_val'])))\n")
    for dataset in (f"npz:{tmp_path / 'd.npz'}", f"{tmp_path / 'my_data.py'}:digits"):
        out = tmp_path / dataset.split(":")[0][-6:]
        assert main(["--dataset", dataset, "--epochs", "1", "--output-dir", str(out), *FAST]) == 0
        assert "200 validation images of 1×28×28" in " ".join(capsys.readouterr().out.split())   # wrapped at spaces
    a = load_data(f"npz:{tmp_path / 'd.npz'}"); b = load_data(f"{tmp_path / 'my_data.py'}:digits")
    assert a.classes[0] == "digit 0" and torch.equal(a.val.tensors[0], b.val.tensors[0])


STREAMED_RUNNER = """
import sys, torch
from edge_opt.data import load_data
kept = load_data(f"folder:{sys.argv[1]}", input_channels=1, input_size=28)
streamed = load_data(f"folder:{sys.argv[1]}", input_channels=1, input_size=28, memory_mb=0, num_workers=2)
assert kept.in_memory and not streamed.in_memory and streamed.mean == kept.mean and streamed.std == kept.std
xs, ys = zip(*streamed.loaders(batch_size=32, seed=0)[1])
assert torch.allclose(torch.cat(xs), kept.val.tensors[0], atol=1e-6) and torch.equal(torch.cat(ys), kept.val.tensors[1])
print("same")
"""


def test_streamed_data_equals_data_in_memory(tmp_path):
    "In a fresh process, as a user's is: DataLoader workers forked from a test process that ran clusters and pools before share its past."
    write_digits(tmp_path / "d", n=200, splits=False)
    run = subprocess.run([sys.executable, "-c", STREAMED_RUNNER, str(tmp_path / "d")], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip() == "same", run.stderr[-3000:]


# Run in a fresh process, as a user's command line is: one process for all the cases (each in-process `main`, its stderr
# kept), so that a test process which ran Dask clusters and build pools before cannot make the outcome depend on its past.
BAD_INPUT_RUNNER = """
import contextlib, hashlib, io, json, pathlib, sys
from edge_opt.cli import main
for args in json.loads(sys.argv[1]):   # the first: a good run that measures rows; then the bad ones
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()): rc = main(args)
    rows = b"".join(sorted(p.read_bytes() for p in pathlib.Path(sys.argv[2]).rglob("sweep_rows.jsonl")))
    print(json.dumps([rc, err.getvalue().strip(), hashlib.sha256(rows).hexdigest()]), flush=True)
"""


def test_bad_user_input_is_one_line_and_keeps_results(user, tmp_path):
    root, _ = user
    out = tmp_path / "out"
    good = user_args(root, out, "--pruning-levels", "0", "--runtimes", "eager", "--precisions", "fp32")
    other = tmp_path / "other.pt"; torch.save({"0.weight": torch.zeros(4, 3, 3, 3)}, other)
    whole = tmp_path / "whole.pt"; torch.save(torch.nn.Linear(2, 2), whole)
    text = tmp_path / "notes.pt"; text.write_text("not a checkpoint")
    broken = tmp_path / "broken"; write_digits(broken, n=50, splits=False); (broken / "3" / "bad.png").write_bytes(b"\x89PNG broken")
    (tmp_path / "bad_data.py").write_text("def one():\n    return 'nope'\n")
    base = user_args(root, out)
    def with_(flag, *values):
        i = base.index(flag); n = 3 if flag.startswith("--normalize") else 1
        return base[:i + 1] + list(values) + base[i + 1 + n:]
    cases = [
        (with_("--dataset", f"folder:{tmp_path}/nowhere"), "does not exist"),
        (with_("--dataset", f"folder:{broken}"), "bad.png"),
        (with_("--weights", str(other)), "'0.weight' has shape (4, 3, 3, 3) in the weights and (8, 3, 3, 3) in the network"),
        (with_("--weights", str(whole)), "torch.save(model.state_dict(), PATH)"),
        (with_("--weights", str(text)), "not a PyTorch checkpoint"),
        (with_("--weights", str(tmp_path / "missing.pt")), "does not exist"),
        (with_("--normalize-std", "0.25", "0", "0.25"), "above 0"),
        (with_("--normalize-mean", "0.5", "0.5"), "3 channel(s)"),
        (with_("--dataset", f"{tmp_path / 'bad_data.py'}:one"), "expected (train_dataset, val_dataset)"),
    ]
    run = subprocess.run([sys.executable, "-c", BAD_INPUT_RUNNER, json.dumps([good] + [args for args, _ in cases]), str(out)], capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    (first, _, measured), *results = [json.loads(line) for line in run.stdout.strip().splitlines()]
    assert first == 0 and len(results) == len(cases)
    for (args, needle), (rc, err, rows_now) in zip(cases, results):
        assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("edge-opt: error: ") and needle in err, (args, needle, rc, err)
        assert rows_now == measured, args   # the rows file is exactly as the good run left it
    rows = [json.loads(line) for p in out.rglob("sweep_rows.jsonl") for line in p.read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["accuracy"] > 0   # the good run's row, still there: nothing measured was lost
