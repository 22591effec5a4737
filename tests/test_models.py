"Any CNN: prune_model on torchvision networks and a user's factory, the model choice in the sweep and on the CLI."
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from edge_opt.cli import main
from edge_opt.config import ConfigError, SweepConfig
from edge_opt.experiments import run_sweep
from edge_opt.hardware import estimate_layerwise_stats
from edge_opt.model import SmallCNN, build_model, count_parameters
from edge_opt.pruning import IMPORTANCES, PruningError, prune_model, structured_channel_prune

HERE = Path(__file__).parent
X = torch.randn(1, 1, 28, 28)


def macs(model, shape=(1, 1, 28, 28)):
    return int(estimate_layerwise_stats(model, shape).macs.sum())


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_torchvision_networks_shrink_with_the_level(name):
    model = build_model(name)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    kept = {}
    for level in (0.25, 0.5, 0.75):
        pruned = prune_model(model, level, X, "l2")
        assert pruned(torch.randn(3, 1, 28, 28)).shape == (3, 10)
        kept[level] = (count_parameters(pruned) / count_parameters(model), macs(pruned) / macs(model))
    for level, (params, mac) in kept.items():
        # both ends of most layers shrink: roughly (1 - level)², never more than (1 - level) and not far below the square
        for share in (params, mac):
            assert 0.6 * (1 - level) ** 2 < share < 1.05 * (1 - level), (name, level, share)
    assert kept[0.25] > kept[0.5] > kept[0.75]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())   # the input model is untouched


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_round_to_keeps_widths_multiples(name):
    model = build_model(name)
    pruned = prune_model(model, 0.3, X, "l1", round_to=8)
    widths = [m.out_channels for m in pruned.modules() if isinstance(m, nn.Conv2d)]
    assert widths and all(w % 8 == 0 for w in widths), widths
    assert pruned(X).shape == (1, 10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_l1_is_the_design_documents_pruner_on_smallcnn(seed):
    torch.manual_seed(seed)
    net, x = SmallCNN(), torch.randn(16, 1, 28, 28)
    for level in (0.1, 0.3, 0.5, 0.7, 0.9):
        spec, general = structured_channel_prune(net, level), prune_model(net, level, x[:1], "l1")
        for layer in ("conv1", "conv2"):
            assert torch.equal(getattr(spec, layer).weight, getattr(general, layer).weight)
        assert torch.allclose(spec(x), general(x), atol=1e-6)


def test_every_importance_prunes_a_user_network():
    sys.path.insert(0, str(HERE))
    model = build_model("user_nets:tiny_resnet")
    data = [(torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,)))]
    for importance in IMPORTANCES:
        pruned = prune_model(model, 0.5, X, importance, data=data)
        assert pruned(X).shape == (1, 10) and count_parameters(pruned) < 0.5 * count_parameters(model)


@pytest.mark.parametrize("kwargs,needle", [
    (dict(pruning_level=1.0), "[0.0, 1.0)"),
    (dict(pruning_level=0.5, importance="magnitude"), "expected one of l1, l2, taylor, random"),
    (dict(pruning_level=0.5, round_to=-8), "round_to"),
    (dict(pruning_level=0.5, example_inputs=torch.randn(1, 3, 28, 28)), "do not fit"),
    (dict(pruning_level=0.5, example_inputs=[1, 2]), "example_inputs must be a tensor"),
    (dict(pruning_level=0.995), "would remove all"),
])
def test_bad_pruning_arguments(kwargs, needle):
    kwargs = {"example_inputs": X, **kwargs}
    with pytest.raises(PruningError, match=None) as e:
        prune_model(build_model("resnet18"), **kwargs)
    assert needle in str(e.value)


def test_a_network_torch_pruning_cannot_trace():
    class Opaque(nn.Module):
        def __init__(self):
            super().__init__(); self.conv, self.fc = nn.Conv2d(1, 8, 3), nn.Linear(8, 10)
        def forward(self, x):  # leaves autograd: nothing connects the layers in a traced graph
            y = self.conv(x).mean((2, 3)).detach().numpy()
            return self.fc(torch.from_numpy(y))
    with pytest.raises(PruningError, match="could not trace conv of Opaque"):
        prune_model(Opaque(), 0.5, X)


def test_a_users_factory_runs_a_whole_sweep(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    cfg = SweepConfig(model="user_nets:tiny_resnet", epochs=1, finetune_epochs=1, train_subset=512, val_subset=256,
                      pruning_levels=[0.0, 0.5], precisions=["fp32", "int8"], runtimes=["eager", "onnxruntime"],
                      benchmark_rounds=2, pruning_importance="l2", round_to=4)
    df = run_sweep(cfg, tmp_path, progress=False)
    assert df.error.isna().all(), df.error.dropna().tolist()
    assert set(df.model) == {"user_nets:tiny_resnet"} and len(df) == 8
    level0, level5 = (df[df.pruning_level == l] for l in (0.0, 0.5))
    assert (level0.channels == "unpruned").all() and level5.channels.str.contains(r"\d+/16").all()
    assert level5.parameters.max() < level0.parameters.min() and level5.macs.max() < level0.macs.min()
    assert (df.accuracy > 0).all() and (df.latency_ms > 0).all()


def small_run_error(args, tmp_path, cli_error):
    "The one error line of a one-variant run with `args`."
    return cli_error(["--output-dir", str(tmp_path / "out"), "--no-progress", "--epochs", "1", "--train-subset", "128",
                      "--pruning-levels", "0", "--precisions", "fp32", "--runtimes", "eager", *args])


@pytest.mark.parametrize("args,needle", [
    (["--model", "vgg16"], "config key 'model': 'vgg16' is not allowed; expected one of smallcnn, resnet18, mobilenet_v2 or package.module:factory"),
    (["--model", "no_such_pkg.nets:tiny"], "module 'no_such_pkg.nets' does not import"),
    (["--model", "user_nets:missing"], "'user_nets' has no attribute 'missing'"),
    (["--model", "user_nets:not_a_network"], "returned a dict, not a torch.nn.Module"),
    (["--model", "user_nets:rgb_only"], "does not fit inputs of shape (2, 1, 28, 28) (keys input_channels, input_size)"),
    (["--model", "smallcnn", "--input-size", "30"], "could not be built for 1×30×30 inputs"),
    (["--importance", "l7"], "config key 'pruning_importance': 'l7'"),
    (["--round-to", "0"], "config key 'round_to': 0"),
])
def test_bad_models_end_in_one_line(args, needle, tmp_path, cli_error, monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    assert needle in small_run_error(args, tmp_path, cli_error)


def test_the_input_shape_keys_make_an_rgb_network_fit(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    assert main(["--output-dir", str(tmp_path), "--no-progress", "--epochs", "1", "--train-subset", "128", "--model", "user_nets:rgb_only",
                 "--input-channels", "3", "--input-size", "32", "--pruning-levels", "0", "0.5", "--precisions", "fp32",
                 "--runtimes", "eager", "--benchmark-rounds", "1"]) == 0


def test_factory_from_the_shell(tmp_path):
    "The console script finds a factory on PYTHONPATH and reports a bad one in one line."
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    res = subprocess.run([str(Path(sys.executable).with_name("edge-opt")), "--model", "user_nets:not_a_network",
                          "--output-dir", str(tmp_path)], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == [
        "edge-opt: error: config key 'model': 'user_nets:not_a_network' returned a dict, not a torch.nn.Module"]


def test_pretrained_weights_load_or_say_why_in_one_line(tmp_path, cli_error, monkeypatch):
    "With internet the ImageNet weights load; without, one line names the key and the way out."
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))   # no cached weights
    try:
        net = build_model("resnet18", pretrained=True)
    except ValueError as e:
        assert "config key 'pretrained'" in str(e) and "set pretrained: false" in str(e)
        err = small_run_error(["--model", "resnet18", "--pretrained"], tmp_path, cli_error)
        assert "config key 'pretrained'" in err
    else:
        assert net(X).shape == (1, 10)
