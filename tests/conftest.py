"""Test-session settings: one torch thread per process (the suite's tensors are tiny; on a shared 2-core machine
extra threads only add contention); tests marked ``cuda`` run where a GPU is visible and are skipped elsewhere;
the ``device`` fixture gives "cpu", plus "cuda" on a GPU machine."""
import pytest
import torch

torch.set_num_threads(1)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param
