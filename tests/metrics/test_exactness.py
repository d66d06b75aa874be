"""The metrics equal pycocoevalcap's scorers: BLEU/ROUGE-L/CIDEr within 1e-9, METEOR exactly."""

from __future__ import annotations

import random

import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import my_lcs

from rsvlm_zoo.metrics import BLEU, ROUGEL, CaptionMetrics, CIDEr
from rsvlm_zoo.metrics.bleu_scorer import bleu_sample_stats, corpus_bleu
from rsvlm_zoo.metrics.cider_scorer import cider_d
from rsvlm_zoo.metrics.meteor_scorer import MeteorScorer, distinct_refs
from rsvlm_zoo.metrics.ngrams import NgramCache
from rsvlm_zoo.metrics.rouge_scorer import lcs_length
from rsvlm_zoo.metrics.suite import tokenize_corpus
from tests.metrics.conftest import rsicd_sets
from tests.metrics.pyco_reference import PycoSuite, assert_matches, pyco_tokenize


@pytest.fixture(scope="module")
def pyco():
    suite = PycoSuite()
    yield suite
    suite.close()


@pytest.fixture(scope="module")
def ours():
    metric = CaptionMetrics()
    yield metric
    metric.close()


def _score(metric: CaptionMetrics, preds, refs) -> dict[str, float]:
    metric.reset()
    metric.update(preds, refs)
    return {k: float(v) for k, v in metric.compute().items()}


def test_rsicd_test_split_matches_pycocoevalcap(ours, pyco):
    preds, refs = rsicd_sets()
    gts, res = pyco_tokenize(preds, refs)
    hyps_tok, refs_tok = tokenize_corpus(preds, refs, "ptb")
    assert hyps_tok == [res[i][0] for i in range(len(preds))]
    assert refs_tok == [gts[i] for i in range(len(preds))]
    got = _score(ours, preds, refs)
    assert list(got) == ["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr"]
    assert_matches(got, pyco.score_tokenized(gts, res))


EDGE_CASES = {
    "empty_prediction": (
        ["", "a plane is parked at the airport"],
        [
            ["many buildings and green trees", "buildings near trees"],
            ["a plane parked at an airport", "planes"],
        ],
    ),
    "prediction_longer_than_all_references": (
        [
            "a very long caption about a dense residential area with many buildings trees roads and cars and "
            "a river that flows past a bridge near a big stadium",
            "a bridge",
        ],
        [["a residential area", "dense houses"], ["a bridge over a river", "the bridge"]],
    ),
    "single_image": (
        ["two planes on the runway ."],
        [["Two planes are on the runway.", "a runway with planes"]],
    ),
    "unicode": (
        ["Café naïve — “quoted” 北京 façade, résumé", "ünïcödé straße"],
        [["cafe naive quoted beijing", "Café in 北京"], ["Straße with ünïcödé", "a street"]],
    ),
    "punctuation_only": (
        ["...", "?!", "a farmland ."],
        [["green farmland", "fields"], ["a lake", "blue water !"], ["a farmland", "farmlands , fields"]],
    ),
    "meteor_delimiter_and_newlines": (
        ["a ||| b  c", "line one\nline two"],
        [["a b c", "abc"], ["line one line two", "two lines"]],
    ),
}


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
def test_edge_cases_match_pycocoevalcap(case, ours, pyco):
    preds, refs = EDGE_CASES[case]
    assert_matches(_score(ours, preds, refs), pyco.score(preds, refs))


def test_single_image_cider_is_zero(ours):
    preds, refs = EDGE_CASES["single_image"]
    assert _score(ours, preds, refs)["CIDEr"] == 0.0


def test_pretokenized_text_without_java_matches_pycocoevalcap_scorers():
    rng = random.Random(0)
    vocab = "a an the plane planes runway green trees building buildings road river bridge many two".split()
    refs = [[" ".join(rng.choices(vocab, k=rng.randint(1, 12))) for _ in range(rng.randint(1, 5))] for _ in range(60)]
    preds = [" ".join(rng.choices(vocab, k=rng.randint(0, 14))) for _ in range(60)]
    gts = dict(enumerate(refs))
    res = {i: [p] for i, p in enumerate(preds)}
    metrics = {
        "bleu": BLEU(n=4, tokenizer="none"),
        "cider": CIDEr(tokenizer="none"),
        "rouge": ROUGEL(tokenizer="none"),
    }
    for m in metrics.values():
        m.update(preds, refs)
    assert abs(float(metrics["bleu"].compute()) - Bleu(4).compute_score(gts, res, verbose=0)[0][3]) <= 1e-12
    assert abs(float(metrics["cider"].compute()) - Cider().compute_score(gts, res)[0]) <= 1e-12
    from pycocoevalcap.rouge.rouge import Rouge

    assert abs(float(metrics["rouge"].compute()) - Rouge().compute_score(gts, res)[0]) <= 1e-12

    # per-sample CIDEr-D and BLEU statistics as well
    cook = NgramCache(4)
    hyp_c = [cook(p) for p in preds]
    ref_c = [[cook(r) for r in rs] for rs in refs]
    _, per_sample = cider_d(hyp_c, ref_c)
    _, expected = Cider().compute_score(gts, res)
    assert max(abs(a - b) for a, b in zip(per_sample, expected, strict=True)) <= 1e-12
    stats = [bleu_sample_stats(h, rs) for h, rs in zip(hyp_c, ref_c, strict=True)]
    assert corpus_bleu(stats) == Bleu(4).compute_score(gts, res, verbose=0)[0]


def test_bit_parallel_lcs_equals_dynamic_programming():
    rng = random.Random(1)
    for _ in range(500):
        a = rng.choices("abcde", k=rng.randint(0, 30))
        b = rng.choices("abcdef", k=rng.randint(0, 70))
        assert lcs_length(a, b) == my_lcs(a, b)


def test_distinct_refs_keeps_first_copies_in_order_and_leaves_pipes_alone():
    assert distinct_refs(["b a", "a", "b a", "c", "a"]) == ["b a", "a", "c"]
    assert distinct_refs(["a ||| b", "a ||| b"]) == ["a ||| b", "a ||| b"]
    assert distinct_refs(["x"]) == ["x"]


def test_meteor_dedupe_gives_every_segment_the_statistics_of_the_full_lines():
    preds, refs = rsicd_sets()
    hyps, tok_refs = tokenize_corpus(preds, refs, "ptb")
    # repeated segments, a reference repeated before and after a different one of the same score, and a pipe
    hyps += [hyps[0], "a plane", "a plane", "two | planes"]
    tok_refs += [tok_refs[0], ["a plane", "one plane", "a plane"], ["one plane", "a plane", "one plane"], ["a | b"] * 2]
    with MeteorScorer(dedupe=False) as full, MeteorScorer() as deduped:
        want = full.segment_stats(hyps, tok_refs)
        assert deduped.segment_stats(hyps, tok_refs) == want
        assert deduped.corpus_score(hyps, tok_refs) == full.corpus_score(hyps, tok_refs)
