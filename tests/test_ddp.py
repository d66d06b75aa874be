"""Several processes: evaluation shares are disjoint and complete, and the tiny recipe runs under DDP."""

import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from rsvlm_zoo import build_model
from rsvlm_zoo.datamodules import RegionDataModule, SyntheticSource
from tests.conftest import RECIPES


def test_each_process_scores_a_disjoint_share_of_every_eval_sample_once():
    model = build_model("aquila_plus_tiny")
    shares = []
    for rank in range(2):
        data = RegionDataModule(
            train=SyntheticSource(4, seed=0),
            val=SyntheticSource(3, seed=1, one_question_per_sample=True),
            num_workers=0,
        )
        data.trainer = SimpleNamespace(world_size=2, global_rank=rank)
        data.attach(model.input_spec())
        (loader,) = data.val_dataloader()
        shares.append(list(loader.sampler))
    total = len(SyntheticSource(3, seed=1, one_question_per_sample=True))
    assert sorted(shares[0] + shares[1]) == list(range(total))  # no sample repeated, none left out
    assert abs(len(shares[0]) - len(shares[1])) <= 1


def test_tiny_recipe_trains_and_validates_with_ddp_on_two_cpu_processes(tmp_path):
    script = Path(sys.executable).parent / "lightning"
    args = [
        str(script),
        "fit",
        "-c",
        str(RECIPES / "tiny" / "aquila_plus.yaml"),
        "--trainer.strategy=ddp",
        "--trainer.devices=2",
        "--trainer.accelerator=cpu",
        "--trainer.max_steps=2",
        f"--trainer.default_root_dir={tmp_path}",
        "--data.init_args.train.init_args.num_scenes=16",
        "--data.init_args.val.init_args.num_scenes=3",
        "--data.init_args.batch_size=4",
        "--data.init_args.eval_batch_size=4",
        "--model.init_args.max_new_tokens=2",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    output = out.stdout + out.stderr  # the final metrics go through Lightning's logger (stderr)
    metrics = dict(re.findall(r"(val/\S+)\s+([0-9.]+)", output.split("final validation metrics", 1)[-1]))
    assert set(metrics) == {"val/exact_match_regions", "val/exact_match_shuffled_masks"}, output[-2000:]
