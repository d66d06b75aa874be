"""SPICE 1.0 through pycocoevalcap's jar, with Stanford CoreNLP 3.6.0 jars from a local folder (no download).

pycocoevalcap's `Spice()` downloads CoreNLP at first use; this module never imports it. The two CoreNLP jars
(`stanford-corenlp-3.6.0.jar`, `stanford-corenlp-3.6.0-models.jar`, from stanford-corenlp-full-2015-12-09.zip)
are looked up in, in order: the `corenlp_dir` argument, the folder in `$RSVLM_SPICE_CORENLP_DIR`, and
pycocoevalcap's own `spice/lib` folder.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from rsvlm_zoo.metrics.java import pycocoevalcap_dir, run_java

SPICE_ENV = "RSVLM_SPICE_CORENLP_DIR"
CORENLP_JARS = ("stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar")
CORENLP_ZIP = "https://nlp.stanford.edu/software/stanford-corenlp-full-2015-12-09.zip"


class SpiceModelsNotFoundError(FileNotFoundError):
    """The Stanford CoreNLP 3.6.0 jars SPICE needs are not where they were looked for."""


def spice_dir() -> Path:
    """The SPICE folder of pycocoevalcap (spice-1.0.jar and its lib/)."""
    return pycocoevalcap_dir() / "spice"


def _missing(folder: Path) -> list[str]:
    return [name for name in CORENLP_JARS if not (folder / name).is_file()]


def resolve_corenlp_dir(corenlp_dir: str | os.PathLike[str] | None = None) -> Path:
    """Folder holding both CoreNLP 3.6.0 jars.

    Raises:
        SpiceModelsNotFoundError: naming the missing jars, where they were looked for and how to provide them.
    """
    given = corenlp_dir if corenlp_dir is not None else os.environ.get(SPICE_ENV) or None
    if given is not None:
        folder = Path(given).expanduser()
        source = "corenlp_dir" if corenlp_dir is not None else f"${SPICE_ENV}"
        missing = _missing(folder)
        if not missing:
            return folder.resolve()
        raise SpiceModelsNotFoundError(
            f"SPICE needs Stanford CoreNLP 3.6.0: {', '.join(missing)} not in {folder} (from {source}). "
            f"Put {CORENLP_JARS[0]} and {CORENLP_JARS[1]} (from {CORENLP_ZIP}) in that folder."
        )
    bundled = spice_dir() / "lib"
    if not _missing(bundled):
        return bundled
    raise SpiceModelsNotFoundError(
        f"SPICE needs Stanford CoreNLP 3.6.0 ({CORENLP_JARS[0]} and {CORENLP_JARS[1]}, from {CORENLP_ZIP}), "
        "which cannot be downloaded here. Put both jars in a folder and pass it as SPICE(corenlp_dir=...) / "
        f"`rsvlm eval --corenlp-dir`, or set ${SPICE_ENV} to it, or copy them into {bundled}."
    )


def spice_scores(
    hyps: Sequence[str],
    refs: Sequence[Sequence[str]],
    corenlp_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    max_heap: str = "8G",
) -> tuple[float, list[float]]:
    """Corpus SPICE (mean of per-sample "All" F-scores, NaN-propagating as pycocoevalcap) and per-sample F.

    Raises:
        SpiceModelsNotFoundError: when the CoreNLP jars are missing.
        JavaNotFoundError: when Java is absent.
    """
    folder = resolve_corenlp_dir(corenlp_dir)
    if not hyps:
        return 0.0, []
    jar_dir = spice_dir()
    classpath = os.pathsep.join([str(jar_dir / "spice-1.0.jar"), *(str(folder / name) for name in CORENLP_JARS)])
    with tempfile.TemporaryDirectory(prefix="rsvlm_spice_") as tmp:
        in_file, out_file = Path(tmp) / "input.json", Path(tmp) / "output.json"
        data = [{"image_id": i, "test": h, "refs": list(r)} for i, (h, r) in enumerate(zip(hyps, refs, strict=True))]
        in_file.write_text(json.dumps(data), encoding="utf-8")
        args = [f"-Xmx{max_heap}", "-cp", classpath, "edu.anu.spice.SpiceScorer", str(in_file)]
        if cache_dir is not None:
            args += ["-cache", str(cache_dir)]
        run_java([*args, "-out", str(out_file), "-subset", "-silent"], cwd=str(jar_dir))
        results = json.loads(out_file.read_text(encoding="utf-8"))
    by_id = {item["image_id"]: item["scores"]["All"]["f"] for item in results}
    scores = [_as_float(by_id.get(i)) for i in range(len(hyps))]
    return (math.fsum(scores) / len(scores)), scores


def _as_float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
