"""Model files checked before any loader reads them, and loader failures turned into one message naming the file.

A file that is neither a Lightning checkpoint (a `torch.save` zip archive, or an older pickle stream) nor an exported
directory is refused from its first bytes (`check_model_file`); what loaders raise on a file of another kind
(`KeyError: 101` from a text file, a truncated archive) becomes one `ModelFileError` (`loading_model_file`).
"""

from __future__ import annotations

import contextlib
import pickle
import zipfile
from collections.abc import Iterator
from pathlib import Path

from safetensors import SafetensorError


class ModelFileError(ValueError):
    """A model file that cannot be loaded; the message names the file and why."""


# What loaders raise on a file that is no checkpoint or export (torch.load, zip, safetensors, a config of another
# shape); `loading_model_file` turns these into one `ModelFileError` naming the file.
MODEL_FILE_ERRORS: tuple[type[BaseException], ...] = (
    pickle.UnpicklingError,
    EOFError,
    RuntimeError,  # includes RecursionError
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    OverflowError,
    zipfile.BadZipFile,
    SafetensorError,
)


def _first_line(err: BaseException) -> str:
    text = str(err.args[0] if isinstance(err, KeyError) and err.args else err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0][:200]}" if text else type(err).__name__


def _not_a_model(path: str | Path, reason: str) -> ModelFileError:
    return ModelFileError(
        f"model file {path}: cannot be loaded: it is not a Lightning checkpoint written by rsvlm_zoo nor an "
        f"exported model directory ({reason})"
    )


def check_model_file(path: str | Path, allow_safetensors: bool = False) -> None:
    """Refuse a file that cannot be a checkpoint before any loader unpickles it.

    `torch.save` (and so Lightning) writes a zip archive; older PyTorch wrote a pickle (first byte 0x80). A
    directory (an export) or a missing path is left to the loader, which names it.

    Args:
        path: The model file.
        allow_safetensors: Also accept a `.safetensors` file (read by safetensors, which checks its own header).

    Raises:
        ModelFileError: naming the file and its first bytes.
    """
    path = Path(path)
    if not path.is_file():
        return
    if allow_safetensors and path.suffix == ".safetensors":
        return
    try:
        if zipfile.is_zipfile(path):
            return
        with path.open("rb") as f:
            head = f.read(16)
    except OSError as err:
        raise ModelFileError(f"model file {path}: cannot be read ({err.strerror or err})") from err
    if head[:1] == b"\x80":
        return
    what = "an empty file" if not head else f"it starts with {head!r}, not the zip archive torch.save writes"
    raise _not_a_model(path, what)


@contextlib.contextmanager
def loading_model_file(path: str | Path | None, passthrough: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """Run a model load, turning what a file of another kind makes the loaders raise into `ModelFileError`.

    Errors that already explain themselves pass through: `passthrough` kinds untouched, a `ValueError` (a
    loader's own check) with the file name put in front when its message lacks it.
    """
    try:
        yield
    except (ModelFileError, *passthrough):
        raise
    except ValueError as err:
        if path is None or str(path) in str(err):
            raise
        raise ModelFileError(f"model file {path}: {err}") from err
    except MODEL_FILE_ERRORS as err:
        raise _not_a_model(path, _first_line(err)) from err
