import pytest
import torch

from darts_hub.kernels import build
from darts_hub.kernels.build import load_kernels


@pytest.fixture
def without_a_compiler(monkeypatch):
    """The CPU kernels as on a machine without a C++ compiler: building one fails (the loader's cache is cleared
    before and after, so that the kernels are built again, from torch's cache, for the other tests)."""

    def no_compiler(*args, **kwargs):
        raise RuntimeError("no C++ compiler here")

    load_kernels.cache_clear()
    monkeypatch.setattr(torch.utils.cpp_extension, "load", no_compiler)
    monkeypatch.setattr(build, "_failed", [])
    yield
    load_kernels.cache_clear()
