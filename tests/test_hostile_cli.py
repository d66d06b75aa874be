"""Hostile inputs to `rsvlm eval|describe|visualize|export|data check`: exit 1 with one line naming file and reason.

Each case runs the command through `rsvlm_zoo.cli.main` (one subprocess case checks the real process) and asserts
the exit status, the message on stderr (`rsvlm <cmd>: ...` naming the file, the record and the reason) and that
no traceback was printed. Argument errors caught by argparse (`--scale nan`) keep argparse's status 2.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from rsvlm_zoo.cli import main, scene_inputs
from rsvlm_zoo.cli.eval import finite_or_none, format_table

HEIGHT, WIDTH = 120, 160
CONFIG_HEAD = {"format": "rsvlm_zoo.export", "version": 1, "adapter": False, "merged": False}


def run(argv: list[str], capsys) -> tuple[int, str]:
    """Exit status and stderr of `rsvlm ARGV`, after checking stderr is one line without a traceback."""
    code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if code == 1:
        lines = [line for line in err.splitlines() if line.startswith("rsvlm ")]
        assert len(lines) == 1, err
        assert lines[0].startswith(f"rsvlm {argv[0]}"), err
    return code, err


@pytest.fixture
def scene(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)).save(tmp_path / "scene.png")
    ids = np.zeros((HEIGHT, WIDTH), np.uint8)
    ids[10:40, 20:60] = 1
    ids[50:100, 80:150] = 2
    Image.fromarray(ids).save(tmp_path / "masks.png")
    (tmp_path / "boxes.json").write_text(json.dumps([[5, 5, 60, 50], [80, 40, 150, 110]]))
    (tmp_path / "text.ckpt").write_text("hello, I am not a checkpoint\n")
    return tmp_path


# ---------------------------------------------------------------- rsvlm eval


@pytest.fixture
def captions(tmp_path) -> tuple[Path, Path]:
    refs = {
        "images": [{"id": 1, "file_name": "a.jpg"}],
        "annotations": [{"image_id": 1, "caption": "a plane on a runway"}],
    }
    (tmp_path / "refs.json").write_text(json.dumps(refs))
    (tmp_path / "preds.jsonl").write_text(json.dumps({"image_id": 1, "caption": "a plane"}) + "\n")
    return tmp_path / "preds.jsonl", tmp_path / "refs.json"


def eval_args(preds: Path, refs: Path, *extra: str) -> list[str]:
    return ["eval", "--predictions", str(preds), "--references", str(refs), "--no-meteor", *extra]


@pytest.mark.parametrize("which", ["predictions", "references"])
def test_eval_non_utf8_input_names_the_file_and_the_byte(captions, capsys, which):
    preds, refs = captions
    bad = preds if which == "predictions" else refs
    raw = bad.read_bytes()
    bad.write_bytes(raw[:7] + b"\xff" + raw[7:])
    code, err = run(eval_args(preds, refs), capsys)
    assert code == 1
    assert f"{bad}: byte 0xff at offset 7 (line 1, column 8) is not UTF-8" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        (json.dumps({"images": [{"imgid": 1, "split": "test", "sentences": [1, 2]}]}), "sentences[0] has no raw"),
        (json.dumps({"annotations": [{"image_id": 1, "caption": "x"}], "images": 5}), "not a usable references"),
    ],
)
def test_eval_malformed_references_name_the_file(captions, capsys, content, message):
    preds, refs = captions
    refs.write_text(content)
    code, err = run(eval_args(preds, refs), capsys)
    assert code == 1 and str(refs) in err and message in err


def test_eval_deeply_nested_prediction_line_and_output_directory(captions, capsys, tmp_path):
    preds, refs = captions
    preds.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    code, err = run(eval_args(preds, refs), capsys)
    assert code == 1 and str(preds) in err
    code, err = run(eval_args(*captions, "--output", str(tmp_path)), capsys)
    assert code == 1 and f"--output {tmp_path} is a directory" in err


def test_eval_undefined_scores_are_null_in_strict_json():
    assert finite_or_none(0.25) == 0.25
    assert finite_or_none(float("nan")) is None and finite_or_none(torch.tensor(math.inf)) is None
    scores = {"CIDEr": finite_or_none(float("nan")), "Bleu_1": 0.5}
    assert json.loads(json.dumps(scores, allow_nan=False)) == {"CIDEr": None, "Bleu_1": 0.5}
    assert "n/a" in format_table(scores, 1)


# ---------------------------------------------------------------- files that are no checkpoint


def test_describe_model_that_is_a_text_file(scene, capsys):
    argv = ["describe", "--model", str(scene / "text.ckpt"), "--image", str(scene / "scene.png")]
    code, err = run([*argv, "--masks", str(scene / "masks.png")], capsys)
    assert code == 1
    assert f"model file {scene / 'text.ckpt'}: cannot be loaded: it is not a Lightning checkpoint" in err
    assert "b'hello, I am not " in err


def test_describe_checkpoint_that_is_a_text_file_fails_before_building(scene, capsys, monkeypatch):
    monkeypatch.setattr("rsvlm_zoo.registry.build_model", lambda *a, **k: pytest.fail("model built"))
    argv = ["describe", "--model", "aquila_plus_tiny", "--checkpoint", str(scene / "text.ckpt")]
    code, err = run([*argv, "--image", str(scene / "scene.png"), "--masks", str(scene / "masks.png")], capsys)
    assert code == 1 and f"{scene / 'text.ckpt'}: cannot be loaded: it is not a Lightning checkpoint" in err


def test_visualize_checkpoint_that_is_a_text_file(scene, capsys, monkeypatch):
    monkeypatch.setattr("rsvlm_zoo.build_model", lambda *a, **k: pytest.fail("model built"))
    argv = ["visualize", "--image", str(scene / "scene.png"), "--masks", str(scene / "masks.png")]
    argv += ["--model", "aquila_plus_tiny", "--checkpoint", str(scene / "text.ckpt"), "--out", str(scene / "f.png")]
    code, err = run(argv, capsys)
    assert code == 1 and f"{scene / 'text.ckpt'}: cannot be loaded: it is not a Lightning checkpoint" in err
    assert not (scene / "f.png").exists()


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (lambda p: p.write_text("hello"), "it starts with b'hello'"),
        (lambda p: p.write_bytes(b""), "an empty file"),
        (lambda p: p.write_bytes(b"PK\x03\x04 truncated"), "not the zip archive torch.save writes"),
        (lambda p: torch.save({"rsvlm_zoo_model_config": [1, 2]}, p), "model config must be a dict"),
        (lambda p: torch.save({"state_dict": {}}, p), "carries no model config"),
    ],
)
def test_export_checkpoint_of_another_kind(tmp_path, capsys, write, message):
    ckpt = tmp_path / "run.ckpt"
    write(ckpt)
    code, err = run(["export", "--model", str(ckpt), "--out", str(tmp_path / "out")], capsys)
    assert code == 1 and str(ckpt) in err and message in err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- malformed exported config.json


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ([1, 2, 3], "must hold a JSON object, not a list"),
        (CONFIG_HEAD, "key 'model' is missing"),
        ({**CONFIG_HEAD, "model": [1]}, "key 'model' is a list"),
        ({**CONFIG_HEAD, "model": {"class_path": "rsvlm_zoo.models.AquilaPlus"}}, "key 'model.init_args' is missing"),
        ({**CONFIG_HEAD, "model": {"init_args": {}}}, "key 'model.class_path' is missing"),
        ({**CONFIG_HEAD, "version": "1"}, "'version' must be an integer"),
        ({**CONFIG_HEAD, "merged": True, "model": {"class_path": "x", "init_args": {}}}, "model.init_args.llm"),
    ],
)
@pytest.mark.parametrize("command", ["describe", "export"])
def test_malformed_export_config_names_the_file_and_key(scene, capsys, config, message, command):
    export_dir = scene / "export"
    export_dir.mkdir()
    (export_dir / "config.json").write_text(json.dumps(config))
    if command == "describe":
        argv = ["describe", "--model", str(export_dir), "--image", str(scene / "scene.png")]
        argv += ["--masks", str(scene / "masks.png")]
    else:
        argv = ["export", "--model", str(export_dir), "--out", str(scene / "out")]
    code, err = run(argv, capsys)
    assert code == 1 and f"{export_dir / 'config.json'}" in err and message in err


def test_export_config_not_utf8_or_nested_too_deeply(scene, capsys):
    export_dir = scene / "export"
    export_dir.mkdir()
    for content, message in ((b'{"format": "\xff"}', "is not UTF-8 (byte offset 12)"), (b"[" * 100_000, "deeply")):
        (export_dir / "config.json").write_bytes(content)
        code, err = run(["export", "--model", str(export_dir), "--out", str(scene / "out")], capsys)
        assert code == 1 and str(export_dir / "config.json") in err and message in err


# ---------------------------------------------------------------- visualize --out and --scale


def visualize_args(scene: Path, *extra: str) -> list[str]:
    return ["visualize", "--image", str(scene / "scene.png"), "--masks", str(scene / "masks.png"), *extra]


def test_visualize_out_is_a_directory(scene, capsys):
    code, err = run(visualize_args(scene, "--out", str(scene)), capsys)
    assert code == 1 and f"--out {scene} is a directory" in err


def test_visualize_out_without_a_known_image_suffix(scene, capsys):
    code, err = run(visualize_args(scene, "--out", str(scene / "figure.unknown")), capsys)
    assert code == 1 and f"cannot write {scene / 'figure.unknown'}" in err


@pytest.mark.parametrize("scale", ["nan", "-1", "inf", "0", "1e9", "big"])
def test_visualize_scale_must_be_positive_and_finite(scene, capsys, scale):
    code, err = run(visualize_args(scene, "--scale", scale, "--out", str(scene / "f.png")), capsys)
    assert code == 2  # argparse's status for a bad argument
    assert "rsvlm visualize: error: argument --scale:" in err and repr(scale) in err
    assert not (scene / "f.png").exists()


# ---------------------------------------------------------------- data check options and unreadable sources


def test_data_check_refuses_an_unknown_encoding_errors_value(scene, capsys):
    (scene / "ann.json").write_text("[]")
    code, err = run(["data", "check", "osprey", str(scene / "ann.json"), "--option", "encoding_errors=bogus"], capsys)
    assert code == 1
    assert "--option encoding_errors='bogus' is not allowed; allowed values: strict, replace" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "annotation file not found"),
        (b'[{"id": "\xff"}]', "is not UTF-8"),
        (b"[" * 100_000, ""),
    ],
)
def test_data_check_unreadable_source_exits_1(scene, capsys, content, message):
    path = scene / "ann.json"
    if content is not None:
        path.write_bytes(content)
    code, err = run(["data", "check", "osprey", str(path)], capsys)
    assert code == 1 and str(path) in err and message in err


def test_data_check_option_values_nested_too_deeply_are_strings(scene, capsys):
    (scene / "ann.json").write_text("[]")
    code, err = run(["data", "check", "osprey", str(scene / "ann.json"), "--option", "split_by=" + "[" * 5000], capsys)
    assert code == 1 and "split_by" in err  # an unknown option, reported, not a RecursionError


# ---------------------------------------------------------------- describe --boxes and --masks


@pytest.mark.parametrize(
    ("boxes", "message"),
    [
        ("[[0, 0, 5, 5], [0, 0, Infinity, 5]]", "Infinity is not a JSON number"),
        ("[[NaN, 0, 5, 5]]", "NaN is not a JSON number"),
        ("[[0, 0, 5, 5], [0, 0, 1e300, 5]]", "box 1: box has x coordinate 1e+300, far outside"),
        ("[[0, 0, 5, 5], [0, 0, 1e999, 5]]", "box 1: box [0.0, 0.0, inf, 5.0] holds NaN or infinite values"),
        ("[[50, 0, 10, 5]]", "box 0 is [50, 0, 10, 5]; boxes are [x1, y1, x2, y2] with x2 > x1"),
        ("[[0, 0, 5, 5], [0, 0, 5, 900]]", "box 1: box has y coordinate 900, far outside the image's y extent 120"),
        ("[[0, 0, 5, true]]", "box 0 is [0, 0, 5, True]"),
        ("[" * 100_000, "nested too deeply"),
        ('{"boxes": []}', "expected a JSON list"),
    ],
)
def test_describe_refuses_bad_boxes_before_building_the_model(scene, capsys, monkeypatch, boxes, message):
    monkeypatch.setattr("rsvlm_zoo.cli.describe.load_model", lambda *a: pytest.fail("model built"))
    (scene / "bad.json").write_text(boxes)
    argv = ["describe", "--model", "aquila_plus_tiny", "--image", str(scene / "scene.png")]
    code, err = run([*argv, "--boxes", str(scene / "bad.json")], capsys)
    assert code == 1 and str(scene / "bad.json") in err
    assert message in err


def test_mask_png_with_65535_ids_is_refused_quickly_and_small(scene, capsys):
    side = 256
    ids = np.arange(side * side, dtype=np.uint16).reshape(side, side)  # ids 0..65535, one per pixel
    Image.fromarray(np.full((side, side, 3), 128, np.uint8)).save(scene / "big.png")
    Image.fromarray(ids).save(scene / "ids.png")
    assert np.asarray(Image.open(scene / "ids.png")).max() == 65535
    tracemalloc.start()
    start = time.perf_counter()
    try:
        argv = ["visualize", "--image", str(scene / "big.png"), "--masks", str(scene / "ids.png")]
        code, err = run([*argv, "--out", str(scene / "f.png")], capsys)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 10
    assert peak < 64 * 2**20  # the old code built 65,535 masks of 64 KiB each (4 GiB)
    assert code == 1
    assert f"{scene / 'ids.png'}: holds 65535 region ids, more than the {scene_inputs.MAX_REGIONS} allowed" in err


def test_masks_over_the_byte_budget_or_of_several_channels(scene, capsys, monkeypatch):
    monkeypatch.setattr(scene_inputs, "MAX_MASK_BYTES", WIDTH * HEIGHT)  # room for one mask, the file has two
    argv = ["describe", "--model", "aquila_plus_tiny", "--image", str(scene / "scene.png")]
    code, err = run([*argv, "--masks", str(scene / "masks.png")], capsys)
    assert code == 1 and f"{scene / 'masks.png'}: 2 regions of 160x120 need 0 MiB of masks, more than" in err
    Image.fromarray(np.zeros((HEIGHT, WIDTH, 3), np.uint8)).save(scene / "rgb.png")
    code, err = run([*argv, "--masks", str(scene / "rgb.png")], capsys)
    assert code == 1 and "must have one channel" in err and "mode RGB with 3 channels" in err


class FakeBoxModel:
    def eval(self):
        return self

    def to(self, device):
        return self

    def input_spec(self):
        return SimpleNamespace(region_kind="box")

    def describe(self, images, regions, prompt=None, max_new_tokens=None, task=None):
        return [[f"box {k}" for k, _ in enumerate(regions[0])]]


def test_describe_json_output_is_strict_json(scene, capsys, monkeypatch):
    monkeypatch.setattr("rsvlm_zoo.cli.describe.load_model", lambda *a: FakeBoxModel())
    out = scene / "answers.json"
    argv = ["describe", "--model", "fake", "--image", str(scene / "scene.png"), "--boxes", str(scene / "boxes.json")]
    code, err = run([*argv, "--json", str(out)], capsys)
    assert code == 0, err

    def refuse(name):
        raise AssertionError(f"{name} in strict JSON output")

    record = json.loads(out.read_text(), parse_constant=refuse)
    assert [r["answer"] for r in record["regions"]] == ["box 0", "box 1"]
    code, err = run([*argv, "--json", str(scene)], capsys)
    assert code == 1 and f"--json {scene} is a directory" in err


# ---------------------------------------------------------------- the real process


def test_the_rsvlm_process_exits_1_without_a_traceback(scene):
    argv = ["export", "--model", str(scene / "text.ckpt"), "--out", str(scene / "out")]
    proc = subprocess.run(
        [sys.executable, "-c", "from rsvlm_zoo.cli import main; main()", *argv],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert f"rsvlm export: error: model file {scene / 'text.ckpt'}: cannot be loaded" in proc.stderr
