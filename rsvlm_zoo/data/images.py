"""Image loading for remote-sensing files: JPEG/PNG and 8/16-bit, single- and multiband TIFF, to RGB uint8.

Hostile files are refused from their headers, before any pixel is decoded, with an `ImageReadError` naming the
file, the reason and the fix:

* **Pixel limit.** An image whose header declares more than `MAX_IMAGE_PIXELS` pixels (width x height) is
  refused by every decoder (PIL and tifffile), and so is a TIFF whose first series holds more than
  `MAX_VALUES_PER_PIXEL` values (bands x pages) per pixel of that limit: an RGBA scene at the limit, or a full
  13-band Sentinel-2 tile (10980 px a side), fits. The default, 20000 x 20000, takes the largest common
  remote-sensing scenes (DOTA's reach 20000 px a side); raise it for larger genuine scenes with the environment
  variable `RSVLM_MAX_IMAGE_PIXELS` (read at import, e.g. `RSVLM_MAX_IMAGE_PIXELS=1e9`) or by setting
  `rsvlm_zoo.data.images.MAX_IMAGE_PIXELS`. PIL's own decompression-bomb check follows this limit.
* **Truncated TIFFs.** Every strip or tile a TIFF's pages declare must lie inside the file.
* **EXIF orientation.** Files decoded by PIL (JPEG, PNG, WebP, ...) are returned as they are meant to be
  viewed: `load_image` applies the EXIF orientation tag (as `PIL.ImageOps.exif_transpose` does) and
  `image_size` reports the size after it (orientations 5-8 swap width and height), so annotations drawn on the
  viewed image line up. Only EXIF found in the header counts (a PNG eXIf chunk after the pixel data is ignored
  by both). TIFFs are read and measured as stored, with tifffile: their Orientation tag is ignored, as GDAL
  does.

Kept in one file (over 300 lines) on purpose: every way an image is read (whole, windowed, TIFF bands) passes the
same header checks and limits, defined once here.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from rsvlm_zoo.data.schema import DataFormatError

TIFF_SUFFIXES = (".tif", ".tiff")
PIL_RGB_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV")
PIXEL_LIMIT_ENV = "RSVLM_MAX_IMAGE_PIXELS"
DEFAULT_MAX_IMAGE_PIXELS = 20_000 * 20_000
MAX_VALUES_PER_PIXEL = 4  # TIFF series values (bands x pages) per pixel of the limit: an RGBA scene at the limit
EXIF_ORIENTATION = 0x0112


def _limit_from_env() -> int:
    """`RSVLM_MAX_IMAGE_PIXELS` as a positive int (plain or scientific notation), or the default when unset.

    Raises:
        ValueError: when the variable is set to anything but a positive number.
    """
    text = os.environ.get(PIXEL_LIMIT_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_IMAGE_PIXELS
    try:
        value = int(text) if text.isdigit() else int(float(text))
    except (ValueError, OverflowError):
        value = 0
    if value <= 0:
        raise ValueError(
            f"{PIXEL_LIMIT_ENV} must be a positive number of pixels (e.g. 1000000000 or 1e9), got {text!r}"
        )
    return value


MAX_IMAGE_PIXELS: int = _limit_from_env()


class ImageReadError(DataFormatError):
    """An image is missing, truncated, corrupt or of an unsupported layout; the message names file and fix."""


def pixel_limit_problem(width: int, height: int) -> str | None:
    """Why a width x height image is refused (more than `MAX_IMAGE_PIXELS` pixels), or None when it is not."""
    pixels = int(width) * int(height)
    if pixels <= MAX_IMAGE_PIXELS:
        return None
    return (
        f"declares {int(width)}x{int(height)} = {pixels:,} pixels, over the limit of {MAX_IMAGE_PIXELS:,} "
        f"(a decompression bomb or a damaged header); if the image is genuine, raise the limit with the "
        f"environment variable {PIXEL_LIMIT_ENV}=<pixels> or rsvlm_zoo.data.images.MAX_IMAGE_PIXELS"
    )


def _check_pixels(path: Path, width: int, height: int) -> None:
    problem = pixel_limit_problem(width, height)
    if problem:
        raise ImageReadError(f"{path}: image {problem}")


@contextmanager
def open_pil(path: Path) -> Iterator[Image.Image]:
    """`PIL.Image.open` under `MAX_IMAGE_PIXELS`: the header is read and checked, pixels are not decoded yet.

    PIL's own decompression-bomb check is off while the header is read (the check here names the declared size)
    and follows `MAX_IMAGE_PIXELS` while the image is open (frames PIL sizes on decoding, e.g. GIF's); PIL's
    setting is restored on exit, and its refusals become `ImageReadError`s.

    Raises:
        ImageReadError: when the header declares more pixels than the limit.
        OSError, UnidentifiedImageError, ValueError: what PIL raises for files it cannot read.
    """
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused or allowed by our limit
            with Image.open(path) as im:
                _check_pixels(path, *im.size)
                Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
                yield im
    except Image.DecompressionBombError as err:
        raise ImageReadError(
            f"{path}: image refused by the pixel limit ({err}); if the image is genuine, raise the limit with the "
            f"environment variable {PIXEL_LIMIT_ENV}=<pixels> or rsvlm_zoo.data.images.MAX_IMAGE_PIXELS"
        ) from err
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def exif_orientation(im: Image.Image) -> int:
    """The EXIF orientation (1-8) found in the header of an open image; 1 when absent or invalid.

    Reads only what `Image.open` parsed (`Image.Image.getexif` skips PNG's override, which decodes the pixels).
    """
    try:
        value = int(Image.Image.getexif(im).get(EXIF_ORIENTATION, 1))
    except Exception:  # noqa: BLE001 - a broken EXIF block means no usable orientation
        return 1
    return value if 1 <= value <= 8 else 1


def orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """An HxW[xC] array as EXIF `orientation` says it is viewed (the transposition of `ImageOps.exif_transpose`)."""
    if orientation in (5, 6, 7, 8):
        array = array.swapaxes(0, 1)  # 5 transpose; 6 = transpose + flip left-right, and so on
    flip_rows = orientation in (3, 4, 7, 8)
    flip_cols = orientation in (2, 3, 6, 7)
    return array[:: -1 if flip_rows else 1, :: -1 if flip_cols else 1]


def _check_tiff_header(tif: Any, path: Path, size: int) -> None:
    """Refuse a TIFF from its header: pixel limit (first page, first series) and data beyond the end of the file.

    Raises:
        ImageReadError: naming the file, the reason and the fix.
    """
    page = tif.pages.first
    _check_pixels(path, page.imagewidth, page.imagelength)
    series = tif.series[0]
    shape, axes = tuple(int(n) for n in series.shape), series.axes
    if "Y" in axes and "X" in axes:
        _check_pixels(path, shape[axes.index("X")], shape[axes.index("Y")])
    values = math.prod(shape)
    if values > MAX_VALUES_PER_PIXEL * MAX_IMAGE_PIXELS:
        raise ImageReadError(
            f"{path}: TIFF declares shape {shape} (axes {axes!r}) = {values:,} values, over {MAX_VALUES_PER_PIXEL} "
            f"values per pixel of the limit of {MAX_IMAGE_PIXELS:,} pixels; if the image is genuine, raise the "
            f"limit with the environment variable {PIXEL_LIMIT_ENV}=<pixels> or rsvlm_zoo.data.images.MAX_IMAGE_PIXELS"
        )
    for k, p in enumerate(tif.pages):
        for offset, count in zip(p.dataoffsets, p.databytecounts, strict=True):
            if count and offset + count > size:
                raise ImageReadError(
                    f"{path}: TIFF is truncated (page {k} declares data up to byte {offset + count:,}, the file has "
                    f"{size:,} bytes); re-download or re-export it"
                )


def check_tiff(path: str | Path) -> None:
    """Header-level check of a TIFF with tifffile (no decoding): pixel limit, and no data past the end of the file.

    Raises:
        ImageReadError: an unreadable header, a size over the limit, or a truncated file.
    """
    import tifffile

    path = Path(path)
    try:
        with tifffile.TiffFile(path) as tif:
            _check_tiff_header(tif, path, path.stat().st_size)
    except ImageReadError:
        raise
    except Exception as err:  # noqa: BLE001 - any tifffile failure means an unreadable header
        raise ImageReadError(f"{path}: unreadable TIFF header ({err}); re-export the file") from err


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) from the file header only, as `load_image` returns the image; pixels are not decoded.

    TIFFs are measured with tifffile, as stored; other files with PIL, after their EXIF orientation (see the
    module docstring).

    Raises:
        ImageReadError: when the file is missing, no header can be read, or it declares more than
            `MAX_IMAGE_PIXELS` pixels.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: image file not found; check the images directory and the file name")
    if path.suffix.lower() in TIFF_SUFFIXES:
        try:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                page = tif.pages.first
                width, height = int(page.imagewidth), int(page.imagelength)
        except Exception as err:  # noqa: BLE001 - any tifffile failure means an unreadable header
            raise ImageReadError(f"{path}: unreadable TIFF header ({err}); re-export the file") from err
        _check_pixels(path, width, height)
        return width, height
    try:
        with open_pil(path) as im:
            width, height = im.size
            if exif_orientation(im) >= 5:
                width, height = height, width
            return width, height
    except ImageReadError:
        raise
    except (OSError, UnidentifiedImageError, ValueError) as err:
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
        _check_tiff_header(tif, path, path.stat().st_size)  # before anything is decoded
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
    with open_pil(path) as im:
        orientation = exif_orientation(im)
        im.load()
        if im.mode in PIL_RGB_MODES:
            array = np.asarray(im.convert("RGB"))
        else:
            array = np.asarray(im)  # I;16, I, F: numeric, stretched by the caller
    return orient(array, orientation)


def load_image(path: str | Path, bands: Sequence[int] | None = None) -> np.ndarray:
    """Read an image file as an HxWx3 uint8 RGB array.

    JPEG/PNG/BMP in any PIL mode (palette, grey, RGBA, ...) are converted to RGB (alpha dropped) and turned
    as their EXIF orientation says.
    TIFFs are read with tifffile: single-band images are replicated to three channels, multiband
    images give `bands` (0-based, default the first three). Non-uint8 data (16-bit, float) is scaled
    per band with `stretch_to_uint8` (2nd-98th percentile stretch of that image).

    Args:
        path: Image file.
        bands: Three band indices (or one, replicated) for multiband images.

    Raises:
        ImageReadError: missing, truncated or corrupt file, an unsupported layout, or a header declaring more
            than `MAX_IMAGE_PIXELS` pixels (refused before decoding).
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
