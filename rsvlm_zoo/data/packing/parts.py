"""The reader's samples in parts of `part_size`, each sample with its position among all of them.

Every format is read by its own reader with `read_annotations`, and its skipped records are counted the same way
(`bad records (skipped)`, with the reader's messages). A JSON Lines file (`.jsonl`, formats `osprey` and
`llava`: one record per line) is read one part of lines at a time: the part's records are written as a JSON
list to a temporary file that the reader reads (a record without `id` gets its running position, as reading
the whole list would give), so only one part of records is held; skip messages name the annotation file and
the line. Every other format is one document (or a folder of files) that its reader parses whole, cut into parts
afterwards.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rsvlm_zoo.data.packing.settings import JSONL_FORMATS, READER_SKIPS, Skips
from rsvlm_zoo.data.schema import DataFormatError, Sample

Entry = tuple[int, Sample]
Document = tuple[Path, "str | None", "list[int] | None"]  # (file the reader reads, images, line of each record)


def is_jsonl(annotation: Path, format: str) -> bool:
    """Whether `annotation` is read a part of lines at a time.

    Raises:
        ValueError: a `.jsonl` file of a format that is not one record per line.
    """
    jsonl = annotation.suffix.lower() == ".jsonl" and annotation.is_file()
    if jsonl and format not in JSONL_FORMATS:
        raise ValueError(f"JSON Lines input is read for formats {JSONL_FORMATS}, not {format!r}")
    return jsonl


def read_parts(
    format: str,
    annotation: Path,
    images: str | None,
    split: str | None,
    part_size: int,
    options: dict[str, Any],
    skips: Skips,
) -> Iterator[list[Entry]]:
    """Parts of (position, sample) of `annotation` read by reader `format`; reader skips are added to `skips`.

    Raises:
        DataFormatError: file-level problems (see the reader), or a line of invalid JSON under
            `on_bad_record="error"`.
    """
    from rsvlm_zoo.data.readers import read_annotations

    if is_jsonl(annotation, format):
        documents: Iterator[Document] = _jsonl_documents(annotation, images, part_size, options, skips)
    else:
        documents = iter([(annotation, images, None)])
    emitted = 0
    for path, folder, line_of in documents:
        samples = read_annotations(format, path, folder, split, **options)
        report = getattr(samples, "report", None)
        if report is not None:
            skips.counts[READER_SKIPS] += report.skipped
            for reason in report.reasons:
                named = reason if line_of is None else _name_lines(reason, str(path), str(annotation), line_of)
                skips.add(READER_SKIPS, named, count=0)
        if line_of is not None:
            for sample in samples:
                sample.source = str(annotation)
        entries = list(enumerate(samples, start=emitted))
        emitted += len(entries)
        del samples, report  # only the parts hold the samples, so each is freed once packed
        while entries:
            part, entries = entries[:part_size], entries[part_size:]
            yield part


def _jsonl_documents(
    annotation: Path, images: str | None, part_size: int, options: dict[str, Any], skips: Skips
) -> Iterator[Document]:
    """One temporary JSON list file per `part_size` records of a JSON Lines file (rewritten for each part)."""
    from rsvlm_zoo.data.readers.captions import default_image_dir

    folder = str(default_image_dir(annotation, images))
    position = 0
    errors = options.get("encoding_errors", "strict")
    with (
        open(annotation, encoding="utf-8", errors=errors) as f,
        tempfile.TemporaryDirectory(prefix="rsvlm-pack-") as tmp,
    ):
        batch_file = Path(tmp) / "records.json"
        lines = iter(enumerate(f, start=1))
        while True:
            line_of: list[int] = []
            with open(batch_file, "w", encoding="utf-8") as out:
                out.write("[")
                for number, line in lines:
                    if not line.strip():
                        continue
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError as err:
                        message = f"{annotation}: line {number}: invalid JSON ({err.msg}); fix or remove the line"
                        if options.get("on_bad_record", "skip") == "error":
                            raise DataFormatError(message) from err
                        skips.add(READER_SKIPS, message)
                        continue
                    if isinstance(rec, dict):
                        rec.setdefault("id", position)
                    out.write(("," if line_of else "") + json.dumps(rec))
                    line_of.append(number)
                    position += 1
                    if len(line_of) == part_size:
                        break
                out.write("]")
            if not line_of:
                return
            yield batch_file, folder, line_of


def _name_lines(reason: str, batch_file: str, annotation: str, line_of: list[int]) -> str:
    """A reader's skip message about a part's temporary file, naming the annotation file and the line instead."""

    def line(m: re.Match) -> str:
        k = int(m.group(1))
        return f"line {line_of[k]}" if k < len(line_of) else m.group(0)

    return re.sub(r"record (\d+)", line, reason.replace(batch_file, annotation))


__all__ = ["is_jsonl", "read_parts"]
