"""The embedded default really learns: the README's main command, end to end (slow; CI's second step)."""

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import RECIPES

pytestmark = pytest.mark.slow


def final_metrics(output: str) -> dict[str, float]:
    block = output.split("final validation metrics", 1)[-1]
    return {k: float(v) for k, v in re.findall(r"(val/\S+)\s+([0-9.]+)", block)}


def test_tiny_aquila_plus_learns_regions_within_ten_minutes(tmp_path):
    script = Path(sys.executable).parent / "lightning"
    start = time.monotonic()
    out = subprocess.run(
        [
            str(script),
            "fit",
            "-c",
            str(RECIPES / "tiny" / "aquila_plus.yaml"),
            "--trainer.default_root_dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    elapsed = time.monotonic() - start
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = final_metrics(out.stdout)
    print(f"wall {elapsed:.0f} s, metrics {metrics}")
    assert metrics["val/exact_match_regions"] >= 0.90, metrics
    # Masks shuffled between regions: a model that ignores masks would score the same; this one collapses.
    assert metrics["val/exact_match_shuffled_masks"] <= 0.20, metrics
