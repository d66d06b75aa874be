"""METEOR with the paraphrase table cut to the corpus scores exactly as with METEOR's full table."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from rsvlm_zoo.metrics.java import JavaNotFoundError, find_java
from rsvlm_zoo.metrics.meteor_scorer import MeteorScorer
from rsvlm_zoo.metrics.paraphrase import ParaphraseIndex, candidate_words
from tests.metrics.conftest import rsicd_sets

TABLE = [
    ("0.5", "close to", "near"),
    ("0.25", "near", "close to"),
    ("0.125", "planes", "aircraft"),
    ("0.1", "aircraft", "planes"),
    ("0.05", "a lot of", "many"),
    ("0.01", "parking lot", "car park"),
]


def _java_or_skip() -> None:
    try:
        find_java()
    except JavaNotFoundError as err:
        pytest.skip(str(err))


@pytest.fixture
def small_table(tmp_path, monkeypatch):
    monkeypatch.setenv("RSVLM_ZOO_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "paraphrase.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("".join(f"{p}\n{a}\n{b}\n" for p, a, b in TABLE))
    return path


def test_index_writes_back_the_entries_it_keeps_in_table_order(small_table, tmp_path):
    index = ParaphraseIndex.cached(small_table)
    assert len(index) == len(TABLE)
    assert (tmp_path / "cache").is_dir()  # cached for the next process
    out = tmp_path / "cut.gz"
    index.write_table(np.arange(len(TABLE)), out)
    assert gzip.open(out, "rt", encoding="utf-8").read() == "".join(f"1\n{a}\n{b}\n" for _, a, b in TABLE)

    kept = index.usable_entries({"close", "to", "near", "planes", "lot", "of"})
    assert kept.tolist() == [0, 1]  # "aircraft" and "many" absent; "a" absent for entry 4
    index.write_table(kept, out)
    assert gzip.open(out, "rt", encoding="utf-8").read() == "1\nclose to\nnear\n1\nnear\nclose to\n"
    index.write_table(kept[:0], out)
    assert gzip.open(out, "rb").read() == b""


def test_index_refuses_a_table_python_would_split_differently(tmp_path):
    path = tmp_path / "tabs.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("0.5\nclose\tto\nnear\n")
    with pytest.raises(ValueError, match="cannot be indexed"):
        ParaphraseIndex.parse(path)


def test_candidate_words_cover_every_piece_the_normaliser_can_make():
    words = candidate_words(["don't park", "r&amp;d ``quoted''", "well\u2013known a--b &amp;``x"])
    assert words is not None
    assert {"don't", "do", "n't", "'t", "park", "r&d", "&", "r", "d", '"quoted"', "quoted", '"'} <= words
    assert {
        "well-known",
        "a-b",
        '&"x',
        "&amp;''x",
        "&''x",
        '&amp;"x',
    } <= words  # dashes; each replacement alone or together
    assert candidate_words(["x" * 65]) is None  # too long: the caller falls back to the full table


SENTENCES = (
    ["many planes are parked close to the terminal", "a lot of aircraft near a parking lot", "green trees"],
    [
        ["a lot of aircraft are parked near the terminal", "several planes beside the building"],
        ["many planes close to a car park"],
        ["lots of green trees", "some trees of a green park"],
    ],
)


def test_corpus_table_gives_pycocoevalcaps_statistics_and_reuses_the_jvm():
    _java_or_skip()
    hyps, refs = SENTENCES
    with MeteorScorer(paraphrase="full") as full, MeteorScorer() as cut:
        assert cut.paraphrase == "corpus"
        want = full.segment_stats(hyps, refs)
        assert cut.corpus_score(hyps, refs) == full.corpus_score(hyps, refs)
        assert cut.segment_stats(hyps, refs) == want
        pid = cut._jvm._proc.pid  # noqa: SLF001 - the process is what the reuse is about
        assert cut.corpus_score(hyps[:1], refs[:1]) == full.corpus_score(hyps[:1], refs[:1])
        assert cut._jvm._proc.pid == pid  # noqa: SLF001 - a covered corpus keeps the JVM
        new = (["aircraft close to a hangar"], [["planes near the hangar"]])
        assert cut.corpus_score(*new) == full.corpus_score(*new)
        assert cut._jvm._proc.pid != pid  # noqa: SLF001 - a new word needs a new table
        assert cut.corpus_score(hyps, refs) == full.corpus_score(hyps, refs)  # the new table covers both


def test_corpus_table_equals_full_table_on_rsicd():
    _java_or_skip()
    from rsvlm_zoo.metrics.ptb import ptb_tokenize

    preds, refs = rsicd_sets()
    flat = ptb_tokenize(preds + [r for rs in refs for r in rs])
    hyps, pos, tok_refs = flat[: len(preds)], len(preds), []
    for rs in refs:
        tok_refs.append(flat[pos : pos + len(rs)])
        pos += len(rs)
    with MeteorScorer(paraphrase="full") as full, MeteorScorer() as cut:
        assert cut.corpus_score(hyps, tok_refs) == full.corpus_score(hyps, tok_refs)
        assert cut.segment_stats(hyps, tok_refs) == full.segment_stats(hyps, tok_refs)


def test_unwritable_cache_falls_back_to_the_full_table(tmp_path, monkeypatch, caplog):
    _java_or_skip()
    from rsvlm_zoo.metrics import paraphrase

    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    monkeypatch.setenv("RSVLM_ZOO_CACHE", str(blocker / "cache"))  # mkdir under a file fails
    monkeypatch.setattr(paraphrase, "_INDEX", None)
    monkeypatch.setattr(paraphrase, "_INDEX_ERROR", None)
    hyps, refs = SENTENCES
    with MeteorScorer(paraphrase="full") as full, MeteorScorer() as cut:
        assert cut.corpus_score(hyps, refs) == full.corpus_score(hyps, refs)
        assert "-a" not in cut._jvm.args  # noqa: SLF001 - the JVM runs with METEOR's own table
    assert "falls back to its full paraphrase table" in caplog.text
    with pytest.raises(OSError):  # remembered: later corpora do not retry the build
        paraphrase.shared_index()


def test_corpus_table_matches_the_full_table_through_quote_and_dash_normalisation():
    _java_or_skip()
    hyps = ["a well\u2013known car--park close\u2013to the ``terminal''", "r&amp;d planes&quot;near&quot; hangars"]
    refs = [["the well-known car park near the \u201cterminal\u201d"], ["research aircraft close to hangars"]]
    with MeteorScorer(paraphrase="full") as full, MeteorScorer() as cut:
        assert cut.corpus_score(hyps, refs) == full.corpus_score(hyps, refs)
        assert cut.segment_stats(hyps, refs) == full.segment_stats(hyps, refs)


def test_index_cache_is_keyed_by_content_so_copies_share_it(small_table, tmp_path):
    ParaphraseIndex.cached(small_table)
    copy = tmp_path / "elsewhere" / "paraphrase.gz"  # the same table in another environment
    copy.parent.mkdir()
    copy.write_bytes(small_table.read_bytes())
    ParaphraseIndex.cached(copy)
    folders = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(folders) == 1 and folders[0].startswith("meteor-paraphrase-v"), folders
    with gzip.open(copy, "at", encoding="utf-8") as f:  # another table: another index
        f.write("0.5\nplanes\naircraft\n")
    ParaphraseIndex.cached(copy)
    assert len(list((tmp_path / "cache").iterdir())) == 2


def test_table_fed_through_a_pipe_to_an_early_jvm_scores_as_the_table_file(monkeypatch):
    _java_or_skip()
    import os

    hyps, refs = rsicd_sets()
    hyps, refs = hyps[:300], refs[:300]
    with MeteorScorer() as piped:
        piped.start()  # boots before the corpus is known
        assert piped._process.waiting_for_table  # noqa: SLF001 - it waits for its table
        table_dir = piped._process._table_dir  # noqa: SLF001
        score, stats = piped.corpus_score(hyps, refs), piped.segment_stats(hyps, refs)
    assert table_dir is not None and not os.path.exists(table_dir)  # pipes and folder removed at close
    monkeypatch.delattr(os, "mkfifo")  # a system without named pipes: the table is written to a file
    with MeteorScorer() as filed:
        filed.start()
        assert not filed.running  # nothing can start before the corpus is known
        assert filed.corpus_score(hyps, refs) == score
        assert filed.segment_stats(hyps, refs) == stats


def test_a_jvm_still_waiting_for_its_table_is_stopped_at_close():
    _java_or_skip()
    scorer = MeteorScorer()
    scorer.start()
    proc = scorer._jvm._proc  # noqa: SLF001 - the process is what is checked
    assert proc is not None and proc.poll() is None
    scorer.close()
    assert proc.poll() is not None
    assert not scorer.running


def test_a_jvm_that_cannot_start_is_an_error_not_a_hang():
    _java_or_skip()
    hyps, refs = SENTENCES
    with MeteorScorer(jvm_args=["-XX:+NoSuchOptionOfThisJvm"]) as scorer:
        scorer.start()
        with pytest.raises(RuntimeError, match="METEOR JVM stopped"):
            scorer.corpus_score(hyps, refs)
