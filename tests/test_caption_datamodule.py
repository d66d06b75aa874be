"""CaptionDataModule on Karpathy-split caption files: training pairs, random captions, references, errors."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from rsvlm_zoo.data.processor import IGNORE_INDEX, InputSpec
from rsvlm_zoo.data.schema import DataFormatError
from rsvlm_zoo.datamodules import AnnotationSource, CaptionDataModule, SyntheticSource
from rsvlm_zoo.tokens import build_tiny_tokenizer

CAPTIONS = {
    "a.png": ["a red car on the road .", "there is a car .", "a small red car ."],
    "b.jpg": ["many trees in the park .", "a green park ."],
    "c.tif": ["a large white ship in the harbor .", "a ship .", "a white boat in the port ."],
}


def tiny_spec() -> InputSpec:
    return InputSpec(build_tiny_tokenizer(), (64, 64), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), 4)


def write_karpathy(tmp_path, splits=("train", "train", "val")) -> str:
    """Three images (PNG, JPEG, 16-bit single-band TIFF) with their captions in a Karpathy JSON."""
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(images / "a.png")
    Image.fromarray(rng.integers(0, 255, (30, 30, 3), dtype=np.uint8)).save(images / "b.jpg")
    tifffile.imwrite(images / "c.tif", rng.integers(0, 4000, (20, 24)).astype(np.uint16))
    records = [
        {
            "filename": name,
            "imgid": k,
            "split": split,
            "sentids": list(range(len(caps))),
            "sentences": [{"raw": c, "tokens": c.split()} for c in caps],
        }
        for k, ((name, caps), split) in enumerate(zip(CAPTIONS.items(), splits, strict=True))
    ]
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps({"images": records, "dataset": "test"}))
    return str(path)


def decoded_answers(batch, tok) -> list[str]:
    return [
        tok.decode(ids[labels != IGNORE_INDEX], skip_special_tokens=True).strip()
        for ids, labels in zip(batch["input_ids"], batch["labels"], strict=True)
    ]


def test_each_caption_is_one_training_sample(tmp_path):
    path = write_karpathy(tmp_path, ("train", "train", "train"))
    dm = CaptionDataModule(train=AnnotationSource("karpathy", path, split="train"), batch_size=16)
    dm.attach(tiny_spec())
    loader = dm.train_dataloader()
    assert len(loader.dataset) == 8
    batch = next(iter(loader))
    assert batch["skipped"] == 0 and batch["region_masks"].shape == (0, 64, 64)
    tok = dm.spec.tokenizer
    assert sorted(decoded_answers(batch, tok)) == sorted(tok.decode(tok.encode(c, add_special_tokens=False))
                                                         for caps in CAPTIONS.values() for c in caps)  # fmt: skip
    assert sorted(batch["sample_ids"]) == sorted(f"{i}#{k}" for i, caps in enumerate(CAPTIONS.values())
                                                 for k in range(len(caps)))  # fmt: skip


def test_random_mode_gives_each_image_once_per_epoch_with_a_seeded_caption(tmp_path):
    path = write_karpathy(tmp_path, ("train", "train", "train"))

    def epochs(seed, n=8):
        dm = CaptionDataModule(
            train=AnnotationSource("karpathy", path, split="train"), train_captions="random", seed=seed, batch_size=16
        )
        dm.attach(tiny_spec())
        loader = dm.train_dataloader()
        out = []
        for epoch in range(n):
            loader.sampler.set_epoch(epoch)
            batch = next(iter(loader))
            assert sorted(i.split("#")[0] for i in batch["sample_ids"]) == ["0", "1", "2"]  # each image once
            out.append(sorted(batch["sample_ids"]))
        return out

    first = epochs(0)
    assert first == epochs(0)  # same seed, same captions per epoch
    assert first != epochs(1)
    drawn = Counter(i for ids in first for i in ids)
    assert len(drawn) > 4  # the captions change from epoch to epoch


def test_evaluation_batches_carry_every_reference(tmp_path):
    path = write_karpathy(tmp_path)
    dm = CaptionDataModule(
        train=AnnotationSource("karpathy", path, split="train"),
        val=AnnotationSource("karpathy", path, split="val"),
        eval_batch_size=4,
    )
    dm.attach(tiny_spec())
    (loader,) = dm.val_dataloader()
    batch = next(iter(loader))
    assert batch["references"] == [CAPTIONS["c.tif"]]  # the 16-bit single-band TIFF is read and stretched
    assert batch["answers"] == [CAPTIONS["c.tif"][0]]
    assert batch["meta"] == [{"eval_name": "captions", "sample_id": "2"}]
    assert (batch["labels"] == IGNORE_INDEX).all()  # a prompt, no answer
    prompt = dm.spec.tokenizer.decode(batch["input_ids"][0])
    assert prompt.endswith("give a short description of this remote sensing image. assistant :"), prompt
    (test_loader,) = dm.test_dataloader()  # test falls back to val
    assert next(iter(test_loader))["references"] == batch["references"]


def test_the_tiny_model_trains_on_captions(tmp_path, tiny_aquila):
    path = write_karpathy(tmp_path)
    dm = CaptionDataModule(train=AnnotationSource("karpathy", path, split="train"), batch_size=4)
    dm.attach(tiny_aquila.input_spec())
    batch = next(iter(dm.train_dataloader()))
    assert batch["pixel_values"].shape == (4, 3, 128, 128)
    assert torch.isfinite(tiny_aquila(batch))


def test_bad_options_and_non_caption_sources_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="'tile' is for region data"):
        CaptionDataModule(image_policy="tile")
    with pytest.raises(ValueError, match="train_captions must be one of"):
        CaptionDataModule(train_captions="all")
    with pytest.raises(ValueError, match="<image> exactly once"):
        CaptionDataModule(prompt="Describe the image.")
    dm = CaptionDataModule(train=SyntheticSource(2), batch_size=2)
    dm.attach(tiny_spec())
    with pytest.raises(DataFormatError, match=r"record 'scene[01]' in synthetic\(seed=0\): no captions"):
        next(iter(dm.train_dataloader()))


def test_missing_and_truncated_images_are_named_or_counted(tmp_path):
    path = write_karpathy(tmp_path, ("train", "train", "train"))
    (tmp_path / "images" / "a.png").unlink()
    jpeg = tmp_path / "images" / "b.jpg"
    jpeg.write_bytes(jpeg.read_bytes()[:200])
    source = AnnotationSource("karpathy", path, split="train")
    strict = CaptionDataModule(train=source, batch_size=16)
    strict.attach(tiny_spec())
    with pytest.raises(DataFormatError, match=r"(a.png: image file not found|b.jpg: cannot decode image)"):
        next(iter(strict.train_dataloader()))
    lenient = CaptionDataModule(train=source, batch_size=16, on_bad_sample="skip")
    lenient.attach(tiny_spec())
    batch = next(iter(lenient.train_dataloader()))
    assert batch["skipped"] == 5 and len(batch["sample_ids"]) == 3  # 3 + 2 captions of the two broken images


def test_real_rsicd_and_ucm(shared_data):
    rsicd = AnnotationSource("karpathy", str(shared_data / "captions/rsicd/dataset_rsicd.json"), split="train")
    dm = CaptionDataModule(train=rsicd, val=rsicd, batch_size=40, eval_batch_size=8)
    dm.attach(tiny_spec())
    assert len(dm.train_dataloader().dataset) == 40
    batch = next(iter(dm.val_dataloader()[0]))
    assert len(batch["references"]) == 8 and all(len(r) == 5 for r in batch["references"])
    assert batch["references"][0][0] == "a football field with several buildiings surroudned ."  # typos kept
    # UCM: the full annotation file but only images 1..6 here; the missing ones are counted skips.
    ucm = AnnotationSource("karpathy", str(shared_data / "captions/ucm/dataset.json"), split="train")
    dm = CaptionDataModule(val=ucm, eval_batch_size=8, on_bad_sample="skip")
    dm.attach(tiny_spec())
    batch = next(iter(dm.val_dataloader()[0]))
    assert batch["skipped"] == 2 and batch["pixel_values"].shape == (6, 3, 64, 64)
    assert batch["references"][0][0] == "There is a piece of farmland ."
