"""The Python PTB path gives the jar's tokens: on the shipped corpora, a 40,000-word vocabulary and adversarial text."""

from __future__ import annotations

import json
import random
import re

import pytest

from rsvlm_zoo.metrics import ptb
from rsvlm_zoo.metrics.ptb_python import ASSIMILATIONS, NEGATIONS, python_tokens
from tests.metrics.conftest import SHARED_DATA

ADVERSARIAL = [
    "",
    "   ",
    ".",
    " . ",
    "A plane is parked at the airport .",
    "A plane is parked at the airport.",
    "Lots of plants scattered on the ground. .",
    "there's a big baseball field next to the playground",
    "it's an old church and it isn't small",
    "I'm sure they've said we'll see what you're doing and he'd agree",
    "can't won't shan't ain't don't",
    "CAN'T DON'T It'S Tree's tree'S",
    "Thomas' house and the boys' school",
    "rock'n'roll o'clock O'Brien y'all ma'am 'tis 'twas d'ye more'n",
    "cannot gonna gotta wanna lemme gimme Cannot GONNA",
    "cannot's gonna-be two_cannot",
    "whaddya whatcha dunno kinda sorta outta",
    "take-off pot-holed T-junction blue-green well-regulated",
    "two_tone high_rise good_looking",
    "a--b -a a- a__b a-_b a-1 1-2 3-D",
    "1,000 trees and 3.5 km and 1.2.3 and 10,000,000",
    "12 345 trees and 555 1234 and 12 34 56",
    "2 planes and 3 cars near 1990s houses and 30km road",
    "a4 1234 b2 x",
    "\"quoted\" words and 'single' quotes and ``tex'' quotes",
    "(brackets) [square] {curly} < angle >",
    "wait... what ... and .. or ....",
    "U.S. e.g. i.e. a.m. p.m. etc. Mr. Mrs. Dr. St. Mt. No. Univ.",
    "the trees etc. The road",
    "see http://example.com/a?b=c and www.example.org and mail@example.com",
    "Café naïve — “quoted” 北京 façade, résumé",
    "tab\tseparated and nbsp\u00a0separated",
    "question? exclamation! colon: semi; comma, dash - double -- end",
    "&amp; &lt; & % $ 5 # @ * + = / \\ | ~ ^",
    ":) :-( <3 ;)",
    "x Univ.",
    "x Gov.",
    "Mr",
    "no",
    "2",
    "viz",
]


def _corpus_sentences() -> list[str]:
    found = []
    refs = SHARED_DATA / "metrics" / "rsicd_test_references_coco.json"
    if refs.is_file():
        found += [a["caption"] for a in json.loads(refs.read_text(encoding="utf-8"))["annotations"]]
    for name in ("rsicd/dataset_rsicd.json", "ucm/dataset.json", "sydney/dataset.json"):
        path = SHARED_DATA / "captions" / name
        if path.is_file():
            for image in json.loads(path.read_text(encoding="utf-8"))["images"]:
                found += [s["raw"] for s in image["sentences"]]
    if not found:
        pytest.skip(f"no references files under {SHARED_DATA}")
    return found


def _vocabulary() -> list[str]:
    from rsvlm_zoo.metrics.paraphrase import shared_index

    try:
        words = shared_index().words
    except (OSError, ValueError) as err:
        pytest.skip(f"METEOR's paraphrase index is unavailable: {err}")
    return sorted({w for w in words if re.fullmatch(r"[A-Za-z]+", w)})


def _generated(words: list[str], seed: int = 0) -> list[str]:
    """Each word alone in three cases, then in compounds, with clitics, before a stop and next to numbers."""
    rng = random.Random(seed)
    negations = sorted(NEGATIONS)
    out = []
    for w in words:
        out += [w.lower(), w.capitalize(), w.upper()]
        v = rng.choice(words)
        out += [
            f"{w.capitalize()} {v} .",
            f"a {w}'s {v}n't {rng.choice(negations)}n't {w}",
            f"{w}-{v} {w}_{v}",
            f"the {w}'re {w}'ll {w}'ve {w}'d {w}'m",
            f"{rng.randint(0, 99999)} {w} {rng.randint(0, 9)}",
            f"{w} {v}.",
        ]
    return out


def _jar(lines: list[str]) -> list[str]:
    return ptb.ptb_tokenize(lines, python_fast_path=False)


def test_python_tokens_equal_the_jar_on_every_corpus_caption_in_context():
    sentences = _corpus_sentences() + ADVERSARIAL
    jar = _jar(sentences)
    hybrid = ptb.ptb_tokenize(sentences, python_fast_path=True)
    assert hybrid == jar
    plain = [i for i, s in enumerate(sentences) if python_tokens(s) is not None]
    assert len(plain) > 0.97 * len(sentences)
    for i in plain:
        assert python_tokens(sentences[i]) == jar[i], sentences[i]
    shuffled = list(sentences)
    random.Random(1).shuffle(shuffled)
    assert ptb.ptb_tokenize(shuffled, python_fast_path=True) == _jar(shuffled)


def test_python_tokens_equal_the_jar_on_a_large_vocabulary():
    sentences = _generated(_vocabulary())
    jar = _jar(sentences)
    covered = 0
    for sentence, want in zip(sentences, jar, strict=True):
        got = python_tokens(sentence)
        if got is not None:
            covered += 1
            assert got == want, (sentence, got, want)
    assert covered > 0.7 * len(sentences)
    assert ptb.ptb_tokenize(sentences, python_fast_path=True) == jar


def test_adversarial_sentences_equal_the_jar_and_the_odd_ones_go_to_it():
    assert ptb.ptb_tokenize(ADVERSARIAL, python_fast_path=True) == _jar(ADVERSARIAL)
    for sentence in [
        "A plane is parked at the airport.",
        "1,000 trees",
        "U.S. e.g.",
        '"quoted"',
        "(brackets)",
        "wait...",
        "Café",
        "tab\tseparated",
        "Thomas' house",
        "o'clock",
        "a--b",
        "12 345",
        "x Univ.",
        *ASSIMILATIONS,
    ]:
        assert python_tokens(sentence) is None, sentence


def test_only_the_sentences_outside_the_class_reach_the_jar(monkeypatch):
    sent: list[list[str]] = []
    real = ptb._jar_tokenize

    def record(lines: list[str]) -> list[str]:
        sent.append(list(lines))
        return real(lines)

    monkeypatch.setattr(ptb, "_jar_tokenize", record)
    plain = ["A plane is parked .", "two_tone roads", "it's green"]
    assert ptb.ptb_tokenize(plain) == ["a plane is parked", "two_tone roads", "it 's green"]
    assert sent == []  # no JVM at all
    mixed = ["a b", "c d", "", "Mr. Smith's (house)", "e f", "g h"]
    assert ptb.ptb_tokenize(mixed) == _jar(mixed)
    assert sent[0] == ["c d", "", "Mr. Smith's (house)", "e f"]  # the odd line with its nearest non-blank neighbours


def test_environment_variable_forces_the_jar(monkeypatch):
    sent: list[list[str]] = []
    real = ptb._jar_tokenize
    monkeypatch.setattr(ptb, "_jar_tokenize", lambda lines: sent.append(list(lines)) or real(lines))
    monkeypatch.setenv(ptb.PTB_ENGINE_ENV, "java")
    assert ptb.ptb_tokenize(["A plane is parked ."]) == ["a plane is parked"]
    assert sent == [["A plane is parked ."]]
