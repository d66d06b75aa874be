"""Image loading for remote-sensing files: JPEG/PNG and 8/16-bit, single- and multiband TIFF, to RGB uint8."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from rsvlm_zoo.data.schema import DataFormatError

TIFF_SUFFIXES = (".tif", ".tiff")
PIL_RGB_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV")


class ImageReadError(DataFormatError):
    """An image is missing, truncated, corrupt or of an unsupported layout; the message names file and fix."""


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) from the file header only; pixels are not decoded.

    Raises:
        ImageReadError: when the file is missing or no header can be read.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: image file not found; check the images directory and the file name")
    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, UnidentifiedImageError, ValueError) as err:
        if path.suffix.lower() in TIFF_SUFFIXES:
            try:
                import tifffile

                with tifffile.TiffFile(path) as tif:
                    page = tif.pages[0]
                    return int(page.imagewidth), int(page.imagelength)
            except Exception as err2:  # noqa: BLE001 - any tifffile failure means an unreadable header
                raise ImageReadError(f"{path}: unreadable TIFF header ({err2}); re-export the file") from err2
        raise ImageReadError(f"{path}: unreadable image header ({err}); re-download or re-encode the file") from err


def stretch_to_uint8(band: np.ndarray, low: float = 2.0, high: float = 98.0) -> np.ndarray:
    """Scale one band of any numeric type to uint8 by a percentile stretch.

    The rule: values at the band's `low`-th percentile map to 0 and at its `high`-th percentile to 255
    (linear between, clipped outside; NaN -> 0). When those percentiles coincide the band's full
    min-max range is used, and a constant band becomes 0. uint8 bands are returned unchanged.
    """
    if band.dtype == np.uint8:
        return band
    if band.dtype == bool:
        return band.astype(np.uint8) * 255
    data = band.astype(np.float64)
    finite = data[np.isfinite(data)]
    if finite.size == 0:
        return np.zeros(band.shape, np.uint8)
    lo, hi = np.percentile(finite, [low, high])
    if hi <= lo:
        lo, hi = float(finite.min()), float(finite.max())
    if hi <= lo:
        return np.zeros(band.shape, np.uint8)
    scaled = (np.nan_to_num(data, nan=lo) - lo) / (hi - lo) * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def select_bands(array: np.ndarray, bands: Sequence[int] | None, path: Path) -> np.ndarray:
    """HxWxC (or HxW) -> HxWx3: `bands` picks three (or one, replicated); default first three or band 0."""
    if array.ndim == 2:
        array = array[:, :, None]
    n = array.shape[2]
    if bands is None:
        bands = [0, 1, 2] if n >= 3 else [0]
    bands = list(bands)
    if len(bands) not in (1, 3) or any(not -n <= b < n for b in bands):
        raise ImageReadError(f"{path}: bands={bands} must name 1 or 3 of its {n} bands (0-based)")
    out = array[:, :, bands]
    return np.repeat(out, 3, axis=2) if out.shape[2] == 1 else out


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        array, axes = series.asarray(), series.axes
    while array.ndim > 3 and array.shape[0] == 1:
        array, axes = array[0], axes[1:]
    if array.ndim == 3 and axes.endswith("YX"):  # planar: bands first
        array = np.moveaxis(array, 0, -1)
    if array.ndim not in (2, 3):
        raise ImageReadError(f"{path}: TIFF with axes {axes!r} and shape {array.shape}; expected one 2-D image")
    return array


def _read_pil(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        im.load()
        if im.mode in PIL_RGB_MODES:
            return np.asarray(im.convert("RGB"))
        return np.asarray(im)  # I;16, I, F: numeric, stretched by the caller


def load_image(path: str | Path, bands: Sequence[int] | None = None) -> np.ndarray:
    """Read an image file as an HxWx3 uint8 RGB array.

    JPEG/PNG/BMP in any PIL mode (palette, grey, RGBA, ...) are converted to RGB (alpha dropped).
    TIFFs are read with tifffile: single-band images are replicated to three channels, multiband
    images give `bands` (0-based, default the first three). Non-uint8 data (16-bit, float) is scaled
    per band with `stretch_to_uint8` (2nd-98th percentile stretch of that image).

    Args:
        path: Image file.
        bands: Three band indices (or one, replicated) for multiband images.

    Raises:
        ImageReadError: missing, truncated or corrupt file, or an unsupported layout.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: image file not found; check the images directory and the file name")
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            array = _read_tiff(path)
        else:
            array = _read_pil(path)
    except ImageReadError:
        raise
    except Exception as err:  # noqa: BLE001 - decoders raise many types for broken files
        raise ImageReadError(
            f"{path}: cannot decode image ({type(err).__name__}: {err}); the file is truncated or corrupt, "
            "re-download or re-encode it"
        ) from err
    array = select_bands(array, bands, path)
    if array.dtype != np.uint8:
        array = np.stack([stretch_to_uint8(array[:, :, c]) for c in range(3)], axis=2)
    return np.ascontiguousarray(array)


@dataclass(frozen=True)
class ImageWindow:
    """A rectangle of a scene image, decoded only when `load()` is called (tiles of large scenes).

    The whole file is decoded, the window copied out and the rest released; nothing is cached.

    Attributes:
        image: Image file, or an HxWx3 uint8 array (generated scenes).
        window: (x0, y0, x1, y1) in scene pixels, x1/y1 exclusive.
    """

    image: str | Path | np.ndarray
    window: tuple[int, int, int, int]

    def load(self) -> np.ndarray:
        """The window as an (y1 - y0, x1 - x0, 3) uint8 array.

        Raises:
            ImageReadError: when the scene cannot be read or does not contain the window.
        """
        scene = self.image if isinstance(self.image, np.ndarray) else load_image(self.image)
        x0, y0, x1, y1 = self.window
        h, w = scene.shape[:2]
        if x1 > w or y1 > h:
            raise ImageReadError(
                f"{self}: the scene is {w}x{h}, smaller than the tile window; fix the annotation's width/height"
            )
        return np.ascontiguousarray(scene[y0:y1, x0:x1])

    def __str__(self) -> str:
        x0, y0, x1, y1 = self.window
        name = "<array>" if isinstance(self.image, np.ndarray) else str(self.image)
        return f"{name}[x {x0}:{x1}, y {y0}:{y1}]"


def decode(image: str | Path | np.ndarray | ImageWindow) -> np.ndarray:
    """A sample's image as HxWx3 uint8: arrays as they are, windows cut from their scene, files decoded."""
    if isinstance(image, np.ndarray):
        return image
    if isinstance(image, ImageWindow):
        return image.load()
    return load_image(image)
