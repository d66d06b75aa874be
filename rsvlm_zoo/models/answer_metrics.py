"""Metric objects for generated answers, by name, for validation and test runs."""

from __future__ import annotations

from typing import Any

from rsvlm_zoo.metrics.exact_match import ExactMatch


def build_answer_metrics(names: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """Fresh metric objects keyed by the name they are logged under.

    Raises:
        ValueError: naming the known metric names.
    """
    out: dict[str, Any] = {}
    for name in names:
        if name == "exact_match":
            out[name] = ExactMatch()
        elif name == "cider":
            from rsvlm_zoo.metrics import CIDEr

            out[name] = CIDEr()
        else:
            raise ValueError(f"unknown eval metric {name!r}; known: exact_match, cider")
    return out
