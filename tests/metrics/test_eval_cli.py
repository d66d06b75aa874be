"""`rsvlm eval`: predictions JSONL against COCO caption or Karpathy references."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rsvlm_zoo.cli.eval import eval_main
from rsvlm_zoo.metrics import CaptionMetrics
from tests.metrics.conftest import SHARED_DATA

COCO = {
    "images": [
        {"id": 1, "file_name": "a.jpg"},
        {"id": 2, "file_name": "b.jpg"},
        {"id": 3, "file_name": "c.jpg"},
    ],
    "annotations": [
        {"image_id": 1, "caption": "A plane is parked at the airport."},
        {"image_id": 1, "caption": "An airport with one plane."},
        {"image_id": 2, "caption": "Green trees along a river."},
        {"image_id": 2, "caption": "A river."},
        {"image_id": 3, "caption": "Many buildings."},
    ],
}


def _write(tmp_path: Path, refs: dict, lines: list) -> tuple[Path, Path]:
    refs_path, preds_path = tmp_path / "refs.json", tmp_path / "preds.jsonl"
    refs_path.write_text(json.dumps(refs))
    preds_path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return refs_path, preds_path


def test_coco_references_print_the_table_and_write_json(tmp_path, capsys):
    lines = [
        {"image_id": 1, "caption": "a plane at the airport"},
        "",
        {"image_id": "b.jpg", "prediction": "trees near a river"},  # by file name, `prediction` alias
        {"image_id": "3", "answer": "buildings"},  # id as digits, `answer` alias
    ]
    refs, preds = _write(tmp_path, COCO, lines)
    out = tmp_path / "out" / "metrics.json"
    assert eval_main(["--predictions", str(preds), "--references", str(refs), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    scores = json.loads(out.read_text())
    assert list(scores) == ["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr"]
    assert "CIDEr" in printed and "(3 images)" in printed
    direct = CaptionMetrics(meteor=False)  # METEOR itself is checked against pycocoevalcap elsewhere
    direct.update(
        ["a plane at the airport", "trees near a river", "buildings"],
        [[a["caption"] for a in COCO["annotations"] if a["image_id"] == i] for i in (1, 2, 3)],
    )
    expected = {k: float(v) for k, v in direct.compute().items()}
    assert {k: v for k, v in scores.items() if k != "METEOR"} == expected
    assert 0 < scores["METEOR"] <= 1


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            [{"image_id": 1, "caption": "x"}, {"image_id": 9, "caption": "y"}],
            "preds.jsonl:2: image 9 has no reference",
        ),
        ([{"image_id": 1, "caption": "x"}, {"image_id": "a.jpg", "caption": "y"}], "second prediction"),
        (["{not json"], "preds.jsonl:1: invalid JSON"),
        ([{"caption": "x"}], "preds.jsonl:1: no image id"),
        ([{"image_id": 1, "text": "x"}], "preds.jsonl:1: no caption"),
    ],
)
def test_bad_predictions_are_errors_naming_the_line(tmp_path, capsys, lines, message):
    refs, preds = _write(tmp_path, COCO, lines)
    args = ["--predictions", str(preds), "--references", str(refs), "--output", str(tmp_path / "m.json")]
    assert eval_main([*args, "--no-meteor"]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "m.json").exists()


def test_karpathy_references_by_imgid_and_filename_within_the_split(tmp_path, capsys):
    dataset = SHARED_DATA / "captions" / "ucm" / "dataset.json"
    if not dataset.is_file():
        pytest.skip(f"UCM Karpathy file {dataset} is absent (shared sample data not checked out)")
    images = json.loads(dataset.read_text())["images"]
    test_images = [img for img in images if img["split"] == "test"][:3]
    lines = [{"image_id": test_images[0]["imgid"], "caption": "a piece of farmland"}]
    lines += [{"image_id": img["filename"], "caption": "many buildings and trees"} for img in test_images[1:]]
    preds = tmp_path / "preds.jsonl"
    preds.write_text("\n".join(json.dumps(x) for x in lines))
    out = tmp_path / "metrics.json"
    base = ["--predictions", str(preds), "--references", str(dataset), "--output", str(out), "--no-meteor"]
    assert eval_main([*base, "--split", "test"]) == 0
    scores = json.loads(out.read_text())
    direct = CaptionMetrics(meteor=False)
    direct.update([x["caption"] for x in lines], [[s["raw"] for s in img["sentences"]] for img in test_images])
    assert scores == {k: float(v) for k, v in direct.compute().items()}

    train_image = next(img for img in images if img["split"] == "train")
    preds.write_text(json.dumps({"image_id": train_image["filename"], "caption": "x"}) + "\n")
    assert eval_main([*base, "--split", "test"]) == 1
    assert f"image {train_image['filename']!r} has no reference (split 'test')" in capsys.readouterr().err
    assert eval_main([*base, "--split", "all"]) == 0
