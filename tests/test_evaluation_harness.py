"""Evaluation harnesses end to end on the tiny models: written predictions and metrics match a direct computation."""

import json

import lightning as L
import pytest
import torch

from rsvlm_zoo import build_model
from rsvlm_zoo.cli import main as rsvlm
from rsvlm_zoo.datamodules import RegionDataModule, SyntheticSource
from rsvlm_zoo.evaluation import EvaluationWriter
from rsvlm_zoo.metrics import CaptionMetrics, SemanticIoU, SemanticSimilarity
from tests.conftest import RECIPES


def run_test(
    tmp_path, model_name: str, metrics: list[str], source: SyntheticSource, max_new_tokens: int = 8, answer=None
):
    torch.manual_seed(0)
    model = build_model(model_name, eval_metrics=metrics, max_new_tokens=max_new_tokens)
    if answer is not None:  # answers chosen by the test (an untrained model's score 0 on every metric)
        model.generate = lambda batch, **kwargs: [answer(refs[0]) for refs in batch["references"]]
    data = RegionDataModule(test=source, eval_batch_size=4, max_length=320)
    writer = EvaluationWriter(str(tmp_path / "eval"))
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, callbacks=[writer])
    trainer.test(model, data)
    out = tmp_path / "eval"
    rows = [json.loads(line) for line in (out / "predictions_regions.jsonl").read_text().splitlines()]
    return rows, json.loads((out / "metrics.json").read_text())["regions"], (out / "metrics.md").read_text()


def test_region_captioning_harness_writes_predictions_and_the_caption_suite(tmp_path):
    source = SyntheticSource(3, seed=1, one_question_per_sample=True)
    rows, metrics, table = run_test(tmp_path, "aquila_plus_tiny", ["caption"], source)
    assert len(rows) == len(source)
    assert {r["sample_id"] for r in rows} == {source[i].sample_id for i in range(len(source))}
    assert all(r["prompt"].count("<image>") == 1 and "<mask>" in r["prompt"] for r in rows)
    assert all(r["references"] == [source[i].meta["answer"]] for i, r in enumerate(sorted_like(rows, source)))
    direct = CaptionMetrics()
    direct.update([r["answer"] for r in rows], [r["references"] for r in rows])
    expected = {k: float(v) for k, v in direct.compute().items()}
    assert metrics.keys() == expected.keys() >= {"Bleu_4", "METEOR", "ROUGE_L", "CIDEr"}
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, abs=1e-9), key
    assert table.startswith("| set |") and "| regions |" in table and "CIDEr" in table


def sorted_like(rows, source):
    order = {source[i].sample_id: i for i in range(len(source))}
    return sorted(rows, key=lambda r: order[r["sample_id"]])


def test_referring_classification_harness_scores_semantic_similarity_and_iou(tmp_path):
    source = SyntheticSource(2, seed=2, one_question_per_sample=True)
    rows, metrics, _ = run_test(tmp_path, "aquila_plus_tiny", ["semantic_similarity", "semantic_iou"], source)
    preds, refs = [r["answer"] for r in rows], [r["references"] for r in rows]
    sim, iou = SemanticSimilarity(), SemanticIoU()
    sim.update(preds, refs)
    iou.update(preds, refs)
    assert metrics["semantic_similarity"] == pytest.approx(float(sim.compute()), abs=1e-6)
    assert metrics["semantic_iou"] == pytest.approx(float(iou.compute()), abs=1e-9)


def test_detailed_description_harness_on_mgimm(tmp_path):
    source = SyntheticSource(3, seed=1, task="description")
    rows, metrics, _ = run_test(tmp_path, "mgimm_tiny", ["caption"], source, max_new_tokens=12)
    assert len(rows) == 3 and all(r["references"][0].startswith("there are") for r in rows)
    direct = CaptionMetrics()
    direct.update([r["answer"] for r in rows], [r["references"] for r in rows])
    assert metrics["CIDEr"] == pytest.approx(float(direct.compute()["CIDEr"]), abs=1e-9)


def test_rsvlm_predict_and_test_write_their_files(tmp_path):
    common = [
        "-c",
        str(RECIPES / "tiny" / "aquila_plus.yaml"),
        "--data.init_args.val.init_args.num_scenes=2",
        "--data.init_args.mask_control=false",
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.enable_progress_bar=false",
    ]
    rsvlm(["predict", *common])
    rows = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    n = len(SyntheticSource(2, seed=1, one_question_per_sample=True))
    assert len(rows) == n
    assert set(rows[0]) == {"sample_id", "eval_set", "prompt", "answer", "references"}

    rsvlm(["test", *common])
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["regions"].keys() == {"exact_match"}
    assert len((tmp_path / "eval" / "predictions_regions.jsonl").read_text().splitlines()) == n

    # `rsvlm eval` reads both files back with the references they carry: the numbers of the run's metrics.json.
    out = tmp_path / "rescored.json"
    for written in ("eval/predictions_regions.jsonl", "predictions.jsonl"):
        assert (
            rsvlm(["eval", "--predictions", str(tmp_path / written), "--metrics", "exact_match", "--output", str(out)])
            == 0
        )
        assert json.loads(out.read_text()) == json.loads((tmp_path / "eval" / "metrics.json").read_text())


def test_rsvlm_eval_rescores_a_test_run_exactly(tmp_path):
    source = SyntheticSource(6, seed=1, one_question_per_sample=True)

    def answer(reference: str) -> str:  # some answers exact, others with their last word changed
        words = reference.split()
        return reference if len(words) % 2 else " ".join([*words[:-1], "thing"])

    rows, metrics, _ = run_test(
        tmp_path, "aquila_plus_tiny", ["exact_match", "caption", "cider"], source, answer=answer
    )
    assert 0 < metrics["exact_match"] < 1 and 0 < metrics["CIDEr"] and 0 < metrics["METEOR"] < 1
    out = tmp_path / "rescored.json"
    argv = ["eval", "--predictions", str(tmp_path / "eval" / "predictions_regions.jsonl"), "--output", str(out)]
    assert rsvlm([*argv, "--metrics", "exact_match,caption,cider"]) == 0
    assert json.loads(out.read_text()) == {"regions": metrics}


def test_rsvlm_eval_names_the_line_of_a_record_without_references(tmp_path, capsys):
    path = tmp_path / "predictions.jsonl"
    path.write_text(
        '{"sample_id": "a", "eval_set": "s", "prompt": "p", "answer": "x", "references": ["y"]}\n{"answer": "z"}\n'
    )
    assert rsvlm(["eval", "--predictions", str(path)]) == 1
    assert f"{path}:2: `references` must be a non-empty list of strings" in capsys.readouterr().err
    assert rsvlm(["eval", "--predictions", str(path), "--metrics", "exact_match,nope"]) == 2


def test_answer_metrics_are_one_collection_cloned_per_split_and_set():
    from torchmetrics import MetricCollection

    model = build_model("aquila_plus_tiny", eval_metrics=["exact_match", "semantic_iou"])
    assert isinstance(model.answer_metrics, MetricCollection)
    val, test = model.split_metrics("val", "dior.rsvg"), model.split_metrics("test", "dior.rsvg")
    assert val is not test and val is model.split_metrics("val", "dior.rsvg")
    assert (val.prefix, val.postfix, test.prefix) == ("val/", "_dior.rsvg", "test/")
    val.update(["a red car", "a ship"], [["a red car"], ["a blue ship"]])
    assert float(val.compute()["val/exact_match_dior.rsvg"]) == 0.5
    assert test["exact_match"].update_count == 0 and model.answer_metrics["exact_match"].update_count == 0
    assert "dior_rsvg" in model.val_metrics  # registered on the module: follows its device, gathers over processes
