"""METEOR 1.5 through pycocoevalcap's own jar, one long-lived JVM, with all segments pipelined in one pass.

pycocoevalcap writes one `SCORE ||| ref ||| ... ||| hyp` line and waits for its statistics line before
the next, then sends `EVAL ||| stats ||| ...`. Here every SCORE line is written at once by a writer thread
while the caller reads the statistics lines, and the corpus statistics are summed in Python exactly as
`MeteorStats.addStats` does (all 23 fields are integer counts, so the sum is exact whatever the order),
then scored with one `SING ||| stats` line. The result equals pycocoevalcap's METEOR; when a statistic is
not an exact integer the scorer falls back to pycocoevalcap's `EVAL` line.

Work METEOR would repeat is sent once: a reference equal to an earlier one of the same segment is left
out (METEOR keeps the first reference with the strictly highest score, so a later copy of a reference
can never be chosen), and segments whose `SCORE` lines are then equal are scored once, their statistics
line reused. Both leave every segment's statistics unchanged; `dedupe=False` sends every line as
pycocoevalcap does.

By default the JVM loads only the paraphrase entries the corpus can match (see
`rsvlm_zoo.metrics.paraphrase`), which turns METEOR's ~6 s table load into a fraction of a second; a
later corpus whose words the loaded table covers reuses the running JVM.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections.abc import Sequence
from itertools import chain
from pathlib import Path

from rsvlm_zoo.metrics.java import METEOR_CUT_TABLE_JVM_ARGS, METEOR_JVM_ARGS, JvmProcess, pycocoevalcap_dir
from rsvlm_zoo.metrics.paraphrase import candidate_words, write_corpus_table

log = logging.getLogger(__name__)

METEOR_JAR = "meteor-1.5.jar"
PARAPHRASE_MODES = ("corpus", "full")
STATS_LENGTH = 23  # 4 lengths, 4 stages x 4 match counts, chunks, 2 word-match counts
_CHUNKS = 20
_EXACT = 2.0**53


def meteor_jar() -> str:
    """Path of the METEOR 1.5 jar shipped with pycocoevalcap."""
    return str(pycocoevalcap_dir() / "meteor" / METEOR_JAR)


def _one_line(text: str) -> str:
    return text.replace("\r", " ").replace("\n", " ")


def score_line(hyp: str, refs: Sequence[str]) -> str:
    """The `SCORE` line pycocoevalcap sends for one segment (same clean-up of the hypothesis)."""
    hyp = hyp.replace("|||", "").replace("  ", " ")
    return _one_line(" ||| ".join(("SCORE", " ||| ".join(refs), hyp)))


def distinct_refs(refs: Sequence[str]) -> list[str]:
    """`refs` without the references equal to an earlier one, in order; unchanged when one holds a "|".

    METEOR's `SCORE` handler splits the line at "|||" and trims each reference, then keeps the first
    reference with the strictly highest score: dropping a later copy of a reference changes no
    statistic. With a "|" in a reference the line's split is left to METEOR untouched.
    """
    if len(refs) < 2 or any("|" in r for r in refs):
        return list(refs)
    return list(dict.fromkeys(refs))


def aggregate_stats(stats: Sequence[Sequence[float]]) -> list[float]:
    """Corpus statistics, as `MeteorStats.addStats` (a perfect one-chunk match adds no chunk)."""
    total = [0.0] * STATS_LENGTH
    for s in stats:
        test_matches = sum(s[4 + 4 * i] + s[6 + 4 * i] for i in range(4))
        ref_matches = sum(s[5 + 4 * i] + s[7 + 4 * i] for i in range(4))
        perfect = test_matches == s[0] and ref_matches == s[1] and s[_CHUNKS] == 1
        for i in range(STATS_LENGTH):
            if i != _CHUNKS or not perfect:
                total[i] += s[i]
    return total


class MeteorScorer:
    """A METEOR 1.5 JVM (`-l en -norm`, as coco-caption) kept alive between calls; thread safe.

    Use as a context manager or call `close()`; it is also closed when garbage collected and at exit.

    Args:
        max_heap: the JVM's `-Xmx` (pycocoevalcap uses 2G).
        jvm_args: extra JVM options for every METEOR JVM; by default the parallel collector (faster, same
            numbers), plus the client-only JIT when the JVM loads a corpus-cut paraphrase table.
        paraphrase: "corpus" (load only the paraphrase entries the scored corpus can match; same
            scores, much faster start) or "full" (METEOR's whole table, as pycocoevalcap).
        dedupe: send each distinct `SCORE` line once, without repeated references (same statistics);
            False sends one line per segment with every reference, as pycocoevalcap.
    """

    def __init__(
        self,
        max_heap: str = "2G",
        jvm_args: Sequence[str] | None = None,
        paraphrase: str = "corpus",
        dedupe: bool = True,
    ) -> None:
        if paraphrase not in PARAPHRASE_MODES:
            raise ValueError(f"paraphrase must be one of {PARAPHRASE_MODES}, got {paraphrase!r}")
        self.paraphrase = paraphrase
        self.dedupe = dedupe
        self._heap = f"-Xmx{max_heap}"
        self._jvm_args = None if jvm_args is None else tuple(jvm_args)
        self._table_words: set[str] | None = None  # words the loaded cut table covers; None: full table
        self._loaded_full = paraphrase == "full"  # whether the JVM (when running) has the full table
        self._table_dir: str | None = None
        self._tables = 0
        self._switch = threading.RLock()
        self._jvm = self._new_jvm(None)

    def __getstate__(self) -> dict[str, object]:
        return {"heap": self._heap, "jvm_args": self._jvm_args, "paraphrase": self.paraphrase, "dedupe": self.dedupe}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.paraphrase = state["paraphrase"]  # type: ignore[assignment]
        self.dedupe = bool(state.get("dedupe", True))
        self._heap = str(state["heap"])
        self._jvm_args = state["jvm_args"]  # type: ignore[assignment]
        self._table_words, self._table_dir, self._tables = None, None, 0
        self._loaded_full = self.paraphrase == "full"
        self._switch = threading.RLock()
        self._jvm = self._new_jvm(None)

    def _new_jvm(self, table: Path | None) -> JvmProcess:
        jvm_args = self._jvm_args
        if jvm_args is None:
            jvm_args = METEOR_JVM_ARGS if table is None else METEOR_CUT_TABLE_JVM_ARGS
        args = [self._heap, *jvm_args, "-jar", meteor_jar(), "-", "-", "-stdio", "-l", "en", "-norm"]
        if table is not None:
            args += ["-a", str(table)]
        return JvmProcess(args, cwd=str(pycocoevalcap_dir() / "meteor"))

    def _prepare(self, hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> None:
        """In "corpus" mode, make sure the JVM's paraphrase table covers these sentences (restart if not)."""
        if self.paraphrase != "corpus":
            return
        words = candidate_words(chain(hyps, chain.from_iterable(refs)))
        with self._switch:
            loaded = self._table_words
            covered = self._loaded_full or (words is not None and loaded is not None and words <= loaded)
            if self._jvm.running and covered:
                return
            self._jvm.close()
            table = None
            if words is not None:
                words |= loaded or set()  # keep covering the earlier corpora: a later one may reuse the JVM
                if self._table_dir is None:
                    self._table_dir = tempfile.mkdtemp(prefix="rsvlm_meteor_")
                self._tables += 1
                table = Path(self._table_dir) / f"paraphrase-{self._tables}.gz"
                try:
                    write_corpus_table(words, table)
                except (OSError, ValueError) as err:  # e.g. no writable cache folder: same scores, slower start
                    log.warning("METEOR falls back to its full paraphrase table (%s: %s)", type(err).__name__, err)
                    words, table = None, None
            self._table_words = words
            self._loaded_full = words is None
            self._jvm = self._new_jvm(table)
            self._jvm.start()

    def start(self) -> None:
        """Start the JVM now without waiting for it (in "corpus" mode the table is only known at scoring)."""
        if self.paraphrase == "full":
            self._jvm.start()

    @property
    def running(self) -> bool:
        """Whether the JVM is alive."""
        return self._jvm.running

    def close(self) -> None:
        """Stop the JVM and remove its cut paraphrase tables."""
        with self._switch:
            self._jvm.close()
            self._table_words = None
            self._loaded_full = self.paraphrase == "full"
            if self._table_dir is not None:
                shutil.rmtree(self._table_dir, ignore_errors=True)
                self._table_dir = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - never raise from a finaliser
            pass

    def __enter__(self) -> MeteorScorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _exchange(self, lines: list[str], replies: int) -> list[str]:
        proc = self._jvm.start()
        assert proc.stdin is not None and proc.stdout is not None
        payload = "".join(line + "\n" for line in lines).encode("utf-8", errors="replace")
        errors: list[BaseException] = []

        def write() -> None:
            try:
                proc.stdin.write(payload)  # type: ignore[union-attr]
                proc.stdin.flush()  # type: ignore[union-attr]
            except (OSError, ValueError) as exc:
                errors.append(exc)

        writer = threading.Thread(target=write, name="meteor-writer", daemon=True)
        writer.start()
        out = []
        readline = proc.stdout.readline
        for _ in range(replies):
            line = readline()
            if not line:
                writer.join(timeout=5)
                tail = self._jvm.stderr_tail()
                self._jvm.close()
                raise RuntimeError(f"the METEOR JVM stopped after {len(out)} of {replies} replies:\n{tail}")
            out.append(line.decode("utf-8", errors="replace").strip())
        writer.join()
        if errors:
            raise RuntimeError(f"writing to the METEOR JVM failed: {errors[0]}")
        return out

    def segment_stats(self, hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> list[str]:
        """METEOR statistics line of every segment (pipelined `SCORE` lines, each distinct one sent once)."""
        if self.dedupe:
            lines = [score_line(h, distinct_refs(r)) for h, r in zip(hyps, refs, strict=True)]
            slot: dict[str, int] = {}
            index = [slot.setdefault(line, len(slot)) for line in lines]
            to_send = list(slot)
        else:
            lines = [score_line(h, r) for h, r in zip(hyps, refs, strict=True)]
            index, to_send = list(range(len(lines))), lines
        with self._jvm.lock:
            stats = self._exchange(to_send, len(to_send))
        for i, line in enumerate(stats):
            if len(line.split()) != STATS_LENGTH:
                tail = self._jvm.stderr_tail()
                raise RuntimeError(f"METEOR could not score segment ({to_send[i][:200]!r}): {line}\n{tail}")
        return [stats[i] for i in index]

    def corpus_score(self, hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> float:
        """Corpus METEOR of tokenised hypotheses against their tokenised references (pycocoevalcap's number).

        Raises:
            JavaNotFoundError: when Java is absent.
            RuntimeError: when the JVM fails.
        """
        if not hyps:
            return 0.0
        with self._switch:  # the JVM may be replaced by `_prepare`: score on the one prepared
            self._prepare(hyps, refs)
            return self._corpus_score(hyps, refs)

    def _corpus_score(self, hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> float:
        stats_lines = self.segment_stats(hyps, refs)
        stats = [[float(x) for x in line.split()] for line in stats_lines]
        with self._jvm.lock:
            if all(x == int(x) and abs(x) < _EXACT for s in stats for x in s):
                total = aggregate_stats(stats)
                reply = self._exchange(["SING ||| " + " ".join(repr(x) for x in total)], 1)
            else:  # pycocoevalcap's own EVAL line: per-segment scores, then the corpus score
                reply = self._exchange(["EVAL ||| " + " ||| ".join(stats_lines)], len(stats) + 1)[-1:]
        return float(reply[0])
