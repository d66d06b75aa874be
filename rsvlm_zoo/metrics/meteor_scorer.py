"""METEOR 1.5 through pycocoevalcap's own jar, one long-lived JVM, with all segments pipelined in one pass.

pycocoevalcap writes one `SCORE ||| ref ||| ... ||| hyp` line and waits for its statistics line before
the next, then sends `EVAL ||| stats ||| ...`. Here every SCORE line is written at once by a writer thread
while the caller reads the statistics lines, and the corpus statistics are summed in Python exactly as
`MeteorStats.addStats` does (all 23 fields are integer counts, so the sum is exact whatever the order),
then scored with one `SING ||| stats` line. The result equals pycocoevalcap's METEOR; when a statistic is
not an exact integer the scorer falls back to pycocoevalcap's `EVAL` line.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from rsvlm_zoo.metrics.java import METEOR_JVM_ARGS, JvmProcess, pycocoevalcap_dir

METEOR_JAR = "meteor-1.5.jar"
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
        jvm_args: extra JVM options (default: C1 JIT only and the parallel collector: faster, same numbers).
    """

    def __init__(self, max_heap: str = "2G", jvm_args: Sequence[str] = METEOR_JVM_ARGS) -> None:
        jar = meteor_jar()
        args = [f"-Xmx{max_heap}", *jvm_args, "-jar", jar, "-", "-", "-stdio", "-l", "en", "-norm"]
        self._jvm = JvmProcess(args, cwd=str(pycocoevalcap_dir() / "meteor"))

    def start(self) -> None:
        """Start the JVM now (it takes seconds to load its paraphrase table) without waiting for it."""
        self._jvm.start()

    @property
    def running(self) -> bool:
        """Whether the JVM is alive."""
        return self._jvm.running

    def close(self) -> None:
        """Stop the JVM."""
        self._jvm.close()

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
        """METEOR statistics line of every segment (pipelined `SCORE` lines)."""
        lines = [score_line(h, r) for h, r in zip(hyps, refs, strict=True)]
        with self._jvm.lock:
            stats = self._exchange(lines, len(lines))
        for i, line in enumerate(stats):
            if len(line.split()) != STATS_LENGTH:
                tail = self._jvm.stderr_tail()
                raise RuntimeError(f"METEOR could not score segment {i} ({lines[i][:200]!r}): {line}\n{tail}")
        return stats

    def corpus_score(self, hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> float:
        """Corpus METEOR of tokenised hypotheses against their tokenised references (pycocoevalcap's number).

        Raises:
            JavaNotFoundError: when Java is absent.
            RuntimeError: when the JVM fails.
        """
        if not hyps:
            return 0.0
        stats_lines = self.segment_stats(hyps, refs)
        stats = [[float(x) for x in line.split()] for line in stats_lines]
        with self._jvm.lock:
            if all(x == int(x) and abs(x) < _EXACT for s in stats for x in s):
                total = aggregate_stats(stats)
                reply = self._exchange(["SING ||| " + " ".join(repr(x) for x in total)], 1)
            else:  # pycocoevalcap's own EVAL line: per-segment scores, then the corpus score
                reply = self._exchange(["EVAL ||| " + " ||| ".join(stats_lines)], len(stats) + 1)[-1:]
        return float(reply[0])
