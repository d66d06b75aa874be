"""Tiling large scenes: windows, the cut-object rule, re-indexing, round trips through the processor."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from rsvlm_zoo.data import images as images_module
from rsvlm_zoo.data.geometry import decode_rle, rasterise_polygons
from rsvlm_zoo.data.images import ImageWindow, decode
from rsvlm_zoo.data.processor import InputSpec, RegionProcessor
from rsvlm_zoo.data.schema import DataFormatError, Region, Sample, Turn
from rsvlm_zoo.data.tiling import TileDropped, clip_region, mask_patch, rle_patch, tile_sample, tile_windows
from rsvlm_zoo.datamodules import AnnotationSource, InstructionSource, RegionDataModule, TiledSource
from rsvlm_zoo.tokens import build_tiny_tokenizer
from tests.sources import ListSource

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
NAMES = ["car", "ship", "bridge", "pool"]  # words of the tiny vocabulary


def spec(size=(64, 64), kind="mask") -> InputSpec:
    return InputSpec(build_tiny_tokenizer(), size, MEAN, STD, 4, kind, False)


def colour(k: int) -> np.ndarray:
    return np.array([150 + 7 * (k % 15), 255 - 9 * (k // 15), 200], np.uint8)


def painted_scene(h: int = 230, w: int = 270, seed: int = 0) -> tuple[np.ndarray, list[Region]]:
    """Non-overlapping objects of every geometry kind (polygon, RLE, mask array, box), each painted its own colour.

    Objects sit anywhere in their 45 px grid cell, so tile edges cut many of them.
    """
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 100, (h, w, 3), dtype=np.uint8)
    regions = []
    cells = [(x, y) for y in range(0, h - 44, 45) for x in range(0, w - 44, 45)]
    for k, (cx, cy) in enumerate(cells):
        kind = k % 4
        ox, oy = cx + rng.uniform(1, 12), cy + rng.uniform(1, 12)
        if kind == 0:
            n = int(rng.integers(3, 7))
            angles = np.sort(rng.uniform(0, 2 * np.pi, n))
            radius = rng.uniform(8, 15, n)
            poly = np.stack([ox + 15 + radius * np.cos(angles), oy + 15 + radius * np.sin(angles)], 1)
            region = Region(polygons=[poly], category=f"c{k}")
        elif kind == 1:
            m = np.zeros((h, w), np.uint8, order="F")
            m[int(oy) : int(oy) + int(rng.integers(5, 30)), int(ox) : int(ox) + int(rng.integers(5, 30))] = 1
            rle = mask_utils.encode(m)
            rle["counts"] = rle["counts"].decode("ascii")
            region = Region(rle=rle, box=(0.0, 0.0, 1.0, 1.0), category=f"c{k}")  # box ignored: mask wins
        elif kind == 2:
            m = np.zeros((h, w), bool)
            yy, xx = np.mgrid[:h, :w]
            m[(yy - oy - 14) ** 2 + (xx - ox - 14) ** 2 < rng.uniform(30, 180)] = True
            region = Region(mask=m, category=f"c{k}")
        else:
            x0, y0 = int(ox), int(oy)
            region = Region(
                box=(x0, y0, x0 + int(rng.integers(4, 30)), y0 + int(rng.integers(4, 30))), category=f"c{k}"
            )
        painted = region.to_mask(h, w)
        assert painted.any()
        image[painted] = colour(k)
        regions.append(region)
    return image, regions


def all_regions_asked(tile: Sample) -> Sample:
    tile.conversation = [Turn("human", "<image>" + "<mask><pos>" * len(tile.regions)), Turn("gpt", "ok")]
    return tile


def unnormalise(pixel_values) -> np.ndarray:
    x = (pixel_values.numpy() * np.array(STD)[:, None, None] + np.array(MEAN)[:, None, None]) * 255
    return np.rint(x).astype(np.int64).transpose(1, 2, 0)


def test_windows_cover_the_scene_with_full_tiles_ending_at_the_edges():
    windows = tile_windows(270, 230, (64, 80), overlap=16)
    assert all(x1 - x0 == 80 and y1 - y0 == 64 for x0, y0, x1, y1 in windows)
    assert {x1 for *_, x1, _ in windows} >= {270} and {y1 for *_, y1 in windows} >= {230}
    covered = np.zeros((230, 270), int)
    for x0, y0, x1, y1 in windows:
        covered[y0:y1, x0:x1] += 1
    assert covered.min() >= 1
    assert sorted({x0 for x0, *_ in windows}) == [0, 64, 128, 190]  # stride 64, last moved back to 270 - 80
    assert tile_windows(50, 40, (64, 64)) == [(0, 0, 50, 40)]  # a scene smaller than a tile is one tile
    with pytest.raises(ValueError, match="overlap"):
        tile_windows(100, 100, (64, 64), overlap=64)


def test_patches_equal_scene_sized_rasterisation():
    rng = np.random.default_rng(1)
    for _ in range(100):
        h, w = (int(v) for v in rng.integers(1, 70, 2))
        m = (
            np.asfortranarray(rng.random((h, w)) < rng.uniform(0, 0.6))
            if rng.random() < 0.5
            else np.zeros((h, w), bool)
        )
        if not m.any():
            m[int(rng.integers(0, h)) :, int(rng.integers(0, w)) :] = True
        compressed = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        compressed["counts"] = compressed["counts"].decode("ascii")
        flat = np.concatenate([[0], m.T.reshape(-1).astype(np.int8), [2]])
        change = np.nonzero(np.diff(flat))[0]
        runs = np.diff(np.concatenate([[0], change])).tolist()
        if m.T.reshape(-1)[0]:
            runs = [0] + runs
        for rle in (compressed, {"size": [h, w], "counts": runs}):
            assert np.array_equal(rle_patch(rle, h, w).crop((0, 0, w, h)), decode_rle(rle, h, w))
        poly = rng.uniform(-10, max(h, w) + 10, (int(rng.integers(3, 8)), 2))
        patch = mask_patch(Region(polygons=[poly]), h, w)
        assert np.array_equal(patch.crop((0, 0, w, h)), rasterise_polygons([poly], h, w))
    with pytest.raises(DataFormatError, match=r"RLE size \[5, 5\] does not match the image size \[4, 4\]"):
        rle_patch({"size": [5, 5], "counts": [25]}, 4, 4)


@pytest.mark.parametrize("kind", ["mask", "box"])
def test_tile_round_trip_painted_pixels_sit_exactly_under_each_region(kind):
    image, regions = painted_scene()
    scene = Sample(image=image, width=270, height=230, regions=regions, sample_id="s", source="mem")
    tiles = TiledSource(ListSource([scene]), 64, overlap=16, min_visible=1e-9)
    proc = RegionProcessor(spec(kind=kind), image_policy="tile")
    checked = cut = 0
    for i in range(len(tiles)):
        try:
            tile = all_regions_asked(tiles[i])
        except TileDropped:
            continue
        out = proc(tile, decode(tile.image))
        pix = unnormalise(out["pixel_values"])
        present = {k for k in range(len(regions)) if (pix == colour(k)).all(-1).any()}
        cats = [int(r.category[1:]) for r in tile.regions]
        assert set(cats) == present  # every painted object seen in the tile is a region of the tile, and only those
        for j, k in enumerate(cats):
            painted = (pix == colour(k)).all(-1)
            if kind == "mask":
                m = out["masks"][j].numpy()
                assert set(np.unique(m)) <= {0.0, 1.0}
                assert np.array_equal(m == 1, painted), (i, k)
            else:
                rows, cols = np.nonzero(painted)
                extent = [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
                assert out["boxes"][j].tolist() == pytest.approx(extent), (i, k)
            checked += 1
            cut += tile.regions[j].attributes["tile_visible"] < 1
    assert checked > 40 and cut > 10  # many objects, many of them cut by tile edges


def test_tiles_larger_than_the_input_are_scaled_like_the_image():
    image, regions = painted_scene(seed=1)
    scene = Sample(image=image, width=270, height=230, regions=regions, sample_id="s", source="mem")
    tiles = TiledSource(ListSource([scene]), 128, min_visible=0.5)
    proc = RegionProcessor(spec(size=(64, 64)), image_policy="tile", tile_size=(128, 128))
    tile = all_regions_asked(tiles[0])
    out = proc(tile, decode(tile.image))
    pix = unnormalise(out["pixel_values"])
    for j, region in enumerate(tile.regions):
        k = int(region.category[1:])
        full = out["masks"][j].numpy() > 0.99
        if full.sum() > 4:
            assert np.abs(pix[full] - colour(k)).mean() < 12, k
        assert out["masks"][j].sum() == pytest.approx(region.to_mask(128, 128).sum() / 4, rel=0.02)


def test_smaller_scene_is_padded_not_stretched():
    image = np.full((40, 50, 3), 255, np.uint8)
    m = np.zeros((40, 50), bool)
    m[10:20, 30:40] = True
    scene = Sample(image=image, width=50, height=40, regions=[Region(mask=m)], sample_id="s", source="mem")
    tile = all_regions_asked(TiledSource(ListSource([scene]), 64)[0])
    out = RegionProcessor(spec(), image_policy="tile")(tile, decode(tile.image))
    assert out["pixel_values"].shape == (3, 64, 64)
    assert (unnormalise(out["pixel_values"])[:40, :50] == 255).all()
    assert out["pixel_values"][:, 40:, :].abs().max() == 0 and out["pixel_values"][:, :, 50:].abs().max() == 0
    assert out["masks"][0, 10:20, 30:40].min() == 1 and out["masks"][0].sum() == 100


def test_processor_refuses_untiled_large_images():
    scene = Sample(image="x", width=200, height=100, conversation=[Turn("human", "<image>"), Turn("gpt", "a")])
    with pytest.raises(ValueError, match="larger than the 64x64 tiles.*TiledSource"):
        RegionProcessor(spec(), image_policy="tile")(scene, np.zeros((100, 200, 3), np.uint8))


@pytest.mark.parametrize("geometry", ["box", "mask"])
def test_cut_object_rule_keeps_a_region_where_enough_of_it_is(geometry):
    # 20 px wide object at x 50..70: 14/20 = 0.7 in the left tile (x 0..64), 6/20 = 0.3 in the right (x 64..128).
    if geometry == "box":
        region = Region(box=(50, 10, 70, 20), category="car")
    else:
        m = np.zeros((64, 128), bool)
        m[10:20, 50:70] = True
        region = Region(mask=m, category="car")
    left, right = (0, 0, 64, 64), (64, 0, 128, 64)
    kept, fraction = clip_region(region, left, 64, 128)
    assert fraction == pytest.approx(0.7) and kept.to_box() == (50, 10, 64, 20)
    kept, fraction = clip_region(region, right, 64, 128)
    assert fraction == pytest.approx(0.3) and kept.to_box() == (0, 10, 6, 20)
    assert kept.category == "car" and kept.attributes["tile_visible"] == pytest.approx(0.3)
    scene = Sample(image=np.zeros((64, 128, 3), np.uint8), width=128, height=64, regions=[region], sample_id="s")
    for min_visible, expected in [(0.5, {0}), (0.25, {0, 64}), (0.8, set())]:
        source = TiledSource(ListSource([scene]), 64, min_visible=min_visible)
        survivors = set()
        for i in range(len(source)):
            try:
                survivors.add(source[i].meta["tile"]["window"][0])
            except TileDropped as err:
                assert "none of the 1 regions" in str(err)
        assert survivors == expected, min_visible


def three_regions() -> list[Region]:
    # A and C in the left tile, B in the right tile.
    return [Region(box=(5, 5, 20, 20), category="A"), Region(box=(80, 5, 100, 20), category="B"),
            Region(box=(30, 30, 50, 50), category="C")]  # fmt: skip


def test_conversation_references_are_reindexed_or_the_tile_is_dropped():
    scene = Sample(
        image=np.zeros((64, 128, 3), np.uint8),
        width=128,
        height=64,
        regions=three_regions(),
        conversation=[Turn("human", "<image>\nWhat is region1<mask><pos>?"), Turn("gpt", "C")],
        region_refs=[2],
        sample_id="s",
        source="x.json",
    )
    left = tile_sample(scene, (0, 0, 64, 64), (64, 64))
    assert [r.category for r in left.regions] == ["A", "C"]
    assert left.region_refs == [1] and left.regions[left.region_refs[0]].category == "C"
    assert left.conversation == scene.conversation and left.sample_id == "s@x0y0"
    out = RegionProcessor(spec(), image_policy="tile")(left, decode(left.image))
    assert out["num_regions"] == 1 and out["masks"][0, 30:50, 30:50].min() == 1 and out["masks"].sum() == 400
    with pytest.raises(TileDropped, match=r"refers to region\(s\) \[2\], cut off"):
        tile_sample(scene, (64, 0, 128, 64), (64, 64))
    # Placeholders without region_refs refer to regions 0..n-1.
    scene.region_refs = None
    scene.conversation[0] = Turn("human", "<image> <mask><pos> and <mask><pos>?")
    with pytest.raises(TileDropped, match=r"region\(s\) \[1\]"):
        tile_sample(scene, (0, 0, 64, 64), (64, 64))
    scene.regions = [scene.regions[0], scene.regions[2], scene.regions[1]]  # A, C, B
    assert tile_sample(scene, (0, 0, 64, 64), (64, 64)).region_refs == [0, 1]


def test_conversation_without_placeholders_needs_every_region():
    scene = Sample(
        image=np.zeros((64, 128, 3), np.uint8),
        width=128,
        height=64,
        regions=three_regions(),
        conversation=[Turn("human", "<image>\nDescribe the objects."), Turn("gpt", "three things")],
        sample_id="s",
    )
    with pytest.raises(TileDropped, match="about all 3 regions"):
        tile_sample(scene, (0, 0, 64, 64), (64, 64))
    whole = tile_sample(scene, (0, 0, 128, 64), (64, 128))
    assert len(whole.regions) == 3 and whole.region_refs is None
    scene.conversation = []  # annotations only: any tile with a region is kept
    assert [r.category for r in tile_sample(scene, (64, 0, 128, 64), (64, 64)).regions] == ["B"]


def test_bad_region_references_and_geometry_name_the_record():
    scene = Sample(
        image=np.zeros((64, 128, 3), np.uint8),
        width=128,
        height=64,
        regions=three_regions(),
        conversation=[Turn("human", "<image> <mask><pos>"), Turn("gpt", "a")],
        region_refs=[7],
        sample_id="s9",
        source="x.json",
    )
    with pytest.raises(DataFormatError, match=r"record 's9' in x.json: .*refs \[7\]"):
        tile_sample(scene, (0, 0, 64, 64), (64, 64))
    scene.region_refs = None
    scene.regions[0] = Region(mask=np.zeros((64, 128), bool))
    with pytest.raises(DataFormatError, match=r"record 's9' in x.json: region 0: its mask is empty"):
        tile_sample(scene, (0, 0, 64, 64), (64, 64))
    scene.regions[0] = Region(mask=np.ones((10, 10), bool))
    with pytest.raises(DataFormatError, match=r"region 0: mask is 10x10 but image is 128x64"):
        tile_sample(scene, (0, 0, 64, 64), (64, 64))
    scene.regions[0] = Region(polygons=[np.array([[1.0, 1.0], [30.0, 30.0]])])
    with pytest.raises(DataFormatError, match=r"region 0: .*at least 3"):
        tile_sample(scene, (0, 0, 64, 64), (64, 64))


def write_coco_scene(tmp_path, h=150, w=200):
    """A PNG scene with painted box objects and its COCO file; object k is painted colour(k)."""
    rng = np.random.default_rng(3)
    image = rng.integers(0, 100, (h, w, 3), dtype=np.uint8)
    boxes = [(10, 10, 30, 25), (60, 50, 90, 70), (150, 100, 190, 140), (120, 5, 135, 20)]
    anns = []
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        image[y0:y1, x0:x1] = colour(k)
        poly = [x0, y0, x1, y0, x1, y1, x0, y1]
        anns.append({"id": k, "image_id": 1, "category_id": k, "bbox": [x0, y0, x1 - x0, y1 - y0],
                     "segmentation": [poly]})  # fmt: skip
    (tmp_path / "images").mkdir()
    Image.fromarray(image).save(tmp_path / "images" / "scene.png")
    coco = {
        "images": [{"id": 1, "file_name": "scene.png"}],  # no size: read from the header when tiling
        "annotations": anns,
        "categories": [{"id": k, "name": name} for k, name in enumerate(NAMES)],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(coco))
    return path


def test_region_datamodule_tiles_files_and_builds_questions_per_tile(tmp_path, monkeypatch):
    path = write_coco_scene(tmp_path)
    source = InstructionSource(AnnotationSource("coco", str(path)), "category", {"per_region": True})
    dm = RegionDataModule(train=source, batch_size=64, image_policy="tile", tile_size=64, tile_overlap=8)
    dm.attach(spec())
    loader = dm.train_dataloader()
    tiled = loader.dataset.source
    assert isinstance(tiled, InstructionSource) and isinstance(tiled.source, TiledSource)  # tiles, then questions
    decodes = []
    real_load = images_module.load_image
    monkeypatch.setattr(images_module, "load_image", lambda p, *a: decodes.append(p) or real_load(p, *a))
    batch = next(iter(loader))
    n_tiles = len(tiled)
    assert batch["input_ids"].shape[0] + batch["dropped_tiles"] == n_tiles and batch["skipped"] == 0
    assert len(decodes) == batch["input_ids"].shape[0]  # one decode per kept tile, none for dropped ones or cached
    tok = spec().tokenizer
    pix = [unnormalise(p) for p in batch["pixel_values"]]
    masks = batch["region_masks"].numpy()
    owners = batch["region_image_index"].tolist()
    for r, b in enumerate(owners):
        painted = [k for k in range(4) if (pix[b][masks[r] == 1] == colour(k)).all()]
        assert len(painted) == 1  # each mask lies on exactly one object's pixels
        answer = tok.decode(batch["input_ids"][b][batch["labels"][b] >= 0], skip_special_tokens=True)
        assert answer == NAMES[painted[0]]


def test_tiled_source_index_is_lazy_and_bad_scenes_surface_per_sample(tmp_path, caplog):
    path = write_coco_scene(tmp_path)
    coco = json.loads(path.read_text())
    coco["images"].append({"id": 2, "file_name": "missing.png"})
    coco["annotations"].append({"id": 9, "image_id": 2, "category_id": 0, "bbox": [1, 1, 5, 5]})
    path.write_text(json.dumps(coco))
    source = TiledSource(AnnotationSource("coco", str(path)), 64)
    assert source._index is None  # nothing read yet
    assert [w for scene, w in source.index if scene == 1] == [None]  # the unreadable scene: one entry, no window
    with pytest.raises(DataFormatError, match=r"record '2' in .*missing.png: image file not found"):
        source[len(source) - 1]
    instructions = InstructionSource(AnnotationSource("coco", str(path)), "category", {"per_region": True})
    dm = RegionDataModule(train=instructions, batch_size=64, image_policy="tile", on_bad_sample="skip")
    dm.attach(spec())
    batch = next(iter(dm.train_dataloader()))
    assert batch["skipped"] == 1


def test_isaid_scenes_tile_for_the_tiny_model(shared_data, tiny_aquila):
    isaid = shared_data / "regions" / "isaid" / "instances.json"
    source = InstructionSource(AnnotationSource("coco", str(isaid)), "category", {"per_region": True, "max_regions": 4})
    dm = RegionDataModule(train=source, batch_size=8, image_policy="tile", tile_overlap=32)
    dm.attach(tiny_aquila.input_spec())
    loader = dm.train_dataloader()
    tiles = loader.dataset.source.source
    assert len(tiles) > 20 and all(x1 - x0 == 128 and y1 - y0 == 128 for _, (x0, y0, x1, y1) in tiles.index)
    batch = next(b for b in loader if b is not None)
    assert batch["region_masks"].shape[1:] == (128, 128) and batch["region_masks"].sum((1, 2)).min() > 0
    assert np.isfinite(tiny_aquila(batch).item())


def test_tile_window_reads_only_on_load(tmp_path):
    path = tmp_path / "s.png"
    Image.fromarray(np.arange(30 * 40 * 3, dtype=np.uint8).reshape(30, 40, 3)).save(path)
    window = ImageWindow(path, (10, 5, 30, 25))
    assert "s.png[x 10:30, y 5:25]" in str(window)
    assert np.array_equal(window.load(), np.asarray(Image.open(path))[5:25, 10:30])
    with pytest.raises(DataFormatError, match="smaller than the tile window"):
        ImageWindow(path, (10, 5, 50, 25)).load()
