"""The tiny recipes really learn end to end: the README's main command, the two MGIMM stages (slow; CI step 2)."""

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import RECIPES

pytestmark = pytest.mark.slow

# Measured with the recipe as shipped (training seed 0): exact match 0.9967 / 1.000 / 0.9989 on the 300 scenes of
# validation seeds 1 / 7 / 11, masks shuffled 0.029 / 0.024 / 0.022.
MIN_OWN = 0.95
# Wall-clock promises, with twice the time measured on the 2-core machine as slack for CI's: the README's
# "about 5 minutes" for the first command's fit, 7 min 20 s for the two MGIMM stages.
AQUILA_FIT_LIMIT_S = 600
MGIMM_STAGES_LIMIT_S = 880
SHUFFLED = "val/exact_match_shuffled_masks"


def final_metrics(output: str) -> dict[str, float]:
    block = output.split("final validation metrics", 1)[-1]
    return {k: float(v) for k, v in re.findall(r"(val/\S+)\s+([0-9.]+)", block)}


def fit(recipe: str, *overrides: str) -> tuple[dict[str, float], float]:
    """Run `lightning fit -c recipes/<recipe> <overrides>`; return its final validation metrics and wall time."""
    script = Path(sys.executable).parent / "lightning"
    start = time.monotonic()
    out = subprocess.run(
        [str(script), "fit", "-c", str(RECIPES / recipe), *overrides], capture_output=True, text=True, timeout=900
    )
    elapsed = time.monotonic() - start
    assert out.returncode == 0, out.stderr[-3000:]
    return final_metrics(out.stdout + out.stderr), elapsed  # the final metrics go through Lightning's logger


def validate(recipe: str, *overrides: str) -> dict[str, float]:
    """Run `lightning validate -c recipes/<recipe> <overrides>`; return its exact-match metrics."""
    script = Path(sys.executable).parent / "lightning"
    out = subprocess.run(
        [str(script), "validate", "-c", str(RECIPES / recipe), *overrides], capture_output=True, text=True, timeout=900
    )
    assert out.returncode == 0, out.stderr[-3000:]
    output = out.stdout + out.stderr
    # Lightning's table of validation metrics; it may cut a long name short ("val/exact_match_shuffl…").
    found = dict(re.findall(r"(val/exact_match_[a-z_]+)\S*\s*[│|]\s+([0-9.]+)", output))
    named = {"val/exact_match_regions": "val/exact_match_regions", "val/exact_match_shuffl": SHUFFLED}
    return {full: float(v) for k, v in found.items() for part, full in named.items() if k.startswith(part)}


def test_tiny_aquila_plus_with_a_frozen_pretrained_encoder_learns_regions_on_unseen_scenes(tmp_path):
    """The README's first command: the paper's mask extractor on frozen ImageNet features, scored on three seeds."""
    start = time.monotonic()
    seed1 = fit(
        "tiny/aquila_plus.yaml", "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_checkpointing", "true"
    )[0]
    elapsed = time.monotonic() - start
    (checkpoint,) = (tmp_path / "checkpoints").glob("*.ckpt")
    scores = {1: seed1}
    for seed in (7, 11):  # 300 more scenes of two other seeds, the same trained model
        scores[seed] = validate(
            "tiny/aquila_plus.yaml",
            "--ckpt_path",
            str(checkpoint),
            "--trainer.default_root_dir",
            str(tmp_path / f"val{seed}"),
            "--data.init_args.val.init_args.seed",
            str(seed),
        )
    own = {s: m["val/exact_match_regions"] for s, m in scores.items()}
    shuffled = {s: m[SHUFFLED] for s, m in scores.items()}
    print(f"fit {elapsed:.0f} s; exact match {own}; masks shuffled {shuffled}")
    assert min(own.values()) >= MIN_OWN, own
    # Masks shuffled between regions: a model that ignores masks would score the same; this one collapses.
    assert max(shuffled.values()) <= 0.05, shuffled
    assert elapsed <= AQUILA_FIT_LIMIT_S, f"the first command's fit took {elapsed:.0f} s"


def test_tiny_mgimm_learns_box_attributes_then_descriptions_that_need_its_region_tokens(tmp_path):
    stage1, t1 = fit("tiny/mgimm_stage1.yaml", "--trainer.default_root_dir", str(tmp_path / "stage1"))
    checkpoint = tmp_path / "stage1" / "checkpoints" / "last.ckpt"
    stage2_args = ("--model.init_args.init_checkpoint", str(checkpoint))
    stage2, t2 = fit("tiny/mgimm.yaml", *stage2_args, "--trainer.default_root_dir", str(tmp_path / "stage2"))
    zeroed, t3 = fit(
        "tiny/mgimm.yaml",
        *stage2_args,
        "--model.init_args.zero_region_tokens",
        "true",
        "--trainer.default_root_dir",
        str(tmp_path / "zeroed"),
    )
    print(f"stage 1 {t1:.0f} s {stage1}; stage 2 {t2:.0f} s {stage2}; region tokens zeroed {t3:.0f} s {zeroed}")
    assert stage1["val/exact_match_regions"] >= 0.90, stage1
    # The paper's ablation: the same stage 2 with every region token zeroed describes worse.
    assert stage2["val/cider_regions"] > zeroed["val/cider_regions"], (stage2, zeroed)
    assert t1 + t2 <= MGIMM_STAGES_LIMIT_S, f"the two stages took {t1:.0f} s + {t2:.0f} s"
