"""The tiny GeoChat on generated scenes' referring task (phrase -> box written as text) (slow; CI step 2).

Scored on held-out scenes (another seed) by parsing each answer with `BoxCodec("grid100")` and comparing its box
with the object's: accuracy at IoU >= 0.5 and mean IoU, next to the untrained model and the constant mean box.

Measured (938 steps of 32, one thread, ~6 min of training on the 2-core CPU; held-out seed 1000 + seed):

| seed | acc@0.5 | mean IoU | answers with a box | constant mean box: acc@0.5, mean IoU | untrained |
|---|---|---|---|---|---|
| 0 | 0.022 | 0.046 | 0.98 | 0.011, 0.028 | no box in any answer |
| 1 | 0.026 | 0.039 | 0.99 | 0.002, 0.019 | no box in any answer |

It learns GeoChat's box syntax and a coarse prior over positions, not grounding: a random frozen ViT and a
2-layer LLM do not localise objects in a CPU-sized run (a trained encoder, 565 steps: mean IoU 0.038; the
`[identify]` direction, box as text -> attribute phrase, 565 steps: exact match 0.054 against 0.025 for the most
frequent phrase). The test guards what does hold: well-formed boxes, better than the constant mean box.
"""

import dataclasses
import time

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from rsvlm_zoo import build_model
from rsvlm_zoo.batch import batch_to
from rsvlm_zoo.data.collate import RegionCollator
from rsvlm_zoo.data.processor import RegionProcessor
from rsvlm_zoo.data.schema import Turn
from rsvlm_zoo.data.synthetic import SyntheticRegionScenes
from rsvlm_zoo.metrics.grounding import GroundingAccuracy
from rsvlm_zoo.models.describe import generation_batch
from rsvlm_zoo.models.geochat import IDENTIFY_PROMPT, first_box
from rsvlm_zoo.tokens import REGION

pytestmark = pytest.mark.slow

TRAIN_SCENES = 10_000  # ~30,000 (scene, object) questions: one epoch of ~940 steps of 32
VAL_SCENES = 150  # seed 1: ~450 questions


class IdentifyScenes:
    """The box-attribute questions of the generated scenes in GeoChat's `[identify]` form: the box is text."""

    def __init__(self, num_scenes: int, seed: int) -> None:
        self.scenes = SyntheticRegionScenes(num_scenes, seed=seed, task="box_attributes")

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, idx: int):
        s = self.scenes[idx]
        question = Turn("human", IDENTIFY_PROMPT.format(region=REGION))
        return dataclasses.replace(s, conversation=[question, s.conversation[1]], region_refs=[0])


class Processed(torch.utils.data.Dataset):
    def __init__(self, scenes: SyntheticRegionScenes, processor: RegionProcessor) -> None:
        self.scenes, self.processor = scenes, processor

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, idx: int) -> dict:
        sample = self.scenes[idx]
        return self.processor(sample, sample.image)


def grounding_scores(predicted, truth) -> dict[str, float]:
    """Acc@0.5, mean IoU and the share of answers holding a box, from the project's grounding metric."""
    metric = GroundingAccuracy()
    metric.update(predicted, truth)
    got = metric.compute()
    return {
        "acc@0.5": float(got["acc@0.5"]),
        "mean_iou": float(got["miou"]),
        "parsed": 1 - float(got["unparsed"]) / len(truth),
    }


def score(model, scenes, batch_size: int = 128) -> tuple[dict[str, float], list[str]]:
    """Greedy answers for every held-out question: `[refer]` answers parsed into boxes and scored by IoU against
    the truth, `[identify]` answers by exact match."""
    processor = RegionProcessor(model.input_spec())
    predicted, truth, answers, refs = [], [], [], []
    for start in range(0, len(scenes), batch_size):
        samples = [scenes[i] for i in range(start, min(start + batch_size, len(scenes)))]
        prompts = [dataclasses.replace(s, conversation=[Turn("human", s.conversation[0].text)]) for s in samples]
        batch = generation_batch(processor, prompts, [s.image for s in samples], list(range(len(samples))))
        out = model.generate(batch_to(batch, model.device), max_new_tokens=12)
        answers += out
        predicted += [first_box(a, s.width, s.height) for a, s in zip(out, samples, strict=True)]
        truth += [s.regions[0].to_box() for s in samples]
        refs += [s.meta["answer"] for s in samples]
    if isinstance(scenes, IdentifyScenes):
        return {"exact_match": float(np.mean([a == r for a, r in zip(answers, refs, strict=True)]))}, answers
    return grounding_scores(predicted, truth), answers


def mean_box_baseline(train: SyntheticRegionScenes, val: SyntheticRegionScenes, n: int = 3000) -> dict[str, float]:
    """Always answer the mean training box."""
    mean = tuple(np.mean([train[i].regions[0].to_box() for i in range(min(n, len(train)))], axis=0).tolist())
    truth = [val[i].regions[0].to_box() for i in range(len(val))]
    return grounding_scores([mean] * len(truth), truth)


def majority_baseline(train: IdentifyScenes, val: IdentifyScenes, n: int = 3000) -> dict[str, float]:
    """Always answer the most frequent training phrase."""
    phrases = [train[i].meta["answer"] for i in range(min(n, len(train)))]
    top = max(set(phrases), key=phrases.count)
    return {"exact_match": float(np.mean([val[i].meta["answer"] == top for i in range(len(val))]))}


def train_and_score(
    seed: int = 0, train_scenes: int = TRAIN_SCENES, task: str = "refer", **overrides
) -> dict[str, dict[str, float]]:
    L.seed_everything(seed)
    model = build_model("geochat_tiny", **overrides)
    if task == "identify":
        train, val = IdentifyScenes(train_scenes, seed), IdentifyScenes(VAL_SCENES, 1000 + seed)
    else:
        train = SyntheticRegionScenes(train_scenes, seed=seed, task="refer")
        val = SyntheticRegionScenes(VAL_SCENES, seed=1000 + seed, task="refer")
    untrained, _ = score(model, val)
    loader = DataLoader(
        Processed(train, RegionProcessor(model.input_spec(), max_length=256)),
        batch_size=32,
        shuffle=True,
        collate_fn=RegionCollator(model.llm.tokenizer.pad_token_id),
    )
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        gradient_clip_val=1.0,
    )
    start = time.monotonic()
    trainer.fit(model, train_dataloaders=loader)
    trained, answers = score(model, val)
    return {
        "trained": trained,
        "untrained": untrained,
        "baseline": majority_baseline(train, val) if task == "identify" else mean_box_baseline(train, val),
        "info": {"train_s": time.monotonic() - start, "steps": trainer.global_step, "questions": len(val)},
        "examples": answers[:5],
    }


def test_tiny_geochat_refer_answers_parse_and_beat_the_constant_mean_box():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread steps faster than two on the 2-core CPU
    try:
        result = train_and_score(seed=0)
    finally:
        torch.set_num_threads(threads)
    print(result)
    trained, baseline = result["trained"], result["baseline"]
    assert result["untrained"]["parsed"] == 0.0  # the box words are learned, not given
    assert trained["parsed"] >= 0.95, result
    # Measured mean IoU 0.046 (seed 0) and 0.039 (seed 1): the lower one less a margin.
    assert trained["mean_iou"] >= 0.030, result
    assert trained["mean_iou"] > baseline["mean_iou"] + 0.005, result  # 0.046 against 0.028
    assert trained["acc@0.5"] >= baseline["acc@0.5"], result  # 0.022 against 0.011
    assert result["info"]["train_s"] <= 720, result["info"]  # ~6 min measured; twice that for CI's machine
