import pytest
import torch

from edge_opt.training import train_baseline


@pytest.fixture(scope="session")
def trained():
    "The default baseline on mnist-5k: (model, train_loader, val_loader)."
    torch.set_num_threads(max(1, torch.get_num_threads()))
    return train_baseline(seed=0)
