"""Writing packed parts: a pool of worker processes, one resumable shard folder per part, the final merge.

Each part's samples go to `pack_entry` in `workers` processes (one process pool for the whole pack, started
when the first part needs packing; a few batches per worker in flight, so a part's samples are freed as they are
packed), and this process writes the items it gets back, in sample order, with LitData's `BinaryWriter` to
`<out>/.parts/part-NNNNN/`. A worker that dies (e.g. killed for memory) stops the pack with an error that names
the part; done parts are kept. The shards therefore do not depend on the number
of workers: the same items in the same chunks, and the same skip report. A part is marked done (`done.json`,
with its item count and skips) once its index is written. An interrupted pack continues when the same command
is run again: done parts are kept, an unfinished part is removed and packed again, and the settings must be the
same (`plan.json`; the number of workers may change). When every part is done, their chunk files are moved into
`<out>` and one `index.json` plus `pack.json` (settings, counts, skip reasons) are written.
"""

from __future__ import annotations

import itertools
import json
import logging
import multiprocessing
import os
import shutil
import time
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsvlm_zoo.data.packing.entry import Item, Skip, pack_entry
from rsvlm_zoo.data.packing.parts import Entry
from rsvlm_zoo.data.packing.settings import MANIFEST, PNG_LEVEL, READER_SKIPS, PackSettings, Skips

log = logging.getLogger(__name__)

UNPLANNED = ("workers",)  # settings that may change between an interrupted pack and its continuation


@dataclass
class PackReport:
    """What a pack wrote and skipped.

    Attributes:
        out: The shard directory.
        samples: Items written (samples, or tiles under `tile`).
        scenes: Reader samples packed (scenes).
        parts: Parts packed by this call / kept from an interrupted call.
        skipped: Count per kind (`bad records (skipped)` from the reader, `missing images`, `unreadable images`,
            `invalid geometry` and `dropped tiles` from packing).
        reasons: Up to a few messages per kind.
        seconds: Wall time of this call.
    """

    out: str
    samples: int = 0
    scenes: int = 0
    parts: tuple[int, int] = (0, 0)
    skipped: Counter = field(default_factory=Counter)
    reasons: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> str:
        """One line: items written, parts, and skips per kind."""
        skipped = ", ".join(f"{n} {kind}" for kind, n in sorted(self.skipped.items()) if n) or "nothing"
        return (
            f"packed {self.samples} sample(s) from {self.scenes} scene(s) into {self.out} "
            f"({self.parts[0]} part(s) packed, {self.parts[1]} kept from an earlier run) in {self.seconds:.1f} s; "
            f"skipped: {skipped}"
        )


def _open_parts(out: Path, plan: dict[str, Any], force: bool) -> Path:
    """`<out>/.parts`, ready: a finished pack refused (or removed with `force`), an interrupted one checked.

    Raises:
        ValueError: `out` holds a finished pack (without `force`) or an interrupted pack of other settings.
    """
    if (out / MANIFEST).is_file():
        if not force:
            raise ValueError(f"{out} already holds a finished pack; pass force=True (--force) or choose another out")
        shutil.rmtree(out)
    parts_root = out / ".parts"
    plan_file = parts_root / "plan.json"
    if plan_file.is_file():
        earlier = json.loads(plan_file.read_text())
        changed = sorted(k for k in plan if k not in UNPLANNED and earlier.get(k) != plan[k])
        if force:
            shutil.rmtree(parts_root)
        elif changed:
            raise ValueError(
                f"{out} holds an interrupted pack with other settings ({', '.join(changed)}); run it with the same "
                "settings to continue it, or pass force=True (--force) to start again"
            )
    parts_root.mkdir(parents=True, exist_ok=True)
    plan_file.write_text(json.dumps(plan, indent=1))
    return parts_root


def write_part(
    entries: list[Entry],
    part_dir: Path,
    settings: PackSettings,
    chunk_bytes: str,
    executor: ProcessPoolExecutor | None = None,
    workers: int = 1,
) -> Skips:
    """Pack `entries` into the shard folder `part_dir`, items in sample order; the skips met.

    `executor` holds `workers` processes that run `pack_entry`; None runs it in this process. `entries` is
    emptied as its samples are handed out, so each can be freed once packed.

    Raises:
        RuntimeError: a worker process died (e.g. killed for memory), naming the part and what to change.
    """
    from litdata.streaming.writer import BinaryWriter

    part_dir.mkdir(parents=True)
    writer = BinaryWriter(str(part_dir), chunk_bytes=chunk_bytes)
    skips, index = Skips(), 0
    try:
        for items, found in _packed(entries, settings, executor, workers):
            for item in items:
                writer.add_item(index, item)
                index += 1
            for kind, message in found:
                skips.add(kind, message)
    except BrokenProcessPool as err:
        raise RuntimeError(
            f"a packing worker died while packing {part_dir} ({err}); it may have run out of memory: run the same "
            "command again with fewer --workers or a smaller --part-size (done parts are kept)"
        ) from err
    if index:
        writer.done()
        writer.merge(1)
    return skips


def _pack_batch(batch: list[Entry], settings: PackSettings) -> list[tuple[list[Item], list[Skip]]]:
    """`pack_entry` of each entry of `batch` (one task of a worker)."""
    return [pack_entry(entry, settings) for entry in batch]


def _packed(
    entries: list[Entry], settings: PackSettings, executor: ProcessPoolExecutor | None, workers: int
) -> Iterator[tuple[list[Item], list[Skip]]]:
    """`pack_entry` of each entry, in order; with `executor`, a few batches per worker in flight at a time."""
    source = _drain(entries)
    if executor is None:
        yield from (pack_entry(entry, settings) for entry in source)
        return
    size = max(1, min(16, len(entries) // (4 * workers)))
    pending: deque[Future] = deque()

    def submit() -> None:
        batch = list(itertools.islice(source, size))
        if batch:
            pending.append(executor.submit(_pack_batch, batch, settings))

    for _ in range(2 * workers):
        submit()
    while pending:
        results = pending.popleft().result()
        submit()
        yield from results


def _drain(entries: list[Entry]) -> Iterator[Entry]:
    """The entries in order, each removed from `entries` as it is taken (so a packed sample can be freed)."""
    entries.reverse()
    while entries:
        yield entries.pop()


def _part_items(part_dir: Path) -> int:
    index = part_dir / "index.json"
    if not index.is_file():
        return 0
    return sum(c["chunk_size"] for c in json.loads(index.read_text())["chunks"])


def pack_parts(
    parts: Iterator[list[Entry]],
    out: Path,
    plan: dict[str, Any],
    settings: PackSettings,
    workers: int,
    chunk_bytes: str,
    force: bool,
    reader_skips: Skips,
    started: float,
) -> PackReport:
    """Pack each part not yet done, then merge the parts (see the module docstring)."""
    parts_root = _open_parts(out, plan, force)
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    executor: ProcessPoolExecutor | None = None
    packed = kept = scenes = 0
    try:
        for k, entries in enumerate(parts):
            part_dir = parts_root / f"part-{k:05d}"
            done = part_dir / "done.json"
            scenes += len(entries)
            if done.is_file():
                kept += 1
                continue
            if part_dir.exists():
                shutil.rmtree(part_dir)
            if executor is None and workers > 1 and len(entries) > 1:
                executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method))
            n = len(entries)
            skips = write_part(entries, part_dir, settings, chunk_bytes, executor, workers)  # empties `entries`
            done.write_text(json.dumps({"items": _part_items(part_dir), "scenes": n, **skips.as_json()}))
            packed += 1
            log.info("part %d: %d samples", k, n)
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
    report = _finish(out, plan, reader_skips, scenes)
    report.parts, report.seconds = (packed, kept), time.perf_counter() - started
    shutil.rmtree(parts_root)
    return report


def _finish(out: Path, plan: dict[str, Any], reader_skips: Skips, scenes: int) -> PackReport:
    """Move every part's chunks into `out`, write the merged LitData `index.json` and `pack.json`.

    Raises:
        ValueError: when nothing was packed (every sample skipped).
    """
    parts = sorted(p for p in (out / ".parts").glob("part-*") if p.is_dir())
    chunks: list[dict[str, Any]] = []
    config: dict[str, Any] | None = None
    skips = Skips()
    skips.reasons[READER_SKIPS] = []
    skips.update(reader_skips)
    for part in parts:
        skips.update(json.loads((part / "done.json").read_text()))
        index = part / "index.json"
        if not index.is_file():
            continue
        part_index = json.loads(index.read_text())
        config = config or part_index["config"]
        for chunk in part_index["chunks"]:
            name = f"{part.name}-{chunk['filename']}"
            if (part / chunk["filename"]).is_file():
                os.replace(part / chunk["filename"], out / name)
            chunks.append({**chunk, "filename": name})
    report = PackReport(str(out), skipped=skips.counts, reasons=skips.reasons, scenes=scenes)
    report.samples = sum(c["chunk_size"] for c in chunks)
    if config is None:
        raise ValueError(f"{out}: nothing was packed (every sample was skipped: {dict(report.skipped)})")
    (out / "index.json").write_text(json.dumps({"chunks": chunks, "config": config, "updated_at": str(time.time())}))
    manifest = {
        **plan,
        "samples": report.samples,
        "skipped": skips.as_json()["skipped"],
        "reasons": report.reasons,
        "encoding": f"PNG (lossless), compress level {PNG_LEVEL}",
        "rsvlm_pack_version": 1,
        "scenes": scenes,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return report


__all__ = ["PackReport", "pack_parts", "write_part"]
