import pytest
import torch

from edge_opt.data import DATASETS, DatasetUnavailableError, build_loaders
from edge_opt.model import resolve_device


def test_default_split_is_stratified_and_deterministic():
    train, val = build_loaders(seed=0)
    assert len(train.dataset) == 4000 and len(val.dataset) == 1000
    assert torch.bincount(val.dataset.tensors[1]).tolist() == [100] * 10
    again = build_loaders(seed=0)[1]
    assert torch.equal(again.dataset.tensors[0], val.dataset.tensors[0])


def test_unknown_dataset_lists_known_ones():
    with pytest.raises(ValueError, match="'cifar10'.*mnist-5k, mnist, fashion-mnist, kmnist"):
        build_loaders("cifar10")


@pytest.mark.parametrize("dataset", [d for d in DATASETS if d != "mnist-5k"])
def test_failed_download_names_dataset_dir_and_offline_option(dataset, tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    def refuse(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: Name or service not known")

    for cls in (tvd.MNIST, tvd.FashionMNIST, tvd.KMNIST):
        monkeypatch.setattr(cls, "download", refuse)
        monkeypatch.setattr(cls, "_check_exists", lambda self: False)
    with pytest.raises(DatasetUnavailableError) as info:
        build_loaders(dataset, data_dir=tmp_path / "d")
    message = str(info.value)
    assert f"'{dataset}'" in message and str(tmp_path / "d") in message and "'mnist-5k'" in message


@pytest.mark.parametrize("kwargs,needle", [
    (dict(batch_size=0), "batch_size must be a positive integer or None, got 0"),
    (dict(batch_size=None), "batch_size"),
    (dict(train_subset=0), "train_subset"),
    (dict(val_subset=1001), "val_subset=1001 is more than the 1000"),
    (dict(num_workers=-1), "num_workers"),
])
def test_bad_loader_arguments(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        build_loaders(**kwargs)


def test_unknown_device():
    with pytest.raises(ValueError, match="'tpu'.*auto, cpu, cuda, mps"):
        resolve_device("tpu")
