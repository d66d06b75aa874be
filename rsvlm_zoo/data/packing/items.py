"""A resized sample as a LitData item (`image`: PNG bytes, `record`: JSON of the rest) and back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from rsvlm_zoo.data.packing.settings import PNG_LEVEL
from rsvlm_zoo.data.schema import Region, Sample, Turn


def plain(value: Any) -> Any:
    """JSON-ready copy: tuples become lists, numpy scalars and arrays become numbers and lists."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return value


def encode_png(image: np.ndarray, level: int = PNG_LEVEL) -> bytes:
    """Lossless PNG bytes of an HxWx3 uint8 image (zlib level `level`: 1 is the fastest that compresses)."""
    from io import BytesIO

    from PIL import Image

    buffer = BytesIO()
    Image.fromarray(np.asarray(image)).save(buffer, format="PNG", compress_level=level)
    return buffer.getvalue()


def encode_item(sample: Sample, provenance: dict[str, Any], png: bytes | None = None) -> dict[str, Any]:
    """The LitData item of a resized sample: PNG bytes of its image (`png` when already encoded) and the JSON record."""
    record = {
        "sample_id": sample.sample_id,
        "width": sample.width,
        "height": sample.height,
        "split": sample.split,
        "source": str(sample.source),
        "conversation": [[t.role, t.text] for t in sample.conversation],
        "captions": list(sample.captions),
        "region_refs": sample.region_refs,
        "meta": plain(sample.meta),
        "regions": [
            {
                "rle": r.rle,
                "box": None if r.box is None else list(r.box),
                "category": r.category,
                "text": r.text,
                "attributes": plain(r.attributes),
            }
            for r in sample.regions
        ],
        "provenance": plain(provenance),
    }
    image = png if png is not None else encode_png(sample.image)
    return {"image": image, "record": json.dumps(record, ensure_ascii=False)}


TUPLE_META = ("window", "scene_size", "size")


def decode_record(text: str) -> tuple[dict[str, Any], Sample]:
    """(provenance, Sample without image) of a packed item's JSON record; `image` is filled by the caller."""
    rec = json.loads(text)
    meta = rec["meta"]
    tile = meta.get("tile")
    if isinstance(tile, dict):  # the tiling rule records these as tuples
        meta["tile"] = {k: tuple(v) if k in TUPLE_META and isinstance(v, list) else v for k, v in tile.items()}
    regions = [
        Region(
            rle=r["rle"],
            box=None if r["box"] is None else tuple(r["box"]),
            category=r["category"],
            text=r["text"],
            attributes=r["attributes"],
        )
        for r in rec["regions"]
    ]
    sample = Sample(
        image=np.zeros((0, 0, 3), np.uint8),
        width=rec["width"],
        height=rec["height"],
        regions=regions,
        conversation=[Turn(role, text) for role, text in rec["conversation"]],
        captions=rec["captions"],
        region_refs=rec["region_refs"],
        sample_id=rec["sample_id"],
        source=rec["source"],
        split=rec["split"],
        meta=meta,
    )
    return rec["provenance"], sample


__all__ = ["TUPLE_META", "decode_record", "encode_item", "encode_png", "plain"]
