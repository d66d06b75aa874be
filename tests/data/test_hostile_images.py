"""Hostile image files and scene sizes end in an ImageReadError / DataFormatError naming file, reason and fix.

Every hostile file is made here in tmp_path and stays small: bombs are tested under a lowered pixel limit, and the
one test at the default limit uses a TIFF whose header alone declares 40000 x 40000 pixels.
"""

from __future__ import annotations

import struct
import time
import tracemalloc
import warnings

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageOps

from rsvlm_zoo.data import images as images_module
from rsvlm_zoo.data import tiling as tiling_module
from rsvlm_zoo.data.check import check_image
from rsvlm_zoo.data.images import ImageReadError, ImageWindow, image_size, load_image
from rsvlm_zoo.data.processor import InputSpec
from rsvlm_zoo.data.schema import DataFormatError, Region, Sample, Turn
from rsvlm_zoo.data.tiling import axis_count, axis_starts
from rsvlm_zoo.datamodules import RegionDataModule, TiledSource
from rsvlm_zoo.tokens import build_tiny_tokenizer
from tests.sources import ListSource

SMALL_LIMIT = 1_000_000


@pytest.fixture
def small_limit(monkeypatch):
    monkeypatch.setattr(images_module, "MAX_IMAGE_PIXELS", SMALL_LIMIT)
    return SMALL_LIMIT


def huge_header_tiff(path, width=40_000, height=40_000):
    """A 64 x 64 uncompressed TIFF whose ImageWidth/ImageLength tags are rewritten to width x height."""
    tifffile.imwrite(path, np.zeros((64, 64), np.uint8))
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages.first.tags
        spots = {name: (tags[name].valueoffset, tags[name].dtype) for name in ("ImageWidth", "ImageLength")}
    data = bytearray(path.read_bytes())
    for name, value in (("ImageWidth", width), ("ImageLength", height)):
        offset, dtype = spots[name]
        fmt = "<I" if dtype == 4 else "<H"
        struct.pack_into(fmt, data, offset, value)
    path.write_bytes(bytes(data))
    return path


def huge_header_jpeg(path, width=65_000, height=65_000):
    """A small JPEG whose SOF0 frame header is rewritten to declare width x height."""
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(path, quality=90)
    data = bytearray(path.read_bytes())
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    path.write_bytes(bytes(data))
    return path


def refused_quickly(call, path, match):
    """`call(path)` raises ImageReadError matching `match` within 10 s, allocating under 100 MB from Python."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no DecompressionBombWarning either
            with pytest.raises(ImageReadError, match=match) as info:
                call(path)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert time.perf_counter() - start < 10.0
    assert peak < 100 * 2**20
    assert isinstance(info.value, DataFormatError)
    return str(info.value)


@pytest.mark.parametrize("call", [image_size, load_image, check_image, lambda p: ImageWindow(p, (0, 0, 8, 8)).load()])
def test_header_only_huge_tiff_is_refused_at_the_default_limit(tmp_path, call):
    assert images_module.MAX_IMAGE_PIXELS == images_module.DEFAULT_MAX_IMAGE_PIXELS == 20_000 * 20_000
    path = huge_header_tiff(tmp_path / "huge.tif")
    assert path.stat().st_size < 10_000
    message = refused_quickly(call, path, r"huge.tif: image declares 40000x40000 = 1,600,000,000 pixels")
    assert "over the limit of 400,000,000" in message and "RSVLM_MAX_IMAGE_PIXELS" in message


@pytest.mark.parametrize("call", [image_size, load_image, check_image])
def test_huge_jpeg_header_is_refused_at_the_default_limit(tmp_path, call):
    path = huge_header_jpeg(tmp_path / "huge.jpg")
    message = refused_quickly(call, path, r"huge.jpg: image declares 65000x65000 = 4,225,000,000 pixels, over the")
    assert "RSVLM_MAX_IMAGE_PIXELS" in message


@pytest.mark.parametrize("size", [(2000, 2000), (1200, 1000)])  # over twice the limit (PIL's error), over it (warning)
@pytest.mark.parametrize("call", [image_size, load_image, check_image])
def test_png_bomb_is_refused_without_a_pil_traceback(tmp_path, small_limit, size, call):
    path = tmp_path / "bomb.png"
    Image.new("L", size).save(path)
    assert path.stat().st_size < 20_000  # all zeros: a tiny file for millions of pixels
    saved = Image.MAX_IMAGE_PIXELS
    width, height = size
    message = refused_quickly(call, path, rf"bomb.png: image declares {width}x{height} = {width * height:,} pixels")
    assert "over the limit of 1,000,000" in message and "RSVLM_MAX_IMAGE_PIXELS" in message
    assert Image.MAX_IMAGE_PIXELS == saved  # PIL's own limit is restored


def test_our_limit_governs_pil_in_both_directions(tmp_path, monkeypatch, small_limit):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # PIL stricter than ours: ours decides
    path = tmp_path / "ok.png"
    Image.new("RGB", (900, 1000), (1, 2, 3)).save(path)
    assert image_size(path) == (900, 1000) and check_image(path) == (900, 1000)
    assert load_image(path).shape == (1000, 900, 3)
    assert Image.MAX_IMAGE_PIXELS == 1000


@pytest.mark.parametrize("call", [image_size, load_image, check_image])
def test_compressed_tiff_bomb_is_refused_before_tifffile_decodes(tmp_path, small_limit, call):
    path = tmp_path / "bomb.tif"
    tifffile.imwrite(path, np.zeros((2000, 2000), np.uint8), compression="zlib")
    assert path.stat().st_size < 100_000
    refused_quickly(call, path, r"bomb.tif: image declares 2000x2000 = 4,000,000 pixels, over the limit of 1,000,000")


def test_multiband_tiffs_pil_cannot_open_are_checked_by_tifffile(tmp_path, monkeypatch):
    monkeypatch.setattr(images_module, "MAX_IMAGE_PIXELS", 10_000)
    planar = tmp_path / "planar.tif"
    tifffile.imwrite(planar, np.zeros((5, 120, 100), np.float32), photometric="minisblack", planarconfig="separate")
    for call in (image_size, load_image, check_image):
        refused_quickly(call, planar, r"planar.tif: image declares 100x120 = 12,000 pixels")
    pages = tmp_path / "pages.tif"  # 9000 px pages, 5 of them read as bands: 45000 values > 4 x 10000
    tifffile.imwrite(pages, np.zeros((5, 90, 100), np.uint8))
    refused_quickly(load_image, pages, r"pages.tif: TIFF declares shape \(5, 90, 100\) .* = 45,000 values, over 4")
    assert image_size(pages) == (100, 90)
    monkeypatch.setattr(images_module, "MAX_IMAGE_PIXELS", 20_000)
    assert load_image(pages).shape == (90, 100, 3)


def test_truncated_tiff_is_caught_from_the_header(tmp_path):
    for name, array, options in [
        ("rgb.tif", np.full((64, 64, 3), 7, np.uint8), {}),
        ("bands.tif", np.ones((5, 64, 64), np.uint16), {"photometric": "minisblack", "planarconfig": "separate"}),
    ]:
        path = tmp_path / name
        tifffile.imwrite(path, array, **options)
        assert check_image(path) == (64, 64)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        assert image_size(path) == (64, 64)  # the header survives
        message = refused_quickly(check_image, path, rf"{name}: TIFF is truncated \(page 0 declares data up to byte")
        assert "re-download or re-export it" in message
        refused_quickly(load_image, path, rf"{name}: TIFF is truncated")


def test_pixel_limit_from_the_environment(monkeypatch):
    for text, value in [("", 20_000 * 20_000), ("123", 123), (" 1e9 ", 10**9), ("5000000000", 5 * 10**9)]:
        monkeypatch.setenv("RSVLM_MAX_IMAGE_PIXELS", text)
        assert images_module._limit_from_env() == value
    monkeypatch.delenv("RSVLM_MAX_IMAGE_PIXELS")
    assert images_module._limit_from_env() == images_module.DEFAULT_MAX_IMAGE_PIXELS
    for text in ("many", "0", "-5", "inf"):
        monkeypatch.setenv("RSVLM_MAX_IMAGE_PIXELS", text)
        with pytest.raises(ValueError, match=rf"RSVLM_MAX_IMAGE_PIXELS must be a positive number .* got '{text}'"):
            images_module._limit_from_env()


def marked_scene(width=40, height=20) -> np.ndarray:
    """Dark grey with a red 6x6 block at the stored top-left corner and a green one at the stored top-right."""
    array = np.full((height, width, 3), 60, np.uint8)
    array[:6, :6] = (255, 0, 0)
    array[:6, -6:] = (0, 255, 0)
    return array


def test_exif_rotated_jpeg_is_returned_as_viewed(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[images_module.EXIF_ORIENTATION] = 6  # viewed rotated 90 degrees clockwise
    Image.fromarray(marked_scene()).save(path, exif=exif, quality=95)
    assert Image.open(path).size == (40, 20)  # stored landscape
    pixels = load_image(path)
    assert image_size(path) == pixels.shape[1::-1] == (20, 40) == check_image(path)
    assert np.array_equal(pixels, np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB")))
    red, green = np.array([255, 0, 0]), np.array([0, 255, 0])
    assert np.abs(pixels[1:5, -5:-1].astype(int) - red).max() < 40  # stored top-left -> viewed top-right
    assert np.abs(pixels[-5:-1, -5:-1].astype(int) - green).max() < 40  # stored top-right -> viewed bottom-right


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pil_exif_transpose(tmp_path, orientation):
    path = tmp_path / f"o{orientation}.png"
    exif = Image.Exif()
    exif[images_module.EXIF_ORIENTATION] = orientation
    Image.fromarray(marked_scene(7, 5)).save(path, exif=exif)
    pixels = load_image(path)
    assert np.array_equal(pixels, np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB")))
    assert image_size(path) == pixels.shape[1::-1]


def test_tiffs_keep_their_stored_orientation(tmp_path):
    path = tmp_path / "o6.tif"
    tifffile.imwrite(path, marked_scene(), extratags=[(274, "H", 1, 6, False)])  # TIFF Orientation tag = 6
    assert image_size(path) == (40, 20) and load_image(path).shape == (20, 40, 3)


def test_axis_count_is_the_number_of_axis_starts():
    for length in (1, 63, 64, 65, 127, 128, 129, 1000, 1003):
        for tile, overlap in ((64, 0), (64, 8), (64, 63), (100, 37)):
            assert axis_count(length, tile, overlap) == len(axis_starts(length, tile, overlap))


def big_scene(width, height, sid="big") -> Sample:
    turns = [Turn("human", "<image>\nWhat is <mask><pos>?"), Turn("gpt", "a car")]
    return Sample("scene.png", width, height, [Region(box=(1, 1, 10, 10))], turns, sample_id=sid, source="ann.json")


def test_tiling_refuses_a_declared_million_pixel_wide_scene_before_allocating(monkeypatch):
    start = time.perf_counter()
    tracemalloc.start()
    try:
        source = TiledSource(ListSource([big_scene(1_000_000, 1_000_000), big_scene(1_000_000, 800, "wide")]), 512)
        assert source.index == [(0, None), (1, None)]
        with pytest.raises(DataFormatError, match=r"record 'big' in ann.json: scene declares 1000000x1000000 = "):
            source[0]
        with pytest.raises(DataFormatError, match=r"record 'wide' in ann.json: .*RSVLM_MAX_IMAGE_PIXELS.*width/height"):
            source[1]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20 and time.perf_counter() - start < 10.0


def test_tiles_per_scene_are_capped(monkeypatch):
    monkeypatch.setattr(tiling_module, "MAX_TILES_PER_SCENE", 100)
    source = TiledSource(ListSource([big_scene(1000, 1000), big_scene(600, 600, "ok")]), 64)
    with pytest.raises(
        DataFormatError, match=r"record 'big' in ann.json: a 1000x1000 scene gives 256 tiles .*cap of 100"
    ):
        source[0]
    assert [scene for scene, _ in source.index] == [0, 1]  # the refused scene: one entry; 'ok' keeps the tile it needs
    with pytest.raises(DataFormatError, match="MAX_TILES_PER_SCENE"):
        tiling_module.tile_windows(1000, 1000, (64, 64))
    assert len(tiling_module.tile_windows(640, 640, (64, 64))) == 100


def test_region_datamodule_skips_or_names_a_scene_too_large_to_tile(monkeypatch):
    good = Sample(
        np.zeros((40, 50, 3), np.uint8),
        50,
        40,
        [Region(box=(5, 5, 20, 15))],
        [Turn("human", "<image>\nWhat is <mask><pos>?"), Turn("gpt", "a car")],
        sample_id="good",
        source="ann.json",
    )
    spec = InputSpec(build_tiny_tokenizer(), (32, 32), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), 2)
    for on_bad_sample in ("error", "skip"):
        dm = RegionDataModule(
            train=ListSource([good, big_scene(1_000_000, 800)]),
            batch_size=4,
            image_policy="tile",
            tile_size=64,
            on_bad_sample=on_bad_sample,
        )
        dm.attach(spec)
        if on_bad_sample == "error":
            with pytest.raises(DataFormatError, match=r"record 'big' in ann.json: scene declares 1000000x800"):
                next(iter(dm.train_dataloader()))
        else:
            batch = next(iter(dm.train_dataloader()))
            assert batch["skipped"] == 1 and batch["sample_ids"] == ["good@x0y0"]
