import math

import pytest
import torch

from edge_opt.model import SmallCNN, count_parameters
from edge_opt.pruning import (_topk_indices, channel_l1_scores, prune_and_finetune, prune_channels,
                              random_channel_prune, structured_channel_prune)
from edge_opt.training import evaluate_accuracy


def silenced_reference(model, keep1, keep2):
    "`model` with every channel outside keep1/keep2 zeroed: what the pruned network must compute."
    ref = SmallCNN(model.conv1.out_channels, model.conv2.out_channels)
    ref.load_state_dict(model.state_dict())
    with torch.no_grad():
        for conv, keep in ((ref.conv1, keep1), (ref.conv2, keep2)):
            drop = torch.ones(conv.out_channels, dtype=torch.bool)
            drop[keep] = False
            conv.weight[drop] = 0
            conv.bias[drop] = 0
    return ref.eval()


def test_level_zero_reproduces_logits(trained):
    model, _, val_dl = trained
    x, _ = next(iter(val_dl))
    with torch.no_grad():
        torch.testing.assert_close(structured_channel_prune(model, 0.0)(x), model(x))


@pytest.mark.parametrize("level", [0.25, 0.5, 0.7, 0.95])
def test_pruned_equals_keep_these_channels_reference(trained, level):
    model, _, val_dl = trained
    x, _ = next(iter(val_dl))
    keep1 = _topk_indices(channel_l1_scores(model.conv1.weight), level)
    keep2 = _topk_indices(channel_l1_scores(model.conv2.weight), level)
    pruned = structured_channel_prune(model, level).eval()
    with torch.no_grad():
        torch.testing.assert_close(pruned(x), silenced_reference(model, keep1, keep2)(x), rtol=1e-4, atol=1e-4)
    assert pruned.conv1.out_channels == max(1, round(16 * (1 - level)))
    assert pruned.classifier.in_features == pruned.conv2.out_channels * 49


def test_kept_channels_are_the_highest_l1(trained):
    model = trained[0]
    scores = channel_l1_scores(model.conv2.weight)
    keep = _topk_indices(scores, 0.5)
    dropped = sorted(set(range(32)) - set(keep.tolist()))
    assert scores[keep].min() >= scores[dropped].max()
    assert keep.tolist() == sorted(keep.tolist())


def test_input_model_never_mutated(trained):
    model, train_dl, _ = trained
    before = {k: v.clone() for k, v in model.state_dict().items()}
    structured_channel_prune(model, 0.5)
    random_channel_prune(model, 0.5)
    prune_and_finetune(model, 0.5, train_dl, epochs=1)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_finetune_recovers_accuracy(trained):
    model, train_dl, val_dl = trained
    pruned = structured_channel_prune(model, 0.7)
    tuned = prune_and_finetune(model, 0.7, train_dl, epochs=1)
    assert count_parameters(tuned) == count_parameters(pruned)
    assert evaluate_accuracy(tuned, val_dl) > evaluate_accuracy(pruned, val_dl)


@pytest.mark.parametrize("level", [1.0, 1.5, -0.1, math.nan, "0.5", None, True])
def test_bad_pruning_level(level):
    with pytest.raises(ValueError, match=r"pruning_level must be in \[0.0, 1.0\)") as info:
        structured_channel_prune(SmallCNN(), level)
    assert repr(level) in str(info.value)


def test_prune_needs_smallcnn():
    with pytest.raises(TypeError, match="SmallCNN"):
        prune_channels(torch.nn.Linear(2, 2), [0], [0])
