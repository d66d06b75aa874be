"""Progress bars for long command-line work (many scenes, big annotation files, slow metrics).

Bars go to stderr, so stdout stays the command's result. They show when stderr is a terminal (tqdm's own rule);
`RSVLM_ZOO_PROGRESS=1` shows them anyway (a log file that should record progress), `RSVLM_ZOO_PROGRESS=0` hides
them. Training, validation, testing and prediction use Lightning's own bars.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

PROGRESS_ENV = "RSVLM_ZOO_PROGRESS"


def progress_disabled() -> bool | None:
    """The `disable` tqdm takes: False forces bars (`RSVLM_ZOO_PROGRESS=1`), True hides them (`=0`), None: auto.

    Raises:
        ValueError: the variable holds anything but 0 or 1, naming it.
    """
    value = os.environ.get(PROGRESS_ENV, "").strip()
    if value == "":
        return None
    if value not in ("0", "1"):
        raise ValueError(f"{PROGRESS_ENV}={value!r}: use 1 to show progress bars, 0 to hide them, or unset it")
    return value == "0"


def progress(items: Iterable[T], total: int | None = None, desc: str = "", unit: str = "it") -> Iterator[T]:
    """Iterate over `items` with a progress bar on stderr (see the module docstring for when it shows).

    Args:
        items: What to iterate over.
        total: The number of items when `items` has no length (None: taken from `len(items)` when it has one).
        desc: The bar's label, e.g. "describe".
        unit: What one item is, e.g. "scene".
    """
    from tqdm.auto import tqdm

    yield from tqdm(items, total=total, desc=desc, unit=unit, disable=progress_disabled(), dynamic_ncols=True)


class Steps:
    """A progress bar over a few named steps of one long task (read, match, score), on stderr like `progress`.

    Use as a context manager: `with Steps("eval", 3) as step: step("read"); ...; step("score")`. Each call
    completes the step before it and shows the new one's name; leaving the block completes the last.
    """

    def __init__(self, desc: str, total: int) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, desc=desc, unit="step", disable=progress_disabled(), dynamic_ncols=True)
        self._started = False

    def __call__(self, name: str) -> None:
        """Finish the current step (if any) and start the step called `name`."""
        if self._started:
            self._bar.update(1)
        self._started = True
        self._bar.set_postfix_str(name)

    def __enter__(self) -> Steps:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._started and exc[0] is None:
            self._bar.update(1)
        self._bar.close()
