"""Image loading: formats, bit depths, bands, and broken files."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image
from rsdata_helpers import write_image

from rsvlm_zoo.data.images import ImageReadError, image_size, load_image, stretch_to_uint8
from rsvlm_zoo.data.schema import DataFormatError


@pytest.mark.parametrize("mode", ["RGB", "L", "P", "RGBA"])
def test_png_modes_to_rgb(tmp_path, mode):
    path = write_image(tmp_path / f"x_{mode}.png", 20, 10, mode)
    arr = load_image(path)
    assert arr.shape == (10, 20, 3) and arr.dtype == np.uint8
    assert image_size(path) == (20, 10)


def test_jpeg_and_missing(tmp_path):
    path = write_image(tmp_path / "a.jpg", 16, 8)
    assert load_image(path).shape == (8, 16, 3)
    with pytest.raises(ImageReadError, match=r"nope.jpg: image file not found") as info:
        load_image(tmp_path / "nope.jpg")
    assert isinstance(info.value, DataFormatError)
    with pytest.raises(ImageReadError, match="not found"):
        image_size(tmp_path / "nope.jpg")


def test_truncated_jpeg(tmp_path):
    path = write_image(tmp_path / "t.jpg", 64, 64)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert image_size(path) == (64, 64)  # the header survives
    with pytest.raises(ImageReadError, match=r"t.jpg: cannot decode image .*truncated or corrupt"):
        load_image(path)


def test_corrupt_file(tmp_path):
    path = tmp_path / "c.png"
    path.write_bytes(b"not an image at all")
    with pytest.raises(ImageReadError, match="c.png"):
        image_size(path)
    with pytest.raises(ImageReadError, match="c.png"):
        load_image(path)


def test_16bit_single_band_tiff_is_stretched(tmp_path):
    rng = np.random.default_rng(0)
    band = rng.integers(1000, 3000, (30, 40)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "s.tif", band)
    arr = load_image(tmp_path / "s.tif")
    assert arr.shape == (30, 40, 3) and arr.dtype == np.uint8
    assert (arr[..., 0] == arr[..., 1]).all() and (arr[..., 0] == arr[..., 2]).all()
    lo, hi = np.percentile(band, [2, 98])
    assert arr.min() == 0 and arr.max() == 255  # the 2nd-98th percentile stretch saturates both tails
    assert np.array_equal(arr[..., 0], stretch_to_uint8(band))
    mid = np.argmin(np.abs(band - (lo + hi) / 2))
    assert abs(int(arr[..., 0].flat[mid]) - 128) <= 3
    assert image_size(tmp_path / "s.tif") == (40, 30)


def test_8bit_tiff_unchanged_and_multiband_selection(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 255, (8, 9, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb)
    assert np.array_equal(load_image(tmp_path / "rgb.tif"), rgb)
    bands = np.stack([np.full((8, 9), v, np.uint8) for v in (10, 20, 30, 40, 50)])  # planar (C, H, W)
    tifffile.imwrite(tmp_path / "ms.tif", bands, photometric="minisblack", planarconfig="separate")
    assert load_image(tmp_path / "ms.tif")[0, 0].tolist() == [10, 20, 30]
    assert load_image(tmp_path / "ms.tif", bands=[3, 2, 1])[0, 0].tolist() == [40, 30, 20]
    assert load_image(tmp_path / "ms.tif", bands=[4])[0, 0].tolist() == [50, 50, 50]
    with pytest.raises(ImageReadError, match="must name 1 or 3 of its 5 bands"):
        load_image(tmp_path / "ms.tif", bands=[0, 9, 1])


def test_constant_and_float_bands():
    assert (stretch_to_uint8(np.full((3, 3), 7, np.uint16)) == 0).all()
    out = stretch_to_uint8(np.array([[0.0, np.nan], [0.5, 1.0]], np.float32), 0, 100)
    assert out.tolist() == [[0, 0], [128, 255]]


def test_real_tiff_and_jpeg(real_data):
    arr = load_image(real_data / "captions/ucm/images/1.tif")
    assert arr.shape == (256, 256, 3) and arr.dtype == np.uint8
    with Image.open(real_data / "captions/rsicd/images/00001.jpg") as im:
        assert np.array_equal(load_image(real_data / "captions/rsicd/images/00001.jpg"), np.asarray(im.convert("RGB")))
