"""Fixtures of the metrics tests: the RSICD references, and a check that no JVM outlives a test module."""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = (ROOT / ".." / "shared" / "data").resolve()
RSICD_REFS = SHARED_DATA / "metrics" / "rsicd_test_references_coco.json"


def java_children() -> list[str]:
    """Command lines of the live (not zombie) `java` processes whose parent is this process."""
    me, found = os.getpid(), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(fields[1]) == me and fields[0] != "Z" and "java" in cmdline:
            found.append(cmdline)
    return found


@pytest.fixture(autouse=True, scope="module")
def no_jvm_left_behind():
    """Every JVM started by a test module is gone once the module's fixtures are torn down."""
    yield
    deadline = time.monotonic() + 10
    while java_children() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert java_children() == []


def rsicd_sets() -> tuple[list[str], list[list[str]]]:
    """One reference per RSICD test image as the prediction, the others as its references."""
    if not RSICD_REFS.is_file():
        pytest.skip(f"RSICD references {RSICD_REFS} are absent (shared sample data not checked out)")
    data = json.loads(RSICD_REFS.read_text(encoding="utf-8"))
    caps: dict[int, list[str]] = defaultdict(list)
    for ann in data["annotations"]:
        caps[ann["image_id"]].append(ann["caption"])
    ids = [k for k, v in caps.items() if len(v) > 1]
    return [caps[k][0] for k in ids], [caps[k][1:] for k in ids]
