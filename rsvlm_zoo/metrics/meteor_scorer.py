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

The JVM and its paraphrase table (by default cut to the corpus, fed through a pipe to a JVM started
early) are managed by `rsvlm_zoo.metrics.meteor_process.MeteorProcess`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from rsvlm_zoo.metrics.java import JvmProcess
from rsvlm_zoo.metrics.meteor_process import MeteorProcess

STATS_LENGTH = 23  # 4 lengths, 4 stages x 4 match counts, chunks, 2 word-match counts
_CHUNKS = 20
_EXACT = 2.0**53


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
        self.dedupe = dedupe
        self._process = MeteorProcess(max_heap=max_heap, jvm_args=jvm_args, paraphrase=paraphrase)

    @property
    def paraphrase(self) -> str:
        """The paraphrase table the JVM loads: "corpus" or "full"."""
        return self._process.paraphrase

    @property
    def _jvm(self) -> JvmProcess:
        """The current METEOR JVM (replaced when a corpus needs a new table)."""
        return self._process.jvm

    def prepare(self, hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> None:
        """Load the paraphrase entries these tokenised sentences can match, before `corpus_score` needs them.

        `corpus_score` does this itself; calling it first in the thread that should pay for the table cut
        (e.g. before other metrics start in parallel) lets the JVM parse the table meanwhile.
        """
        self._process.cover(hyps, refs)

    def start(self) -> None:
        """Start the JVM now without waiting for it (see `MeteorProcess.start`)."""
        self._process.start()

    @property
    def running(self) -> bool:
        """Whether the JVM is alive."""
        return self._process.running

    def close(self) -> None:
        """Stop the JVM and remove its cut paraphrase tables."""
        self._process.close()

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
        with self._process.lock:  # the JVM may be replaced by `cover`: score on the one that covers the corpus
            self._process.cover(hyps, refs)
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
