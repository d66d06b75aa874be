"""Small writers for annotation files and images used by the data tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image


def write_json(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def write_image(path: Path, width: int = 64, height: int = 48, mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    Image.fromarray(arr).convert(mode).save(path)
    return path


def osprey_record(n_regions: int = 2, n_masks: int | None = None, **extra) -> dict:
    n_masks = n_regions if n_masks is None else n_masks
    names = ", ".join(f"region{k + 1}<mask><pos>" for k in range(n_masks))
    rec = {
        "file_name": "a.jpg",
        "height": 48,
        "width": 64,
        "annotation": [
            {
                "segmentation": [[2 + 10 * k, 2, 9 + 10 * k, 2, 9 + 10 * k, 9, 2 + 10 * k, 9]],
                "bbox": [2 + 10 * k, 2, 7, 7],
                "category_id": k + 1,
            }
            for k in range(n_regions)
        ],
        "conversations": [
            {
                "from": "human",
                "value": f"<image>\nThere are {n_masks} part regions in the picture: {names}.\nWhat is region1?",
            },
            {"from": "gpt", "value": "a roof"},
        ],
    }
    rec.update(extra)
    return rec
