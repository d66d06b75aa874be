"""Settings, constants and skip bookkeeping shared by the packing modules."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

PACK_POLICIES = ("squash", "tile")
JSONL_FORMATS = ("osprey", "llava")
MANIFEST = "pack.json"
PNG_LEVEL = 1
MAX_REASONS = 20
READER_SKIPS = "bad records (skipped)"
INSTALL_HINT = "LitData is not installed; install it with pip install 'rsvlm_zoo[stream]' (or pip install litdata)"


def require_litdata() -> Any:
    """The `litdata` module.

    Raises:
        ImportError: when LitData is not installed, naming the extra that installs it.
    """
    try:
        import litdata
    except ImportError as err:
        raise ImportError(INSTALL_HINT) from err
    return litdata


def default_workers() -> int:
    """Packing processes when none is asked: the CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class PackSettings:
    """How samples are packed.

    Attributes:
        input_size: Side of the model input in pixels.
        image_policy: `squash` or `tile`.
        tile_overlap: Pixels shared by neighbouring tiles (`tile`).
        tile_min_visible: Fraction of a cut region that keeps it in a tile (`tile`).
    """

    input_size: int
    image_policy: str
    tile_overlap: int = 0
    tile_min_visible: float = 0.5


@dataclass
class Skips:
    """What was skipped: a count per kind and the first `MAX_REASONS` messages of each kind.

    Attributes:
        counts: Skips per kind (`bad records (skipped)`, `missing images`, `unreadable images`,
            `invalid geometry`, `dropped tiles`).
        reasons: Up to `MAX_REASONS` messages per kind, in the order they happened.
    """

    counts: Counter = field(default_factory=Counter)
    reasons: dict[str, list[str]] = field(default_factory=dict)

    def add(self, kind: str, message: str, count: int = 1) -> None:
        """Count `count` skips of `kind`; keep `message` while fewer than `MAX_REASONS` are kept."""
        self.counts[kind] += count
        found = self.reasons.setdefault(kind, [])
        if len(found) < MAX_REASONS:
            found.append(message)

    def update(self, other: Skips | dict[str, Any]) -> None:
        """Add the counts and messages of `other` (a `Skips` or its `as_json()`)."""
        if isinstance(other, Skips):
            counts, reasons = other.counts, other.reasons
        else:
            counts, reasons = other["skipped"], other["reasons"]
        self.counts.update(counts)
        for kind, found in reasons.items():
            have = self.reasons.setdefault(kind, [])
            have.extend(found[: MAX_REASONS - len(have)])

    def as_json(self) -> dict[str, Any]:
        """`{"skipped": counts, "reasons": messages}`, the form `update` reads back."""
        return {"skipped": {k: n for k, n in self.counts.items() if n}, "reasons": self.reasons}
