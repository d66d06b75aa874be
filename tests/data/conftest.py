"""Fixtures for the data-reader tests: the real sample folder and small file writers."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
REAL_DATA = PROJECT_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def real_data() -> Path:
    """`<project root>/../shared/data`, or a skip when this checkout has none beside it."""
    if not REAL_DATA.is_dir():
        pytest.skip(f"real sample data folder {REAL_DATA} is absent")
    return REAL_DATA
