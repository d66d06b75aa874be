"""`rsvlm describe --images`: every scene of a COCO file, streamed to JSONL as answered, resumable; progress bars."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from rsvlm_zoo.cli import main
from rsvlm_zoo.progress import PROGRESS_ENV, progress_disabled

SIZE = 96
BOXES = {"a.png": [[4, 4, 40, 30]], "b.png": [[10, 20, 60, 70], [50, 5, 90, 40]], "c.png": [[30, 30, 80, 90]]}


@pytest.fixture
def dataset(tmp_path):
    """Three scenes (and one without regions) in a folder, with their COCO instances file."""
    rng = np.random.default_rng(0)
    images = tmp_path / "images"
    images.mkdir()
    records, annotations = [], []
    for i, name in enumerate([*BOXES, "empty.png"], start=1):
        Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)).save(images / name)
        records.append({"id": i, "file_name": name, "width": SIZE, "height": SIZE})
        for x1, y1, x2, y2 in BOXES.get(name, []):
            box = [x1, y1, x2 - x1, y2 - y1]
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": 1, "bbox": box})
    coco = {"images": records, "annotations": annotations, "categories": [{"id": 1, "name": "ship"}]}
    (tmp_path / "instances.json").write_text(json.dumps(coco))
    return tmp_path


def many(dataset, model: str, *extra: str) -> list[str]:
    return [
        "describe",
        "--model",
        model,
        "--instances",
        str(dataset / "instances.json"),
        "--images",
        str(dataset / "images"),
        "--max-new-tokens",
        "3",
        *extra,
    ]


def test_every_scene_is_answered_as_describe_does_and_each_line_is_kept_as_it_is_answered(
    dataset, mgimm_export, capsys, monkeypatch
):
    model, export_dir = mgimm_export
    path = str(export_dir)
    out = dataset / "out.jsonl"
    monkeypatch.setenv(PROGRESS_ENV, "1")
    assert main(many(dataset, path, "--jsonl", str(out))) == 0
    captured = capsys.readouterr()
    assert "describe: 100%" in captured.err and "3/3" in captured.err  # the bar over scenes
    assert "1 scene(s) without regions skipped (e.g. empty.png)" in captured.err
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["image"].rsplit("/", 1)[-1] for r in records] == list(BOXES)
    for record in records:
        name = record["image"].rsplit("/", 1)[-1]
        image = np.array(Image.open(dataset / "images" / name).convert("RGB"))
        expected = model.describe([image], [BOXES[name]], max_new_tokens=3, task="attributes")[0]
        assert [r["answer"] for r in record["regions"]] == list(expected)
        assert [r["box"] for r in record["regions"]] == BOXES[name]
    assert sum(line.startswith("b.png region") for line in captured.out.splitlines()) == 2


def test_an_existing_output_is_kept_and_resume_answers_only_the_scenes_it_lacks(dataset, mgimm_export, capsys):
    path = str(mgimm_export[1])
    out = dataset / "out.jsonl"
    assert main(many(dataset, path, "--jsonl", str(out))) == 0
    first = out.read_text().splitlines()
    out.write_text("\n".join(first[:1]) + "\n")  # a run stopped after its first scene
    assert main(many(dataset, path, "--jsonl", str(out))) == 1
    assert "exists and is kept; pass --resume" in capsys.readouterr().err
    assert out.read_text().splitlines() == first[:1]
    assert main(many(dataset, path, "--jsonl", str(out), "--resume")) == 0
    assert "1 scene(s) already described, skipped" in capsys.readouterr().err
    assert out.read_text().splitlines() == first
    out.write_text(first[0] + "\n" + first[1][:20])  # an incomplete last line
    assert main(many(dataset, path, "--jsonl", str(out), "--resume")) == 1
    assert "line 2 is not a record of rsvlm describe" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--image", "x.png", "--jsonl", "o.jsonl"], "give exactly one of --image (one scene) or --images DIR"),
        (["--json", "o.json"], "many scenes are written to --jsonl"),
    ],
)
def test_mixing_one_scene_and_many_scene_flags_exits_2(dataset, capsys, extra, message):
    assert main(many(dataset, "mgimm_tiny", *extra)) == 2
    assert message in capsys.readouterr().err


def test_progress_variable_forces_hides_or_is_refused(monkeypatch):
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    assert progress_disabled() is None
    monkeypatch.setenv(PROGRESS_ENV, "0")
    assert progress_disabled() is True
    monkeypatch.setenv(PROGRESS_ENV, "yes")
    with pytest.raises(ValueError, match="RSVLM_ZOO_PROGRESS='yes': use 1"):
        progress_disabled()


def test_data_check_and_eval_show_progress_when_asked(dataset, capsys, monkeypatch):
    monkeypatch.setenv(PROGRESS_ENV, "1")
    assert main(["data", "check", "coco", str(dataset / "instances.json"), "--images", str(dataset / "images")]) == 0
    assert "check instances.json: 100%" in capsys.readouterr().err
    predictions = dataset / "p.jsonl"
    predictions.write_text('{"sample_id": "s1", "answer": "[1, 1, 9, 9]"}\n')
    references = dataset / "r.json"
    references.write_text('[{"sample_id": "s1", "width": 10, "height": 10, "box": [1, 1, 9, 9]}]')
    argv = ["eval", "--task", "grounding", "--box-format", "pixels"]
    argv += ["--predictions", str(predictions), "--references", str(references), "--output", str(dataset / "s.json")]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "eval: 100%" in err and "3/3" in err
