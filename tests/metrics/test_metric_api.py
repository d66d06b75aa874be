"""torchmetrics conventions, Lightning use, clear errors for missing Java, CoreNLP jars and bad input."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from torchmetrics import MetricCollection

from rsvlm_zoo.metrics import (
    BLEU,
    METEOR,
    ROUGEL,
    SPICE,
    CaptionMetrics,
    CIDEr,
    JavaNotFoundError,
    SpiceModelsNotFoundError,
)
from rsvlm_zoo.metrics.meteor_scorer import MeteorScorer
from rsvlm_zoo.metrics.ptb import ptb_tokenize
from rsvlm_zoo.metrics.spice_scorer import CORENLP_JARS, SPICE_ENV

PREDS = ["a plane is parked at the airport", "many green trees near a river"]
REFS = [["a plane parked at an airport", "an airport with a plane"], ["green trees along a river", "a river"]]


def test_update_compute_reset_follow_torchmetrics():
    m = CIDEr(tokenizer="none")
    assert m.higher_is_better and not m.full_state_update
    m.update(PREDS[:1], REFS[:1])
    m.update(PREDS[1:], REFS[1:])
    first = float(m.compute())
    assert m.preds == PREDS and m.target == REFS
    m.reset()
    assert m.preds == [] and m.target == []
    m.update(PREDS, REFS)
    assert float(m.compute()) == first
    m.reset()
    with pytest.warns(UserWarning):
        assert float(m.compute()) == 0.0


def test_bad_input_is_a_clear_error():
    m = BLEU(tokenizer="none")
    with pytest.raises(ValueError, match="2 predictions but 1 reference lists"):
        m.update(PREDS, REFS[:1])
    with pytest.raises(ValueError, match="sample 0 has no reference"):
        m.update(["x"], [[]])
    with pytest.raises(ValueError, match="single string"):
        m.update("a caption", [["a caption"]])
    m.update(["a caption"], ["a caption"])  # a bare string is one reference
    assert m.target == [["a caption"]]
    with pytest.raises(ValueError, match="unknown tokenizer"):
        BLEU(tokenizer="spacy")


def test_metric_collection_device_moves_copies_and_pickling():
    collection = MetricCollection(
        {
            "bleu": BLEU(tokenizer="none"),
            "rouge": ROUGEL(tokenizer="none"),
            "suite": CaptionMetrics(meteor=False, tokenizer="none"),
        }
    )
    collection = collection.to("cpu").double()
    collection.update(PREDS, REFS)
    out = collection.compute()
    assert set(out) == {"bleu", "rouge", "Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "ROUGE_L", "CIDEr"}
    assert float(out["bleu"]) == float(out["Bleu_4"]) and float(out["rouge"]) == float(out["ROUGE_L"])
    clone = pickle.loads(pickle.dumps(collection["suite"]))
    assert clone.preds == PREDS and float(clone.compute()["CIDEr"]) == float(out["CIDEr"])


def test_meteor_metric_keeps_one_jvm_and_copies_do_not_share_it():
    full = METEOR(paraphrase="full")
    full.update(PREDS, REFS)
    assert full._meteor.running  # the full table loads for seconds: started at the first update
    full.close()
    m = METEOR()
    m.update(PREDS, REFS)
    first = float(m.compute())
    assert m._meteor.running
    process = m._meteor._jvm._proc
    m.reset()
    m.update(PREDS, REFS)
    assert float(m.compute()) == first and m._meteor._jvm._proc is process  # same JVM across epochs
    copied = copy.deepcopy(m)
    assert not copied._meteor.running
    m.close()
    copied.close()
    assert not m._meteor.running


def test_meteor_jvm_failure_is_an_error_not_a_hang():
    with MeteorScorer(max_heap="1k") as scorer, pytest.raises(RuntimeError, match="METEOR"):
        scorer.corpus_score(["a plane"], [["a plane"]])


def test_lightning_validation_logs_the_metrics(tmp_path):
    import lightning as L

    class Module(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(1, 1)
            self.cider = CIDEr(tokenizer="none")
            self.suite = CaptionMetrics(meteor=False, tokenizer="none")

        def validation_step(self, batch, batch_idx):
            self.cider.update(PREDS, REFS)
            self.suite.update(PREDS, REFS)
            self.log("val/cider", self.cider, batch_size=len(PREDS))

        def on_validation_epoch_end(self):
            self.log_dict({f"val/{k}": v for k, v in self.suite.compute().items()})
            self.suite.reset()

    trainer = L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    loader = torch.utils.data.DataLoader(torch.zeros(3, 1), batch_size=1)
    (logged,) = trainer.validate(Module(), loader, verbose=False)
    direct = CIDEr(tokenizer="none")
    direct.update(PREDS * 3, REFS * 3)
    assert logged["val/cider"] == pytest.approx(float(direct.compute()), abs=1e-6)
    assert logged["val/CIDEr"] == pytest.approx(logged["val/cider"], abs=1e-6)


def test_missing_java_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    for make in (BLEU, METEOR, CaptionMetrics):
        with pytest.raises(JavaNotFoundError, match="apt-get install default-jre-headless"):
            make()
    m = BLEU(tokenizer="none")  # no Java needed for pre-tokenised BLEU / ROUGE-L / CIDEr
    m.update(PREDS, REFS)
    assert float(m.compute()) > 0


def test_spice_without_corenlp_jars_is_a_clear_error_and_never_downloads(monkeypatch, tmp_path):
    import urllib.request

    def no_download(*args, **kwargs):
        raise AssertionError("SPICE tried to download")

    monkeypatch.setattr(urllib.request, "urlretrieve", no_download)
    monkeypatch.delenv(SPICE_ENV, raising=False)
    with pytest.raises(SpiceModelsNotFoundError, match=SPICE_ENV) as info:
        SPICE()
    assert CORENLP_JARS[0] in str(info.value) and CORENLP_JARS[1] in str(info.value)
    (tmp_path / CORENLP_JARS[0]).write_bytes(b"")
    monkeypatch.setenv(SPICE_ENV, str(tmp_path))
    with pytest.raises(SpiceModelsNotFoundError, match=f"{CORENLP_JARS[1]} not in {tmp_path}"):
        SPICE()
    with pytest.raises(SpiceModelsNotFoundError):
        CaptionMetrics(spice=True, meteor=False)


def test_spice_with_a_corenlp_folder_runs_the_jar_from_there(tmp_path):
    for name in CORENLP_JARS:  # placeholders: the jar starts, then fails without CoreNLP's classes
        (tmp_path / name).write_bytes(b"")
    m = SPICE(corenlp_dir=tmp_path, tokenizer="none")
    assert m.corenlp_dir == str(tmp_path.resolve())
    m.update(PREDS, REFS)
    with pytest.raises(RuntimeError, match="edu.anu.spice.SpiceScorer"):
        m.compute()


def test_ptb_tokenizer_keeps_one_line_per_caption():
    assert ptb_tokenize(["A\rb", "c\u2028dog.", "", "(Hello), World!"]) == [
        "a b",
        "c dog",
        "",
        "-lrb- hello -rrb- world",
    ]
