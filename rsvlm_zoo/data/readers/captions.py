"""Caption datasets: Karpathy-split JSON (RSICD, UCM, Sydney, RSITMD) and NWPU-Captions."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from rsvlm_zoo.caption_formats import in_split, karpathy_captions, karpathy_image_id
from rsvlm_zoo.data.readers._common import RecordErrors, check_split, expect, load_json, make_sample, resolve_image
from rsvlm_zoo.data.schema import DataFormatError, Sample

NWPU_CAPTION_KEYS = ("raw", "raw_1", "raw_2", "raw_3", "raw_4")


def default_image_dir(annotation: Path, images: str | Path | None) -> Path:
    """The given image directory, else `<annotation dir>/images` when it exists, else the annotation's dir."""
    if images is not None:
        return Path(images)
    return annotation.parent / "images" if (annotation.parent / "images").is_dir() else annotation.parent


def read_karpathy(
    annotation: str | Path,
    images: str | Path | None = None,
    split: str | None = None,
    *,
    on_bad_record: str = "error",
    allow_outside_images: bool = False,
    encoding_errors: str = "strict",
) -> list[Sample]:
    """Read a Karpathy caption file (`{images: [{filename, imgid, split, sentences: [{raw}]}]}`).

    Captions are the `raw` strings exactly as written (dataset typos kept). Sizes come lazily from
    the image headers (the format has none).

    Args:
        annotation: `dataset_rsicd.json`, `dataset.json`, ...
        images: Image directory (default `<annotation dir>/images` or the annotation's dir).
        split: Keep one split (`train`, `val`, `test`, `restval`); unknown names are an error.
        on_bad_record: `error` or `skip` (counted in the returned list's `.report`).
        allow_outside_images: Read images named outside `images` (absolute paths, `..`, links out).
        encoding_errors: `strict` or `replace` for non-UTF-8 bytes.
    """
    annotation = Path(annotation)
    data = load_json(annotation, encoding_errors)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DataFormatError(f"{annotation}: expected an object with an 'images' list (Karpathy format)")
    folder = default_image_dir(annotation, images)
    check_split(split, Counter(r.get("split") for r in data["images"] if isinstance(r, dict)), annotation)
    errors = RecordErrors(annotation, on_bad_record)
    samples: list[Sample] = []
    seen: dict[str, int] = {}
    for i, rec in enumerate(data["images"]):
        with errors.record(f"images[{i}]" + (f" imgid={rec.get('imgid')}" if isinstance(rec, dict) else "")):
            expect(rec, dict, "the record")
            if not in_split(rec, split):
                continue
            name = expect(rec["filename"], str, "filename")
            if rec.get("filepath"):
                name = f"{rec['filepath']}/{name}"
            captions = karpathy_captions(rec)
            sid = karpathy_image_id(rec) if rec.get("imgid", rec.get("id")) is not None else name
            if sid in seen:
                raise DataFormatError(f"imgid {sid} repeats images[{seen[sid]}]; image ids must be unique")
            seen[sid] = i
            samples.append(
                make_sample(
                    resolve_image(folder, name, allow_outside_images),
                    captions=captions,
                    sample_id=sid,
                    source=str(annotation),
                    split=rec.get("split"),
                    meta={k: rec[k] for k in ("label",) if k in rec},
                )
            )
    return errors.finish(samples)


def read_nwpu(
    annotation: str | Path,
    images: str | Path | None = None,
    split: str | None = None,
    *,
    on_bad_record: str = "error",
    allow_outside_images: bool = False,
    encoding_errors: str = "strict",
) -> list[Sample]:
    """Read NWPU-Captions (`{class: [{filename, split, imgid, raw, raw_1..raw_4}]}`).

    Images are `<images>/<class>/<filename>`; the class is kept in `meta["class"]`.

    Args:
        annotation: `dataset_nwpu.json`.
        images: Image root holding one folder per class (default as for Karpathy files).
        split: Keep one split; unknown names are an error.
        on_bad_record: `error` or `skip` (counted in the returned list's `.report`).
        allow_outside_images: Read images named outside `images` (absolute paths, `..`, links out).
        encoding_errors: `strict` or `replace` for non-UTF-8 bytes.
    """
    annotation = Path(annotation)
    data = load_json(annotation, encoding_errors)
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise DataFormatError(f"{annotation}: expected an object mapping class names to lists (NWPU-Captions)")
    folder = default_image_dir(annotation, images)
    present = Counter(r.get("split") for recs in data.values() for r in recs if isinstance(r, dict))
    check_split(split, present, annotation)
    errors = RecordErrors(annotation, on_bad_record)
    samples: list[Sample] = []
    for cls, records in data.items():
        for i, rec in enumerate(records):
            with errors.record(f"{cls}[{i}]" + (f" imgid={rec.get('imgid')}" if isinstance(rec, dict) else "")):
                expect(rec, dict, "the record")
                if split is not None and rec.get("split") != split:
                    continue
                name = expect(rec["filename"], str, "filename")
                captions = [expect(rec[k], str, k) for k in NWPU_CAPTION_KEYS if k in rec]
                if not captions:
                    raise DataFormatError("no captions (raw, raw_1..raw_4); add them or remove the record")
                samples.append(
                    make_sample(
                        resolve_image(folder, f"{cls}/{name}", allow_outside_images),
                        captions=captions,
                        sample_id=f"{cls}/{name}",
                        source=str(annotation),
                        split=rec.get("split"),
                        meta={"class": cls, "imgid": rec.get("imgid")},
                    )
                )
    return errors.finish(samples)
