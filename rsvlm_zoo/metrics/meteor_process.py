"""The METEOR 1.5 process and the paraphrase table it loaded: started early, restarted when a corpus needs more.

METEOR reads its paraphrase table once, at start-up. In "corpus" mode the table is cut to the words a corpus
can match (`rsvlm_zoo.metrics.paraphrase`); a process is reused while its table covers the next corpus and
replaced, with a table covering both, when it does not. Where the system has named pipes (POSIX), the JVM is
started before the corpus is known and reads its table from a pipe that a thread fills once the table is cut,
so the JVM's start-up (about half a second) overlaps tokenisation and the cut. Without pipes the cut table is
written to a temporary file first; when the cut is impossible (no paraphrase index, an overlong token) the
process loads METEOR's whole table, with the same scores.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from itertools import chain
from pathlib import Path

from rsvlm_zoo.metrics.java import METEOR_CUT_TABLE_JVM_ARGS, METEOR_JVM_ARGS, JvmProcess, pycocoevalcap_dir
from rsvlm_zoo.metrics.paraphrase import candidate_words, corpus_table_bytes, shared_index, write_corpus_table

log = logging.getLogger(__name__)

METEOR_JAR = "meteor-1.5.jar"
PARAPHRASE_MODES = ("corpus", "full")
PIPE_OPEN_TIMEOUT = 120.0  # seconds a JVM may take to boot and open its table pipe


def meteor_jar() -> str:
    """Path of the METEOR 1.5 jar shipped with pycocoevalcap."""
    return str(pycocoevalcap_dir() / "meteor" / METEOR_JAR)


def _feed_pipe(pipe: Path, payload: bytes, jvm: JvmProcess, timeout: float = PIPE_OPEN_TIMEOUT) -> None:
    """Write `payload` into the named pipe `jvm` reads its table from, then remove the pipe.

    When the JVM does not open the pipe within `timeout` seconds it is killed, so a caller waiting for its
    replies gets an error naming its stderr instead of a hang; a JVM that stops while reading leaves the
    same error to the caller.
    """
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fd = os.open(pipe, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError as err:
                if err.errno != errno.ENXIO:  # ENXIO: the JVM has not opened it yet
                    raise
            if not jvm.running:
                return
            if time.monotonic() > deadline:
                log.error("the METEOR JVM did not open its paraphrase table pipe within %.0f s", timeout)
                jvm.close(wait=0)
                return
            time.sleep(0.002)
        os.set_blocking(fd, True)
        with os.fdopen(fd, "wb") as stream:
            stream.write(payload)
    except OSError as err:  # e.g. the JVM stopped while reading: its replies end, and the caller reports it
        log.debug("feeding the METEOR paraphrase table failed: %s", err)
    finally:
        pipe.unlink(missing_ok=True)


class MeteorProcess:
    """A METEOR 1.5 JVM (`-stdio -l en -norm`, as coco-caption) and the paraphrase table it loaded.

    `lock` guards replacing the process: hold it from `cover()` until the replies are read.

    Args:
        max_heap: the JVM's `-Xmx`.
        jvm_args: JVM options for every METEOR JVM; None: the parallel collector, plus the client-only JIT
            when the JVM loads a cut table.
        paraphrase: "corpus" (a table cut to the corpus) or "full" (METEOR's whole table).
    """

    def __init__(self, max_heap: str = "2G", jvm_args: Sequence[str] | None = None, paraphrase: str = "corpus") -> None:
        if paraphrase not in PARAPHRASE_MODES:
            raise ValueError(f"paraphrase must be one of {PARAPHRASE_MODES}, got {paraphrase!r}")
        self.paraphrase = paraphrase
        self.max_heap = max_heap
        self.jvm_args = None if jvm_args is None else tuple(jvm_args)
        self.lock = threading.RLock()
        self._table_words: set[str] | None = None  # words the loaded cut table covers; None: full table
        self._loaded_full = paraphrase == "full"  # whether the JVM (when running) has the full table
        self._table_dir: str | None = None
        self._tables = 0
        self._pending: Path | None = None  # the pipe a started JVM waits to read its table from
        self.jvm = self._new_jvm(None)

    def __getstate__(self) -> dict[str, object]:
        return {"max_heap": self.max_heap, "jvm_args": self.jvm_args, "paraphrase": self.paraphrase}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__(**state)  # type: ignore[misc,arg-type]

    @property
    def running(self) -> bool:
        """Whether the JVM is alive."""
        return self.jvm.running

    @property
    def waiting_for_table(self) -> bool:
        """Whether the running JVM still waits on its pipe for the table."""
        return self._pending is not None and self.jvm.running

    def _new_jvm(self, table: Path | None) -> JvmProcess:
        jvm_args = self.jvm_args
        if jvm_args is None:
            jvm_args = METEOR_JVM_ARGS if table is None else METEOR_CUT_TABLE_JVM_ARGS
        args = [f"-Xmx{self.max_heap}", *jvm_args, "-jar", meteor_jar(), "-", "-", "-stdio", "-l", "en", "-norm"]
        if table is not None:
            args += ["-a", str(table)]
        return JvmProcess(args, cwd=str(pycocoevalcap_dir() / "meteor"))

    def start(self) -> None:
        """Start the JVM now without waiting for it.

        In "corpus" mode the JVM boots and waits on a pipe for its paraphrase table, which `cover()` cuts and
        writes; without named pipes nothing starts before `cover()`.
        """
        with self.lock:
            if self.jvm.running:
                return
            if self.paraphrase == "full":
                self.jvm.start()
            else:
                self._stop()
                self._start_on_pipe()

    def cover(self, hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> None:
        """Make sure a JVM runs whose table holds every paraphrase these sentences can match (restart if not)."""
        if self.paraphrase != "corpus":
            with self.lock:
                self.jvm.start()
            return
        words = candidate_words(chain(hyps, chain.from_iterable(refs)))
        with self.lock:
            if self.waiting_for_table and words is not None:
                self._deliver(words)
                return
            loaded = self._table_words
            covered = self._loaded_full or (words is not None and loaded is not None and words <= loaded)
            if self.jvm.running and self._pending is None and covered:
                return
            self._stop()
            if words is None:
                self._start_full()
                return
            words |= loaded or set()  # keep covering the earlier corpora: a later one may reuse the JVM
            if self._start_on_pipe():
                self._deliver(words)
                return
            try:
                table = self._new_table_path()
                write_corpus_table(words, table)
            except (OSError, ValueError) as err:  # e.g. no writable cache folder: same scores, slower start
                log.warning("METEOR falls back to its full paraphrase table (%s: %s)", type(err).__name__, err)
                self._start_full()
                return
            self._table_words, self._loaded_full = words, False
            self.jvm = self._new_jvm(table)
            self.jvm.start()

    def _new_table_path(self) -> Path:
        if self._table_dir is None:
            self._table_dir = tempfile.mkdtemp(prefix="rsvlm_meteor_")
        self._tables += 1
        return Path(self._table_dir) / f"paraphrase-{self._tables}.gz"

    def _start_full(self) -> None:
        """Start a JVM with METEOR's whole paraphrase table (the caller holds `lock`)."""
        self._table_words, self._loaded_full = None, True
        self.jvm = self._new_jvm(None)
        self.jvm.start()

    def _start_on_pipe(self) -> bool:
        """Start a JVM that reads its table from a named pipe written later; False where that is not possible.

        The caller holds `lock` and has stopped the previous JVM.
        """
        if not hasattr(os, "mkfifo"):
            return False
        try:
            shared_index()  # the cut needs the paraphrase index: without it the full table is loaded
            pipe = self._new_table_path()
            os.mkfifo(pipe, 0o600)
        except (OSError, ValueError):
            return False
        self._table_words, self._loaded_full = None, False
        self.jvm = self._new_jvm(pipe)
        self.jvm.start()
        self._pending = pipe
        return True

    def _deliver(self, words: set[str]) -> None:
        """Cut the table to `words` and feed it to the JVM waiting on its pipe (the caller holds `lock`).

        The cut runs here; a thread writes it into the pipe while the JVM parses it, so the caller goes on
        (scoring lines sent meanwhile wait in the JVM's input until its table is loaded).
        """
        pipe, self._pending = self._pending, None
        assert pipe is not None
        try:
            payload = corpus_table_bytes(words)
        except (OSError, ValueError) as err:  # e.g. no readable index: same scores, slower start
            log.warning("METEOR falls back to its full paraphrase table (%s: %s)", type(err).__name__, err)
            pipe.unlink(missing_ok=True)
            self.jvm.close(wait=0)
            self._start_full()
            return
        self._table_words, self._loaded_full = words, False
        feeder = threading.Thread(target=_feed_pipe, args=(pipe, payload, self.jvm), name="meteor-table", daemon=True)
        feeder.start()

    def _stop(self) -> None:
        """Stop the JVM; one still waiting for its table pipe is killed at once (the caller holds `lock`)."""
        waiting, self._pending = self._pending is not None, None
        self.jvm.close(wait=0 if waiting else 2.0)

    def close(self) -> None:
        """Stop the JVM and remove its cut paraphrase tables."""
        with self.lock:
            self._stop()
            self._table_words = None
            self._loaded_full = self.paraphrase == "full"
            if self._table_dir is not None:
                shutil.rmtree(self._table_dir, ignore_errors=True)
                self._table_dir = None
