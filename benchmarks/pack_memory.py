"""Peak memory of packing and streaming a generated annotation file of many records (default 1,000,000).

    python benchmarks/pack_memory.py [--records 1000000] [--workers 2] [--part-size 20000] [--chunk-bytes 64MB]
                                     [--stream 1000000] [--keep DIR]

Writes an Osprey JSON Lines file (one record per line: a 32 px image named from 8 generated PNGs, one polygon
region with its box, one question and answer) without holding it in memory, packs it with
`rsvlm_zoo.data.pack.pack` (`.jsonl` is read `--part-size` records at a time), then reads `--stream` packed
records back with `StreamingSource.record` (no image decode). Prints the annotation size, wall times, this
process's resident memory after each packed part and while streaming (anonymous memory, and file-backed pages:
shared libraries and the mapped shard files LitData reads, which the kernel can drop), and the peak resident
memory (ru_maxrss) of this process and of the largest child process (the packing workers).

The packing process holds one part of samples and LitData's writer buffers up to one chunk (its serialized
items, the items themselves and the chunk being assembled, about 3 x `--chunk-bytes`), so the peak does not
grow with the number of records; it grows with `--part-size` and `--chunk-bytes`.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def peak_mib(who: int) -> float:
    """Peak resident set size in MiB (`ru_maxrss` is KiB on Linux)."""
    return resource.getrusage(who).ru_maxrss / 1024


def rss_now() -> str:
    """This process's resident memory now: anonymous (heap) and file-backed (mapped files), from /proc."""
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    except OSError:
        return "n/a"
    anon, files = (int(fields[k].split()[0]) / 1024 for k in ("RssAnon", "RssFile"))
    return f"{anon:.0f} MiB anonymous + {files:.0f} MiB file-backed"


def write_records(path: Path, images: list[str], n: int) -> None:
    """`n` Osprey records, one JSON object per line, written as they are made."""
    with open(path, "w", encoding="utf-8") as f:
        for k in range(n):
            x = k % 20
            record = {
                "id": k,
                "file_name": images[k % len(images)],
                "height": 32,
                "width": 32,
                "annotation": [{"bbox": [x, 2, 8, 10], "segmentation": [[x, 2, x + 8, 2, x + 8, 12, x, 12]]}],
                "conversations": [
                    {"from": "human", "value": "<image>\nWhat is in <mask><pos>?"},
                    {"from": "gpt", "value": f"object number {k}"},
                ],
            }
            f.write(json.dumps(record) + "\n")


class PartMemory(logging.Handler):
    """Prints this process's resident memory after each packed part (the writer logs one line per part)."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"pack: {record.getMessage()}, {rss_now()}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--part-size", type=int, default=20000)
    parser.add_argument("--chunk-bytes", default="64MB", help="largest shard file (the writer buffers one chunk)")
    parser.add_argument("--stream", type=int, default=None, help="records read back (default: all)")
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    args = parser.parse_args()

    from rsvlm_zoo.data.pack import pack
    from rsvlm_zoo.data.sources import StreamingSource

    part_log = logging.getLogger("rsvlm_zoo.data.packing.writer")
    part_log.setLevel(logging.INFO)
    part_log.addHandler(PartMemory())

    with tempfile.TemporaryDirectory(prefix="rsvlm-packmem-") as tmp:
        root = args.keep or Path(tmp)
        (root / "images").mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(0)
        names = []
        for k in range(8):
            names.append(f"scene{k}.png")
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(root / "images" / names[-1])
        annotation = root / "regions.jsonl"
        t0 = time.perf_counter()
        write_records(annotation, names, args.records)
        t_write = time.perf_counter() - t0
        size = annotation.stat().st_size / 2**20
        print(f"{args.records} records, {size:.0f} MiB JSON Lines, written in {t_write:.0f} s")
        base = peak_mib(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        report = pack(
            "osprey",
            annotation,
            root / "shards",
            images=root / "images",
            input_size=32,
            workers=args.workers,
            part_size=args.part_size,
            chunk_bytes=args.chunk_bytes,
            force=True,
        )
        t_pack = time.perf_counter() - t0
        after_pack = peak_mib(resource.RUSAGE_SELF)
        print(f"pack: {report.summary()}")
        print(f"pack: {args.records / t_pack:.0f} records/s")
        source = StreamingSource(root / "shards")
        n = len(source) if args.stream is None else min(args.stream, len(source))
        t0 = time.perf_counter()
        regions = 0
        print(f"stream: before reading, {rss_now()}")
        for i in range(n):
            regions += len(source.record(i)[1].regions)
            if (i + 1) % max(1, n // 4) == 0:
                print(f"stream: after {i + 1} records, {rss_now()}", flush=True)
        t_stream = time.perf_counter() - t0
        print(f"stream: {n} records ({regions} regions) in {t_stream:.0f} s, {n / t_stream:.0f} records/s")
        print(
            f"peak RSS, this process: {base:.0f} MiB before packing, {after_pack:.0f} MiB after packing, "
            f"{peak_mib(resource.RUSAGE_SELF):.0f} MiB after streaming"
        )
        print(f"peak RSS, largest child (packing worker): {peak_mib(resource.RUSAGE_CHILDREN):.0f} MiB")


if __name__ == "__main__":
    main()
