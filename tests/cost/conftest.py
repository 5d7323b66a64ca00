import pytest
import torch
from haq_tiny_net import TinyNet

from haq.specs import extract_specs


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Cost tables built in tests never land in the user's ~/.cache."""
    monkeypatch.setenv("HAQ_CACHE_DIR", str(tmp_path / "haq-cache"))


@pytest.fixture
def tiny_specs():
    return extract_specs(TinyNet(), torch.zeros(1, 3, 16, 16))
