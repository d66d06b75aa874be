"""Read caption predictions (JSON Lines) and references (COCO caption format or Karpathy JSON)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsvlm_zoo.caption_formats import in_split, is_karpathy, karpathy_captions, karpathy_image_id

ID_KEYS = ("image_id", "imgid", "filename", "file_name", "id")
CAPTION_KEYS = ("caption", "prediction", "answer")


class CaptionDataError(ValueError):
    """A predictions or references file that cannot be used, with the file and line at fault."""


@dataclass
class References:
    """Reference captions per image, findable by image id and by file name."""

    captions: dict[str, list[str]] = field(default_factory=dict)  # canonical key -> captions
    by_id: dict[str, str] = field(default_factory=dict)  # str(image id) -> canonical key
    by_name: dict[str, str] = field(default_factory=dict)  # file name -> canonical key
    kind: str = ""

    def add(self, image_id: Any, file_name: str | None, captions: list[str]) -> None:
        """Register one image's captions under its id (and file name)."""
        key = str(image_id)
        self.captions.setdefault(key, []).extend(captions)
        self.by_id[key] = key
        if file_name:
            self.by_name[file_name] = key

    def lookup(self, image_id: Any) -> str | None:
        """Canonical key of an image given its id (int or digits) or its file name; None when unknown."""
        text = str(image_id)
        if isinstance(image_id, str) and text in self.by_name:
            return self.by_name[text]
        return self.by_id.get(text) or self.by_name.get(text)


def load_references(path: str | Path, split: str = "test") -> References:
    """Load references from a COCO caption file or a Karpathy file.

    COCO: `annotations[].image_id/caption`, optional `images[].id/file_name`. Karpathy:
    `images[].imgid/filename/split/sentences[].raw`, keeping split `split` only ("all": every image).

    Raises:
        CaptionDataError: for an unreadable or unrecognised file.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CaptionDataError(f"cannot read references {path}: {exc}") from exc
    refs = References()
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        refs.kind = "coco"
        names = {img.get("id"): img.get("file_name") for img in data.get("images", []) if isinstance(img, dict)}
        grouped: dict[Any, list[str]] = {}
        for i, ann in enumerate(data["annotations"]):
            if not isinstance(ann, dict) or "image_id" not in ann or not isinstance(ann.get("caption"), str):
                raise CaptionDataError(f"{path}: annotation {i} lacks image_id or a caption string")
            grouped.setdefault(ann["image_id"], []).append(ann["caption"])
        for image_id, captions in grouped.items():
            refs.add(image_id, names.get(image_id), captions)
    elif is_karpathy(data):
        refs.kind = "karpathy"
        for i, img in enumerate(data["images"]):
            if not isinstance(img, dict) or not in_split(img, split):
                continue
            try:
                refs.add(karpathy_image_id(img), img.get("filename"), karpathy_captions(img))
            except (KeyError, ValueError) as exc:
                raise CaptionDataError(f"{path}: images[{i}]: {exc}") from exc
        if not refs.captions:
            splits = sorted({str(img.get("split")) for img in data["images"]})
            raise CaptionDataError(f"{path}: no image in split {split!r}; splits present: {', '.join(splits)}")
    else:
        raise CaptionDataError(
            f"{path}: not a COCO caption file (`annotations`) nor a Karpathy file (`images[].sentences`)"
        )
    return refs


def load_predictions(path: str | Path) -> list[tuple[int, Any, str]]:
    """(line number, image id, caption) of every non-blank line of a predictions JSON Lines file.

    Each line is an object with the image under `image_id` (or `imgid`, `filename`, `file_name`, `id`) and the
    text under `caption` (or `prediction`, `answer`).

    Raises:
        CaptionDataError: naming the line at fault.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CaptionDataError(f"cannot read predictions {path}: {exc}") from exc
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CaptionDataError(f"{path}:{number}: invalid JSON ({exc.msg})") from exc
        if not isinstance(record, dict):
            raise CaptionDataError(f"{path}:{number}: expected a JSON object")
        image_id = next((record[k] for k in ID_KEYS if k in record), None)
        if image_id is None:
            raise CaptionDataError(f"{path}:{number}: no image id (expected one of {', '.join(ID_KEYS)})")
        caption = next((record[k] for k in CAPTION_KEYS if k in record), None)
        if not isinstance(caption, str):
            raise CaptionDataError(f"{path}:{number}: no caption string (expected one of {', '.join(CAPTION_KEYS)})")
        out.append((number, image_id, caption))
    return out


def match_predictions(
    predictions: list[tuple[int, Any, str]], refs: References, pred_path: str | Path, split: str = "test"
) -> tuple[list[str], list[list[str]]]:
    """Pair each prediction with its references.

    Raises:
        CaptionDataError: for a prediction whose image has no reference, or a second prediction for an image.
    """
    seen: dict[str, int] = {}
    preds, target = [], []
    where = f" (split {split!r})" if refs.kind == "karpathy" and split != "all" else ""
    for number, image_id, caption in predictions:
        key = refs.lookup(image_id)
        if key is None:
            raise CaptionDataError(f"{pred_path}:{number}: image {image_id!r} has no reference{where}")
        if key in seen:
            raise CaptionDataError(
                f"{pred_path}:{number}: second prediction for image {image_id!r} (first on line {seen[key]})"
            )
        seen[key] = number
        preds.append(caption)
        target.append(refs.captions[key])
    if not preds:
        raise CaptionDataError(f"{pred_path}: no predictions")
    return preds, target
