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
# "about 5 minutes" for the first command's fit, 9 min 50 s for the two MGIMM stages.
AQUILA_FIT_LIMIT_S = 600
MGIMM_STAGES_LIMIT_S = 1180
SHUFFLED = "val/exact_match_shuffled_masks"
# MGIMM stage 1 (recipes/tiny/mgimm_stage1.yaml), attribute exact match on the 300 seed-1 scenes with each box and
# with another object's box, measured at training seeds 0 / 1 / 2: 0.857 / 0.930 / 0.548 and 0.033 / 0.031 / 0.059.
# When the box module learns to localise varies with the data order; the floor is the worst seed minus 0.03.
MGIMM_MIN_OWN = 0.51
MGIMM_MAX_OTHER = 0.10
# Stage 2 (recipes/tiny/mgimm.yaml from that stage 1), CIDEr-D on 100 scenes of seeds 1 / 7 / 11: 4.82 / 4.85 / 5.07
# (one training seed; an untrained model scores near 0), and with every region token zeroed 3.88 / 3.62 / 3.52: a
# mean gain of 1.24 against a spread over seeds of at most 0.36.
MGIMM_MIN_CIDER = 3.5


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


METRIC_NAMES = ("val/exact_match_regions", SHUFFLED, "val/cider_regions")


def validate(recipe: str, *overrides: str) -> dict[str, float]:
    """Run `lightning validate -c recipes/<recipe> <overrides>`; return its exact-match and CIDEr metrics."""
    script = Path(sys.executable).parent / "lightning"
    out = subprocess.run(
        [str(script), "validate", "-c", str(RECIPES / recipe), *overrides], capture_output=True, text=True, timeout=900
    )
    assert out.returncode == 0, out.stderr[-3000:]
    output = out.stdout + out.stderr
    # Lightning's table of validation metrics; it may cut a long name short ("val/exact_match_shuffl…").
    found = dict(re.findall(r"(val/[a-z_]+)\S*\s*[│|]\s+([0-9.]+)", output))
    return {full: float(v) for k, v in found.items() for full in METRIC_NAMES if full.startswith(k)}


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


def scores_on_three_seeds(
    recipe: str, first: dict[str, float], checkpoint: Path, root: Path, *overrides: str
) -> dict[int, dict]:
    """The fit's validation (seed 1) and `lightning validate` of its checkpoint on the scenes of seeds 7 and 11."""
    scores = {1: first}
    for seed in (7, 11):
        scores[seed] = validate(
            recipe,
            "--ckpt_path",
            str(checkpoint),
            "--trainer.default_root_dir",
            str(root / f"val{seed}"),
            "--data.init_args.val.init_args.seed",
            str(seed),
            *overrides,
        )
    return scores


def test_tiny_mgimm_box_module_reads_its_boxes_then_stage_2_learns_descriptions(tmp_path):
    """The paper's box module on frozen ImageNet features: stage 1 answers from its box, stage 2 describes scenes."""
    # One validation at the end of stage 1: the recipe's quarterly ones only draw the curve.
    once = ("--trainer.val_check_interval", "1.0")
    stage1, t1 = fit("tiny/mgimm_stage1.yaml", *once, "--trainer.default_root_dir", str(tmp_path / "stage1"))
    checkpoint = tmp_path / "stage1" / "checkpoints" / "last.ckpt"
    attributes = scores_on_three_seeds("tiny/mgimm_stage1.yaml", stage1, checkpoint, tmp_path / "stage1")
    root = tmp_path / "stage2"
    stage2_args = ("--model.init_args.init_checkpoint", str(checkpoint), "--trainer.enable_checkpointing", "true")
    first, t2 = fit("tiny/mgimm.yaml", *stage2_args, "--trainer.default_root_dir", str(root))
    (last,) = (root / "checkpoints").glob("*.ckpt")
    cider = {s: m["val/cider_regions"] for s, m in scores_on_three_seeds("tiny/mgimm.yaml", first, last, root).items()}
    # The paper's ablation: the same stage 2 with every region token zeroed, validated alike.
    zeroed = ("--model.init_args.zero_region_tokens", "true")
    root = tmp_path / "ablation"
    first, _ = fit("tiny/mgimm.yaml", *stage2_args, *zeroed, "--trainer.default_root_dir", str(root))
    (last,) = (root / "checkpoints").glob("*.ckpt")
    seeds = scores_on_three_seeds("tiny/mgimm.yaml", first, last, root, *zeroed)
    ablation = {s: m["val/cider_regions"] for s, m in seeds.items()}
    own = {s: m["val/exact_match_regions"] for s, m in attributes.items()}
    other = {s: m[SHUFFLED] for s, m in attributes.items()}
    print(
        f"stage 1 {t1:.0f} s: own box {own}, another object's box {other}; stage 2 {t2:.0f} s: CIDEr-D {cider}; "
        f"region tokens zeroed: {ablation}"
    )
    assert min(own.values()) >= MGIMM_MIN_OWN, own
    # Each question asked with another object's box of the scene: a module that ignores its box scores alike.
    assert max(other.values()) <= MGIMM_MAX_OTHER, other
    assert min(cider.values()) >= MGIMM_MIN_CIDER, cider
    # Region tokens help: the mean gain over the ablation exceeds the spread of either over the three seeds.
    gain = sum(cider.values()) / 3 - sum(ablation.values()) / 3
    spread = max(max(v.values()) - min(v.values()) for v in (cider, ablation))
    assert gain > spread, (cider, ablation)
    assert t1 + t2 <= MGIMM_STAGES_LIMIT_S, f"the two stages took {t1:.0f} s + {t2:.0f} s"
