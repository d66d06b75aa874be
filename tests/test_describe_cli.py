"""`rsvlm describe` end to end on the tiny models, and batched describe() against one sequence at a time."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from rsvlm_zoo import build_model
from rsvlm_zoo.cli import main
from rsvlm_zoo.data.synthetic import generate_scene
from tests.unbatched import generate_one_at_a_time, recorded_generation_batches, split_generation_batch

HEIGHT, WIDTH = 120, 160
# Instance ids with gaps, listed out of order: regions are numbered in increasing id order.
RECTS = {200: (slice(90, 110), slice(10, 30)), 5: (slice(10, 40), slice(20, 60)), 9: (slice(50, 100), slice(80, 150))}
MASK_BOXES = [[20.0, 10.0, 60.0, 40.0], [80.0, 50.0, 150.0, 100.0], [10.0, 90.0, 30.0, 110.0]]  # ids 5, 9, 200
MASK_AREAS = [30 * 40, 50 * 70, 20 * 20]
BOXES = [[5, 5, 60, 50], [80, 40, 150, 110]]
TOKENS = "4"


@pytest.fixture
def scene_files(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)).save(tmp_path / "scene.png")
    ids = np.zeros((HEIGHT, WIDTH), np.uint8)
    for k, (rows, cols) in RECTS.items():
        ids[rows, cols] = k
    Image.fromarray(ids).save(tmp_path / "masks.png")
    (tmp_path / "boxes.json").write_text(json.dumps(BOXES))
    return tmp_path


def describe(scene_files, *extra: str, model: str = "aquila_plus_tiny", regions: str = "--masks") -> list[str]:
    source = {"--masks": "masks.png", "--boxes": "boxes.json", "--instances": "instances.json"}[regions]
    return [
        "describe",
        "--model",
        model,
        "--image",
        str(scene_files / "scene.png"),
        regions,
        str(scene_files / source),
        "--max-new-tokens",
        TOKENS,
        *extra,
    ]


def answer_lines(out: str) -> list[tuple[str, str]]:
    return [tuple(line.split(": ", 1)) for line in out.splitlines()]


def scene_image(scene_files) -> np.ndarray:
    return np.array(Image.open(scene_files / "scene.png").convert("RGB"))


# ---------------------------------------------------------------- the command


def test_mask_model_prints_one_line_per_region_and_writes_json(scene_files, capsys):
    out_json = scene_files / "out" / "answers.json"
    assert main(describe(scene_files, "--json", str(out_json))) == 0
    captured = capsys.readouterr()
    lines = answer_lines(captured.out)
    assert [name for name, _ in lines] == ["region1", "region2", "region3"]
    assert all(answer and "\n" not in answer for _, answer in lines)
    assert f"wrote {out_json}" in captured.err

    record = json.loads(out_json.read_text())
    assert record["image"] == str(scene_files / "scene.png")
    assert (record["width"], record["height"]) == (WIDTH, HEIGHT)
    assert record["model"] == "aquila_plus_tiny"
    assert record["regions_from"] == {"masks": str(scene_files / "masks.png")}
    assert record["task"] is None and record["prompt"] is None and record["max_new_tokens"] == int(TOKENS)
    assert [r["name"] for r in record["regions"]] == ["region1", "region2", "region3"]
    assert [r["box"] for r in record["regions"]] == MASK_BOXES
    assert [r["area"] for r in record["regions"]] == MASK_AREAS
    assert [" ".join(r["answer"].split()) for r in record["regions"]] == [answer for _, answer in lines]


def test_box_model_from_an_exported_directory_answers_as_the_model_does(scene_files, mgimm_export, capsys):
    model, export_dir = mgimm_export
    out_json = scene_files / "boxes_out.json"
    assert main(describe(scene_files, "--json", str(out_json), model=str(export_dir), regions="--boxes")) == 0
    lines = answer_lines(capsys.readouterr().out)
    expected = model.describe([scene_image(scene_files)], [BOXES], max_new_tokens=int(TOKENS), task="attributes")[0]
    assert lines == [(f"region{k}", " ".join(a.split())) for k, a in enumerate(expected, start=1)]
    record = json.loads(out_json.read_text())
    assert record["task"] == "attributes"  # the default for box models: one answer per box
    assert [r["box"] for r in record["regions"]] == [[float(v) for v in b] for b in BOXES]
    assert all("area" not in r for r in record["regions"])  # boxes have no mask area
    assert [r["answer"] for r in record["regions"]] == expected


def test_box_model_gets_the_tight_boxes_of_instance_masks(scene_files, mgimm_export, capsys):
    model, export_dir = mgimm_export
    assert main(describe(scene_files, model=str(export_dir))) == 0
    lines = answer_lines(capsys.readouterr().out)
    expected = model.describe([scene_image(scene_files)], [MASK_BOXES], max_new_tokens=int(TOKENS), task="attributes")
    assert lines == [(f"region{k}", " ".join(a.split())) for k, a in enumerate(expected[0], start=1)]


def test_description_task_prints_one_text_for_the_scene(scene_files, mgimm_export, capsys):
    model, export_dir = mgimm_export
    out_json = scene_files / "description.json"
    argv = describe(
        scene_files, "--task", "description", "--json", str(out_json), model=str(export_dir), regions="--boxes"
    )
    assert main(argv) == 0
    out = capsys.readouterr().out
    expected = model.describe([scene_image(scene_files)], [BOXES], max_new_tokens=int(TOKENS))[0]
    assert out.splitlines() == [" ".join(expected.split())]
    record = json.loads(out_json.read_text())
    assert record["task"] == "description" and record["description"] == expected
    assert len(record["regions"]) == 2 and all("answer" not in r for r in record["regions"])


def test_lightning_checkpoint_and_coco_instances(scene_files, mgimm_export, capsys):
    model, _ = mgimm_export
    checkpoint = {"state_dict": model.state_dict()}
    model.on_save_checkpoint(checkpoint)  # what Lightning's checkpoint hook writes: trimmed tensors + model config
    torch.save(checkpoint, scene_files / "run.ckpt")
    coco = {
        "images": [{"id": 1, "file_name": "scene.png", "width": WIDTH, "height": HEIGHT}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [20, 10, 40, 30], "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [80, 50, 70, 50], "iscrowd": 0},
        ],
        "categories": [{"id": 1, "name": "building"}],
    }
    (scene_files / "instances.json").write_text(json.dumps(coco))
    out_json = scene_files / "coco.json"
    argv = describe(scene_files, "--json", str(out_json), model=str(scene_files / "run.ckpt"), regions="--instances")
    assert main(argv) == 0
    lines = answer_lines(capsys.readouterr().out)
    expected = model.describe(
        [scene_image(scene_files)], [MASK_BOXES[:2]], max_new_tokens=int(TOKENS), task="attributes"
    )
    assert lines == [(f"region{k}", " ".join(a.split())) for k, a in enumerate(expected[0], start=1)]
    record = json.loads(out_json.read_text())
    assert [r["category"] for r in record["regions"]] == ["building", "building"]
    assert [r["box"] for r in record["regions"]] == MASK_BOXES[:2]


@pytest.mark.parametrize(
    ("argv_change", "message"),
    [
        ({"--image": "nope.png"}, "image file not found: {dir}/nope.png"),
        ({"--masks": "missing.png"}, "mask file not found: {dir}/missing.png"),
        ({"--masks": "small_masks.png"}, "{dir}/small_masks.png: masks are 40x30 but the image is 160x120"),
        ({"--masks": "empty_masks.png"}, "{dir}/empty_masks.png: holds no regions"),
        ({"--boxes": "bad_boxes.json"}, "{dir}/bad_boxes.json: box 1 is [3, 3, 1, 9]"),
        ({"--model": "aquila_plus_tyni"}, "Unknown model 'aquila_plus_tyni'; did you mean aquila_plus_tiny"),
        ({"--model": "runs/missing.ckpt"}, "model file not found: runs/missing.ckpt"),
        ({"--model": "{dir}/scene.png"}, "model file {dir}/scene.png: cannot be loaded"),
        ({"--model": "{dir}"}, "{dir} is not an exported model directory: config.json is missing"),
    ],
)
def test_unusable_inputs_exit_1_naming_the_file(scene_files, capsys, argv_change, message):
    Image.fromarray(np.ones((30, 40), np.uint8)).save(scene_files / "small_masks.png")
    Image.fromarray(np.zeros((HEIGHT, WIDTH), np.uint8)).save(scene_files / "empty_masks.png")
    (scene_files / "bad_boxes.json").write_text(json.dumps([[0, 0, 5, 5], [3, 3, 1, 9]]))
    args = {"--model": "aquila_plus_tiny", "--image": "scene.png", "--masks": "masks.png"}
    args = {k: v for k, v in args.items() if not (k == "--masks" and "--boxes" in argv_change)}
    args.update(argv_change)
    argv = ["describe"]
    for flag, value in args.items():
        value = value.format(dir=scene_files)
        argv += [flag, value if flag == "--model" else str(scene_files / value)]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert message.format(dir=scene_files) in captured.err
    assert captured.out == ""


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--boxes", "{dir}/boxes.json"], "not allowed with argument"),
        (["--max-new-tokens", "0"], "--max-new-tokens must be at least 1"),
        (["--task", "caption"], "invalid choice: 'caption'"),
        (["--task", "description"], "--task applies to box models only"),
    ],
)
def test_bad_argument_combinations_exit_2(scene_files, capsys, extra, message):
    argv = describe(scene_files, *(v.format(dir=scene_files) for v in extra))
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_missing_region_source_or_checkpoint_beside_a_model_path_exit_2(scene_files, mgimm_export, capsys):
    _, export_dir = mgimm_export
    assert main(["describe", "--model", "mgimm_tiny", "--image", str(scene_files / "scene.png")]) == 2
    assert "one of the arguments --masks --instances --boxes is required" in capsys.readouterr().err
    argv = describe(scene_files, "--checkpoint", str(export_dir), model=str(export_dir))
    assert main(argv) == 2
    assert "--checkpoint and --pretrained go with a registered model name" in capsys.readouterr().err


# ---------------------------------------------------------------- batching must not change greedy answers


def two_scenes() -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    """Two scenes of other sizes with 2 and 4 objects, so the prompts differ in length (left padding)."""
    image_a, objects_a = generate_scene(0, side=96, min_objects=2, max_objects=2)
    image_b, objects_b = generate_scene(1, side=128, min_objects=4, max_objects=4)
    return [image_a, image_b], [[o.mask for o in objects_a], [o.mask for o in objects_b]]


def test_batched_describe_answers_as_one_sequence_at_a_time_with_left_padding():
    torch.manual_seed(0)
    model = build_model("aquila_plus_tiny").eval()
    images, masks = two_scenes()
    with recorded_generation_batches(model) as recorded:  # the whole-prompt path: one left-padded batch
        batched = model.describe(images, masks, max_new_tokens=8, reuse_prefix=False)
    (batch,) = recorded
    lengths = batch["attention_mask"].sum(1)
    assert lengths.min() < lengths.max()  # the batch is left-padded: the check means something
    singles = split_generation_batch(batch)
    assert [one["input_ids"].shape[1] for one in singles] == lengths.tolist()
    assert [one["region_masks"].shape[0] for one in singles] == [3, 3, 5, 5, 5, 5]  # every region + the one asked
    assert generate_one_at_a_time(model, batch, max_new_tokens=8) == [a for group in batched for a in group]

    # The random model may answer many regions alike; the next-token logits show that padding changes nothing.
    with torch.no_grad():
        padded = model.llm.model(inputs_embeds=model.inputs_embeds(batch), attention_mask=batch["attention_mask"])
        for j, one in enumerate(singles):
            alone = model.llm.model(inputs_embeds=model.inputs_embeds(one), attention_mask=one["attention_mask"])
            torch.testing.assert_close(alone.logits[0, -1], padded.logits[j, -1], rtol=1e-5, atol=1e-5)


def test_box_model_answers_alike_batched_or_one_describe_call_per_image_or_box():
    torch.manual_seed(0)
    model = build_model("mgimm_tiny").eval()
    images, masks = two_scenes()
    boxes = [[tuple(float(v) for v in _tight_box(m)) for m in group] for group in masks]
    with recorded_generation_batches(model) as recorded:
        descriptions = model.describe(images, boxes, max_new_tokens=8)
    lengths = recorded[0]["attention_mask"].sum(1)
    assert lengths.min() < lengths.max()  # 2 and 4 boxes: prompts of different lengths
    assert descriptions == [model.describe([im], [b], max_new_tokens=8)[0] for im, b in zip(images, boxes, strict=True)]
    attributes = model.describe(images, boxes, max_new_tokens=8, task="attributes")
    one_by_one = [
        [model.describe([im], [[box]], max_new_tokens=8, task="attributes")[0][0] for box in group]
        for im, group in zip(images, boxes, strict=True)
    ]
    assert attributes == one_by_one


def _tight_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
