import pytest
import torch

from edge_opt.quantization import (PRECISIONS, QuantizationError, is_int8, model_storage_bytes, precision_variant,
                                   quantization_params_table, quantized_layers, to_fp16, to_int8)
from edge_opt.pruning import structured_channel_prune
from edge_opt.training import evaluate_accuracy, predict


@pytest.fixture(scope="module")
def int8(trained):
    model, train_dl, _ = trained
    return to_int8(model, train_dl, calibration_batches=10)


def test_int8_holds_quantized_modules(int8):
    assert set(quantized_layers(int8)) == {"classifier", "conv1", "conv2"}
    assert is_int8(int8)
    assert all(m.weight().dtype == torch.qint8 for m in quantized_layers(int8).values())


def test_int8_agrees_with_fp32(trained, int8):
    model, _, val_dl = trained
    fp32, targets = predict(model, val_dl)
    q, _ = predict(int8, val_dl)
    assert (q == fp32).float().mean().item() >= 0.98
    assert abs(evaluate_accuracy(int8, val_dl) - evaluate_accuracy(model, val_dl)) <= 0.015


def test_fp16_halves_parameters_and_leaves_source_float32(trained):
    model, _, val_dl = trained
    half = to_fp16(model)
    assert {p.dtype for p in half.parameters()} == {torch.float16}
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert model_storage_bytes(half) * 2 == model_storage_bytes(model)
    assert evaluate_accuracy(half, val_dl, precision="fp16") == pytest.approx(evaluate_accuracy(model, val_dl), abs=0.005)


def test_int8_storage_counts_quantization_parameters(trained, int8):
    model = trained[0]
    params = sum(p.numel() for p in model.parameters())
    weights = sum(m.weight().numel() for m in quantized_layers(int8).values())
    size = model_storage_bytes(int8)
    assert weights < size < params * 2  # more than one byte per weight, less than FP16
    table = quantization_params_table(int8)
    assert table.storage_bytes.sum() < size
    assert (table.weight_scale_min > 0).all()


def test_pruned_int8_is_smaller(trained):
    model, train_dl, _ = trained
    sizes = [model_storage_bytes(to_int8(structured_channel_prune(model, lvl), train_dl, 2)) for lvl in (0.0, 0.5)]
    assert sizes[1] < sizes[0] / 2


def test_int8_source_untouched(trained, int8):
    model = trained[0]
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert not is_int8(model)


@pytest.mark.parametrize("precision,expected", [("fp32", "fp32"), ("fp16", "fp16"), ("int8", "fp32")])
def test_precision_variant_returns_metric_precision(trained, precision, expected):
    model, train_dl, _ = trained
    _, metric = precision_variant(model, precision, train_dl, 2)
    assert metric == expected


@pytest.mark.parametrize("bad", ["int4", "FP32", "", None])
def test_unknown_precision(trained, bad):
    model, train_dl, _ = trained
    with pytest.raises(ValueError, match="choose one of fp32, fp16, int8") as info:
        precision_variant(model, bad, train_dl, 2)
    assert f"'{bad}'" in str(info.value)


def test_bad_backend_and_calibration(trained):
    model, train_dl, _ = trained
    with pytest.raises(ValueError, match="'tensorrt'.*x86, fbgemm, qnnpack"):
        to_int8(model, train_dl, backend="tensorrt")
    with pytest.raises(ValueError, match="calibration_batches must be a positive integer, got -3"):
        to_int8(model, train_dl, calibration_batches=-3)
    with pytest.raises(ValueError, match="the calibration loader is empty"):   # said before any torch internals run
        to_int8(model, [], 1)
    assert PRECISIONS == ("fp32", "fp16", "int8")
