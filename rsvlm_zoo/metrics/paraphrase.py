"""METEOR's English paraphrase table, cut down to the entries a corpus can use.

METEOR 1.5 spends most of a cold start (~6 s of ~9 s for 5,000 captions) loading its 5.3 M-entry
paraphrase table into a trie. A paraphrase match needs both phrases of an entry to occur in the
sentences being scored, so an entry holding a word that appears in no hypothesis or reference can
never match. `corpus_paraphrase_table` writes the table restricted to the entries whose words all lie
in a superset of the corpus's words (every substring of every token, before and after METEOR's
character replacements), in the original order; METEOR loads it with `-a` in a fraction of a second
and finds exactly the same matches (the trie is searched by lookup, and each phrase's paraphrases
keep their relative order).

The table is parsed once into word ids (`ParaphraseIndex`, ~70 MB of arrays) and cached under
`$RSVLM_ZOO_CACHE` (default `$XDG_CACHE_HOME/rsvlm_zoo`, else `~/.cache/rsvlm_zoo`) in
`meteor-paraphrase-v<index version>-<sha256 of the table>`: keyed by the table's content, so every environment
with the same pycocoevalcap shares one copy; deleting the folder only costs the next run the indexing again.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import logging
import os
import threading
from array import array
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from rsvlm_zoo.metrics.java import pycocoevalcap_dir

log = logging.getLogger(__name__)

INDEX_VERSION = 1
# Tokens longer than this make the substring superset large; such a corpus uses the full table.
MAX_TOKEN_LENGTH = 64
# Literal replacements METEOR's `-norm` normaliser makes inside tokens (HTML entities, quote and dash forms).
_REPLACEMENTS = (
    ("&amp;", "&"),
    ("&apos;", "'"),
    ("&quot;", '"'),
    ("&lt;", "<"),
    ("&gt;", ">"),
    ("`", "'"),
    ("\u2018", "'"),
    ("\u2019", "'"),
    ("\u201c", '"'),
    ("\u201d", '"'),
    ("''", '"'),
    ("\u2013", "-"),
    ("--", "-"),
)
_TRIGGERS = frozenset(old[0] for old, _ in _REPLACEMENTS)
# Words the normaliser can emit that need not occur in the input.
_INSERTED = ('"', "'", "-", "--", ".", ",", "&", "<", ">", "#")
# java.util.StringTokenizer's default delimiters and BufferedReader's line ends; the index refuses a
# table in which Python's splitting would differ from METEOR's.
_JAVA_SPLIT_HAZARDS = (b"\r", b"\x0b", b"\t", b"\x0c", b"  ")
_BUILD_LOCK = threading.Lock()


def paraphrase_table_path() -> Path:
    """The English paraphrase table shipped with pycocoevalcap's METEOR."""
    return pycocoevalcap_dir() / "meteor" / "data" / "paraphrase-en.gz"


def cache_root() -> Path:
    """Folder for rsvlm_zoo's derived files (`$RSVLM_ZOO_CACHE`, else the XDG cache folder)."""
    explicit = os.environ.get("RSVLM_ZOO_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rsvlm_zoo"


@functools.lru_cache(maxsize=8)
def content_key(path: str, size: int, mtime_ns: int) -> str:
    """SHA-256 of a file's bytes (about 0.1 s for METEOR's 62 MB table), once per process and file version.

    The cache is keyed by content, not by install path, so every virtualenv with the same table shares one index.
    `size` and `mtime_ns` only make the memo see a changed file.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def candidate_words(sentences: Iterable[str]) -> set[str] | None:
    """Every word METEOR's normaliser could make of these sentences (a superset), or None when too costly.

    Each whitespace token contributes all its substrings, of itself, its lower-cased form and of the
    forms any sequence of the normaliser's literal replacements makes of them (`-norm` otherwise only
    inserts spaces and removes hyphens between letters), so whatever way it splits a token, the
    pieces are in the set.
    """
    words = set(_INSERTED)
    tokens = set()
    for sentence in sentences:
        tokens.update(sentence.split())
    for token in tokens:
        if len(token) > MAX_TOKEN_LENGTH:
            return None
        for form in _normalised_forms(token):
            n = len(form)
            words.update(form[i:j] for i in range(n) for j in range(i + 1, n + 1))
    return words


def _normalised_forms(token: str) -> set[str]:
    """The token, lower-cased or not, under every sequence of the normaliser's literal replacements."""
    forms = {token, token.lower()}
    if not _TRIGGERS.intersection(token):
        return forms
    todo = list(forms)
    while todo:  # each replacement keeps or shortens the text and none undoes another: this ends
        form = todo.pop()
        for old, new in _REPLACEMENTS:
            if old in form:
                for changed in (form.replace(old, new), form.replace(old, new).lower()):
                    if changed not in forms:
                        forms.add(changed)
                        todo.append(changed)
    return forms


class ParaphraseIndex:
    """The paraphrase table as word ids: entry e is `ids[starts[e]:starts[e] + len1[e] + len2[e]]`.

    Args:
        words: the table's distinct words, by id.
        ids: the word ids of every entry's first then second phrase, concatenated.
        len1: words in each entry's first phrase.
        len2: words in each entry's second phrase.
    """

    def __init__(self, words: list[str], ids: np.ndarray, len1: np.ndarray, len2: np.ndarray) -> None:
        self.words = words
        self.word_id = {w: i for i, w in enumerate(words)}
        self._word_array = np.asarray(words, dtype=object)
        self.ids = ids
        self.len1 = len1
        self.len2 = len2
        lengths = len1.astype(np.int64) + len2
        self.starts = np.zeros(len(lengths), dtype=np.int64)
        np.cumsum(lengths[:-1], out=self.starts[1:])

    def __len__(self) -> int:
        return len(self.len1)

    # ------------------------------------------------------------------ building and caching
    @classmethod
    def parse(cls, table: Path) -> ParaphraseIndex:
        """Parse a METEOR paraphrase table (gzip; lines: probability, phrase, paraphrase).

        Raises:
            ValueError: when the table's layout would make Python's splitting differ from METEOR's.
        """
        with gzip.open(table, "rb") as f:
            data = f.read()
        for hazard in _JAVA_SPLIT_HAZARDS:
            if hazard in data:
                raise ValueError(f"{table} holds {hazard!r}; it cannot be indexed exactly as METEOR reads it")
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        if len(lines) % 3:
            raise ValueError(f"{table} has {len(lines)} lines, not a multiple of 3 (probability, phrase, paraphrase)")
        word_id: dict[bytes, int] = {}
        ids = array("I")
        len1 = np.empty(len(lines) // 3, dtype=np.uint8)
        len2 = np.empty(len(lines) // 3, dtype=np.uint8)
        for e, (first, second) in enumerate(zip(lines[1::3], lines[2::3], strict=True)):
            a, b = first.split(), second.split()
            if not 0 < len(a) < 256 or not 0 < len(b) < 256:
                raise ValueError(f"{table} entry {e} has an empty phrase or one of more than 255 words")
            len1[e], len2[e] = len(a), len(b)
            ids.extend(word_id.setdefault(w, len(word_id)) for w in a)
            ids.extend(word_id.setdefault(w, len(word_id)) for w in b)
        dtype = np.uint16 if len(word_id) < 1 << 16 else np.uint32
        words = [w.decode("utf-8") for w in word_id]
        return cls(words, np.asarray(ids, dtype=dtype), len1, len2)

    def save(self, folder: Path) -> None:
        """Write the index to `folder` (written to a temporary folder first, then renamed)."""
        tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / "words.txt").write_text("\n".join(self.words), encoding="utf-8")
        np.save(tmp / "ids.npy", self.ids)
        np.save(tmp / "len1.npy", self.len1)
        np.save(tmp / "len2.npy", self.len2)
        try:
            tmp.rename(folder)
        except OSError:  # another process finished first
            for f in tmp.iterdir():
                f.unlink()
            tmp.rmdir()

    @classmethod
    def load(cls, folder: Path) -> ParaphraseIndex:
        """Read an index written by `save`."""
        words = (folder / "words.txt").read_text(encoding="utf-8").split("\n")
        return cls(words, np.load(folder / "ids.npy"), np.load(folder / "len1.npy"), np.load(folder / "len2.npy"))

    @classmethod
    def cached(cls, table: Path | None = None) -> ParaphraseIndex:
        """The index of `table` (default: pycocoevalcap's), from the cache, parsing it (~15 s) the first time."""
        table = Path(table or paraphrase_table_path())
        stat = table.stat()
        key = content_key(str(table.resolve()), stat.st_size, stat.st_mtime_ns)
        folder = cache_root() / f"meteor-paraphrase-v{INDEX_VERSION}-{key[:16]}"
        with _BUILD_LOCK:
            if not (folder / "len2.npy").is_file():
                log.info("indexing METEOR's paraphrase table %s once into %s (~15 s)", table, folder)
                folder.parent.mkdir(parents=True, exist_ok=True)
                cls.parse(table).save(folder)
            return cls.load(folder)

    # ------------------------------------------------------------------ cutting
    def usable_entries(self, words: set[str]) -> np.ndarray:
        """Indices (ascending) of the entries whose words all lie in `words`."""
        present = np.zeros(len(self.words), dtype=bool)
        hits = [self.word_id[w] for w in words if w in self.word_id]
        present[hits] = True
        if not len(self):
            return np.zeros(0, dtype=np.int64)
        ok = np.logical_and.reduceat(present[self.ids], self.starts)
        return np.flatnonzero(ok)

    def write_table(self, entries: np.ndarray, path: Path) -> None:
        """Write `entries` as a METEOR paraphrase table (gzip; the probability line, unused by METEOR, is 1)."""
        with gzip.open(path, "wb", compresslevel=1) as f:
            f.write(self.table_text(entries))

    def table_text(self, entries: np.ndarray) -> bytes:
        """`entries` as the uncompressed text of a METEOR paraphrase table (UTF-8)."""
        text = ""
        if len(entries):
            lens = self.len1[entries].astype(np.int64) + self.len2[entries]
            ends = np.cumsum(lens)
            begins = ends - lens
            pos = np.repeat(self.starts[entries] - begins, lens) + np.arange(int(ends[-1]))
            seps = np.full(len(pos), " ", dtype=object)
            seps[begins + self.len1[entries] - 1] = "\n"  # end of the first phrase
            seps[ends - 1] = "\n1\n"  # end of the entry; the next entry's probability line follows
            pieces = np.empty(2 * len(pos), dtype=object)
            pieces[0::2] = self._word_array[self.ids[pos]]
            pieces[1::2] = seps
            text = "1\n" + "".join(pieces.tolist())[: -len("1\n")]
        return text.encode("utf-8")


_INDEX: ParaphraseIndex | None = None
_INDEX_ERROR: Exception | None = None


def shared_index() -> ParaphraseIndex:
    """The process-wide index of pycocoevalcap's paraphrase table (loaded once; a failure is remembered).

    Raises:
        OSError, ValueError: when the index cannot be built, saved or read (the same error on every call).
    """
    global _INDEX, _INDEX_ERROR
    if _INDEX_ERROR is not None:
        raise _INDEX_ERROR
    if _INDEX is None:
        try:
            _INDEX = ParaphraseIndex.cached()
        except (OSError, ValueError) as err:
            _INDEX_ERROR = err
            raise
    return _INDEX


def write_corpus_table(words: set[str], path: Path) -> int:
    """Write to `path` the paraphrase table cut to the entries whose words all lie in `words`.

    `words` is usually `candidate_words(sentences)` of the corpus to score. Returns the entry count.
    """
    index = shared_index()
    entries = index.usable_entries(words)
    index.write_table(entries, path)
    return len(entries)


def corpus_table_bytes(words: set[str]) -> bytes:
    """The paraphrase table cut to `words` (as `write_corpus_table`) as stored gzip bytes, for a pipe.

    Level 0 (stored blocks): METEOR always reads its table through a gzip stream, and compressing text
    that goes through a pipe only costs time on both sides.
    """
    index = shared_index()
    return gzip.compress(index.table_text(index.usable_entries(words)), compresslevel=0)
