"""Shared fixtures: offline Hugging Face, the tiny model, the sample-data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
RECIPES = ROOT / "rsvlm_zoo" / "recipes"  # the shipped recipes (`recipes/` in a clone links here)
# Folders of fragments: YAML read after a whole recipe with a second `-c` (a strategy, a swapped LLM), not alone.
FRAGMENT_DIRS = ("strategies", "smol")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real remote-sensing sample files, or a skip when this checkout has none beside it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"sample data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture
def tiny_aquila():
    """A fresh tiny Aquila-plus (random, CPU)."""
    import torch

    from rsvlm_zoo import build_model

    torch.manual_seed(0)
    return build_model("aquila_plus_tiny")


@pytest.fixture(scope="module")
def mgimm_export(tmp_path_factory):
    """A seeded mgimm_tiny (eval mode) and the directory `export_model` wrote it to."""
    import torch

    from rsvlm_zoo import build_model
    from rsvlm_zoo.weights.export import export_model

    torch.manual_seed(0)
    model = build_model("mgimm_tiny").eval()
    return model, export_model(model, tmp_path_factory.mktemp("mgimm") / "export")
