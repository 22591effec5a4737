import pytest

from edge_opt.training import train_baseline


@pytest.fixture(scope="session")
def trained():
    "The default baseline on mnist-5k: (model, train_loader, val_loader)."
    return train_baseline(seed=0)
