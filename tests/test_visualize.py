"""Region figures, the `rsvlm visualize` command and the picture callbacks."""

from __future__ import annotations

import json
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import Logger
from PIL import Image, ImageDraw
from torch.utils.data import DataLoader

from rsvlm_zoo.callbacks import (
    RegionFigureLogger,
    TrainingCurvePlotter,
    examples_from_batch,
    render_example,
)
from rsvlm_zoo.cli import main
from rsvlm_zoo.data.schema import Region
from rsvlm_zoo.viz.curves import curve_colour, plot_curves, smoothed, value_range, y_axis_scale
from rsvlm_zoo.viz.regions import (
    ELLIPSIS,
    FILL_ALPHA,
    MIN_FONT_SIZE,
    PANEL_BACKGROUND,
    FigureScale,
    ellipsize,
    load_font,
    region_colour,
    render_regions,
)

GREY = 100


def grey_scene(height: int = 200, width: int = 300) -> np.ndarray:
    return np.full((height, width, 3), GREY, np.uint8)


def rect_mask(height: int, width: int, rows: slice, cols: slice) -> np.ndarray:
    mask = np.zeros((height, width), bool)
    mask[rows, cols] = True
    return mask


def blended(colour: tuple[int, int, int], base: int = GREY) -> np.ndarray:
    return np.rint(base * (1 - FILL_ALPHA) + np.asarray(colour, float) * FILL_ALPHA)


def panel_of(figure: Image.Image, scene_width: int) -> np.ndarray:
    return np.asarray(figure)[:, scene_width:]


def has_colour(pixels: np.ndarray, colour: tuple[int, int, int]) -> bool:
    return bool((pixels.reshape(-1, 3) == np.asarray(colour)).all(axis=1).any())


def first_text_run(panel: np.ndarray) -> int:
    """Height in pixels of the first block of panel rows holding text."""
    rows = (panel != np.asarray(PANEL_BACKGROUND)).any(axis=(1, 2))
    start = int(np.argmax(rows))
    end = start
    while end < len(rows) and rows[end]:
        end += 1
    return end - start


def colour_run(column: np.ndarray, start: int, colour: tuple[int, int, int]) -> int:
    n = 0
    while start + n < len(column) and (column[start + n] == np.asarray(colour)).all():
        n += 1
    return n


# ---------------------------------------------------------------- render_regions


def test_figure_is_scene_plus_panel_and_masks_are_coloured_inside_only():
    scene = grey_scene()
    mask = rect_mask(200, 300, slice(40, 100), slice(50, 150))
    figure = render_regions(scene, [mask, (180, 120, 280, 190)], answers=["a roof", "a car"])
    scale = FigureScale.for_image(300, 200)
    assert figure.mode == "RGB"
    assert figure.size == (300 + scale.panel_width, 200)
    pixels = np.asarray(figure)[:, :300].astype(int)
    red, blue = region_colour(0), region_colour(1)
    # fill: the interior is blended with the region's colour
    np.testing.assert_allclose(pixels[80, 120], blended(red), atol=1)
    # outline: the mask's own border pixels carry the pure colour, `line_width` thick
    assert tuple(pixels[99, 120]) == red and tuple(pixels[100 - scale.line_width, 120]) == red
    assert tuple(pixels[100 - scale.line_width - 1, 120]) != red
    # nothing outside the mask changes, apart from the box
    outside = ~mask
    outside[115:195, 175:285] = False
    assert (pixels[outside] == GREY).all()
    # the box is outlined, not filled
    assert tuple(pixels[120, 230]) == blue and tuple(pixels[189, 230]) == blue
    assert (pixels[150, 200] == GREY).all()


def test_regions_get_numbered_tags_at_their_top_left():
    mask = rect_mask(200, 300, slice(40, 100), slice(50, 150))
    pixels = np.asarray(render_regions(grey_scene(), [mask, (180, 120, 280, 190)]))
    for k, (x, y) in enumerate([(50, 40), (180, 120)]):
        window = pixels[y : y + 25, x : x + 25].astype(int)
        # inside the 2 px outline only a filled tag can carry the pure colour (mask fill is blended, box is empty)
        tag = (window[2:14, 2:14] == np.asarray(region_colour(k))).all(axis=2)
        assert tag.sum() > 40, f"region {k + 1}: no filled tag at its top-left"
        near_black_or_white = np.minimum(window.sum(axis=2), (255 - window).sum(axis=2)) < 60
        assert near_black_or_white.sum() > 5, f"region {k + 1}: no number drawn in its tag"
    assert not (np.minimum(pixels.sum(axis=2), (255 - pixels).sum(axis=2)) < 60)[:, :40].any()  # away from tags


def test_panel_lists_answers_and_references_in_region_colours():
    masks = [rect_mask(200, 300, slice(10 + 50 * k, 50 + 50 * k), slice(20, 90)) for k in range(3)]
    only_answers = panel_of(render_regions(grey_scene(), masks, answers=["a", "b", None]), 300)
    assert has_colour(only_answers, region_colour(0)) and has_colour(only_answers, region_colour(1))
    assert not has_colour(only_answers, region_colour(2))
    with_refs = panel_of(render_regions(grey_scene(), masks, ["a", "b", None], ["x", None, "z"]), 300)
    assert has_colour(with_refs, region_colour(2))
    text_rows = (with_refs != np.asarray(PANEL_BACKGROUND)).any(axis=(1, 2)).sum()
    assert text_rows > (only_answers != np.asarray(PANEL_BACKGROUND)).any(axis=(1, 2)).sum()
    without_text = render_regions(grey_scene(), masks)
    assert without_text.size == (300, 200)


def test_long_answers_wrap_inside_the_panel_which_grows_downwards():
    long = "a large white storage tank next to a long road " * 12
    figure = render_regions(grey_scene(100, 150), [(10, 10, 60, 60)], answers=[long])
    scale = FigureScale.for_image(150, 100)
    assert figure.width == 150 + scale.panel_width
    assert figure.height > 100  # more lines than the scene is tall
    panel = panel_of(figure, 150)
    text_cols = np.flatnonzero((panel != np.asarray(PANEL_BACKGROUND)).any(axis=(0, 2)))
    assert text_cols.max() < scale.panel_width - scale.padding // 2


def test_text_tags_and_lines_scale_with_a_dota_size_scene():
    small = np.asarray(render_regions(np.zeros((400, 400, 3), np.uint8), [(10, 10, 100, 100)], ["a plane"]))
    big = np.asarray(render_regions(np.zeros((4000, 4000, 3), np.uint8), [(100, 100, 1000, 1000)], ["a plane"]))
    colour = region_colour(0)
    small_line = colour_run(small[:, 55], 10, colour)
    big_line = colour_run(big[:, 550], 100, colour)
    assert small_line == FigureScale.for_image(400, 400).line_width
    assert big_line == FigureScale.for_image(4000, 4000).line_width
    assert big_line >= 5 * small_line
    small_text, big_text = first_text_run(small[:, 400:]), first_text_run(big[:, 4000:])
    assert big_text >= 4 * small_text > 0
    assert big.shape[1] - 4000 >= 5 * (small.shape[1] - 400) // 2  # the panel widens too
    big_tag = (big[100:400, 100:400] == np.asarray(colour)).all(axis=2).sum()
    small_tag = (small[10:40, 10:40] == np.asarray(colour)).all(axis=2).sum()
    assert big_tag > 20 * small_tag


def test_polygon_and_box_regions():
    triangle = Region(polygons=[np.array([[20.0, 20.0], [180.0, 20.0], [20.0, 180.0]])])
    box = Region(box=(200.0, 50.0, 280.0, 150.0), category="car")
    pixels = np.asarray(render_regions(grey_scene(), [triangle, box])).astype(int)
    np.testing.assert_allclose(pixels[70, 70], blended(region_colour(0)), atol=1)
    assert (pixels[160, 160] == GREY).all()  # inside the bounding box, outside the triangle
    assert tuple(pixels[100, 200]) == region_colour(1) and (pixels[100, 240] == GREY).all()


def test_many_regions_each_get_their_own_colour():
    assert len({region_colour(k) for k in range(100)}) == 100
    masks = [
        rect_mask(200, 300, slice(20 * (k // 10), 20 * (k // 10) + 16), slice(30 * (k % 10), 30 * (k % 10) + 26))
        for k in range(40)
    ]
    pixels = np.asarray(render_regions(grey_scene(), masks)).astype(int)
    for k in range(40):
        r, c = 20 * (k // 10) + 15, 30 * (k % 10) + 22  # bottom outline, away from the tag
        assert tuple(pixels[r, c]) == region_colour(k), f"region {k}"


def scattered_boxes(n: int, height: int, width: int) -> list[tuple[float, float, float, float]]:
    rng = np.random.default_rng(n)
    corners = zip(rng.integers(0, width - 40, n), rng.integers(0, height - 40, n), strict=True)
    return [(float(x), float(y), float(x + 30), float(y + 30)) for x, y in corners]


@pytest.mark.parametrize("n", [16, 116, 536])
def test_figure_stays_within_two_scene_heights_at_any_region_count(n):
    height, width = 977, 884  # the iSAID scene P0005
    answers = [f"a white large vehicle parked next to the warehouse by the road, number {k}" for k in range(n)]
    figure = render_regions(np.zeros((height, width, 3), np.uint8), scattered_boxes(n, height, width), answers)
    layout = figure.info["layout"]
    assert layout.beside + layout.legend == n  # every region is listed once
    assert figure.height <= 2 * height and layout.max_height == 2 * height
    assert layout.font_size >= layout.legend_font_size >= MIN_FONT_SIZE
    if n == 16:  # everything fits beside the scene: the figure is the scene's height, no legend
        assert figure.size == (width + FigureScale.for_image(width, height).panel_width, height)
        assert layout.legend == 0 and layout.shortened == 0
    else:
        assert layout.legend_columns > 1 and layout.shortened > 0
        assert figure.width <= 2 * (width + FigureScale.for_image(width, height).panel_width)


def test_a_tiny_scene_keeps_the_font_floor_and_its_legend_lists_the_rest():
    figure = render_regions(grey_scene(100, 150), scattered_boxes(300, 100, 150), [f"car {k}" for k in range(300)])
    layout = figure.info["layout"]
    assert layout.legend_font_size == MIN_FONT_SIZE and layout.beside + layout.legend == 300
    assert figure.height <= layout.max_height  # the floor of 24 text lines, for scenes this small


def test_long_answers_are_cut_with_an_ellipsis_and_counted_in_the_legend():
    masks = [rect_mask(200, 300, slice(2 * k, 2 * k + 2), slice(0, 10)) for k in range(60)]
    long = "a long and winding description of a storage tank " * 20
    figure = render_regions(grey_scene(), masks, [long] * 60)
    layout = figure.info["layout"]
    assert layout.legend and layout.shortened == 60 and figure.height <= layout.max_height
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line, cut = ellipsize(long, load_font(MIN_FONT_SIZE), 120, draw)
    assert cut and line.endswith(ELLIPSIS) and draw.textlength(line, font=load_font(MIN_FONT_SIZE)) <= 120
    assert ellipsize("short", load_font(MIN_FONT_SIZE), 120, draw) == ("short", False)


def test_real_isaid_scene_with_all_its_instances_fits_two_scene_heights(shared_data, tmp_path, capsys):
    folder = shared_data / "regions" / "isaid"
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps(["a large vehicle parked beside the warehouse on the left of the road"] * 131))
    out = tmp_path / "p0005.png"
    argv = ["visualize", "--image", str(folder / "images/P0005.png"), "--instances", str(folder / "instances.json")]
    assert main([*argv, "--answers", str(answers), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "131 regions" in printed and "in the legend" in printed and "shortened with an ellipsis" in printed
    with Image.open(out) as figure:
        assert figure.height <= 2 * 977 and figure.width <= 2 * 884


@pytest.mark.parametrize(
    "image",
    [
        np.full((60, 80), 90, np.uint8),
        np.dstack([np.full((60, 80, 3), 90, np.uint8), np.zeros((60, 80), np.uint8)]),
        Image.fromarray(np.full((60, 80), 90, np.uint8)).convert("LA"),
    ],
    ids=["grey", "rgba-array", "pil-LA"],
)
def test_non_rgb_scenes_become_rgb(image):
    pixels = np.asarray(render_regions(image, [(10, 10, 40, 40)]))
    assert pixels.shape == (60, 80, 3)
    assert (pixels[55, 70] == 90).all()


def test_sixteen_bit_scenes_are_stretched():
    ramp = np.tile(np.linspace(0, 60000, 80).astype(np.uint16), (60, 1))
    for image in (ramp, Image.fromarray(ramp)):
        pixels = np.asarray(render_regions(image, [(10, 10, 30, 30)])).astype(int)
        assert pixels.shape == (60, 80, 3)
        assert pixels[50, 2, 0] < 20 and pixels[50, 78, 0] > 235
        assert (pixels[50, :, 0] == pixels[50, :, 1]).all()


def test_wrong_size_mask_names_the_region_and_both_sizes():
    good = rect_mask(30, 60, slice(0, 10), slice(0, 10))
    bad = np.ones((40, 50), bool)
    with pytest.raises(ValueError, match=r"region 1: mask is 50x40 \(w x h\) but the image is 60x30"):
        render_regions(np.zeros((30, 60, 3), np.uint8), [good, bad])
    with pytest.raises(ValueError, match="region 0"):
        render_regions(np.zeros((30, 60, 3), np.uint8), [Region(mask=bad)])


def test_answer_count_must_match_the_regions():
    with pytest.raises(ValueError, match="got 1 answers for 2 regions"):
        render_regions(grey_scene(), [(0, 0, 5, 5), (5, 5, 9, 9)], answers=["one"])


# ---------------------------------------------------------------- rsvlm visualize


@pytest.fixture
def scene_files(tmp_path):
    scene = np.full((120, 160, 3), GREY, np.uint8)
    Image.fromarray(scene).save(tmp_path / "scene.png")
    ids = np.zeros((120, 160), np.uint8)
    ids[10:50, 10:70] = 1
    ids[60:110, 90:150] = 2
    Image.fromarray(ids).save(tmp_path / "masks.png")
    (tmp_path / "boxes.json").write_text(json.dumps([[5, 5, 60, 50], [80, 40, 150, 110]]))
    (tmp_path / "answers.json").write_text(json.dumps(["a small roof", "a pool"]))
    (tmp_path / "refs.json").write_text(json.dumps(["a roof", None]))
    return tmp_path


def test_cli_draws_instance_masks_with_answers_and_references(scene_files, capsys):
    out = scene_files / "fig" / "figure.png"
    code = main(
        [
            "visualize",
            "--image",
            str(scene_files / "scene.png"),
            "--masks",
            str(scene_files / "masks.png"),
            "--answers",
            str(scene_files / "answers.json"),
            "--references",
            str(scene_files / "refs.json"),
            "--out",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    figure = Image.open(out)
    assert figure.size == (160 + FigureScale.for_image(160, 120).panel_width, 120)
    pixels = np.asarray(figure.convert("RGB")).astype(int)
    np.testing.assert_allclose(pixels[40, 50], blended(region_colour(0)), atol=1)
    np.testing.assert_allclose(pixels[100, 130], blended(region_colour(1)), atol=1)
    assert (pixels[55, 80] == GREY).all()
    assert has_colour(pixels[:, 160:], region_colour(0)) and has_colour(pixels[:, 160:], region_colour(1))
    assert "2 regions" in capsys.readouterr().out


def test_cli_draws_boxes(scene_files):
    out = scene_files / "boxes.png"
    code = main(
        [
            "visualize",
            "--image",
            str(scene_files / "scene.png"),
            "--boxes",
            str(scene_files / "boxes.json"),
            "--answers",
            str(scene_files / "answers.json"),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    pixels = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert tuple(pixels[109, 110]) == region_colour(1)  # bottom edge of box 2
    assert (pixels[75, 110] == GREY).all()  # inside box 2: outlined only


def test_cli_reads_the_matching_coco_record(scene_files):
    coco = {
        "images": [
            {"id": 1, "file_name": "other.png", "width": 160, "height": 120},
            {"id": 2, "file_name": "scene.png", "width": 160, "height": 120},
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "iscrowd": 0},
            {
                "id": 2,
                "image_id": 2,
                "category_id": 1,
                "segmentation": [[20, 20, 100, 20, 100, 80, 20, 80]],
                "bbox": [20, 20, 80, 60],
                "iscrowd": 0,
            },
        ],
        "categories": [{"id": 1, "name": "building"}],
    }
    (scene_files / "instances.json").write_text(json.dumps(coco))
    out = scene_files / "coco.png"
    code = main(
        [
            "visualize",
            "--image",
            str(scene_files / "scene.png"),
            "--instances",
            str(scene_files / "instances.json"),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    pixels = np.asarray(Image.open(out).convert("RGB")).astype(int)
    np.testing.assert_allclose(pixels[60, 70], blended(region_colour(0)), atol=1)
    assert (pixels[2, 2] == GREY).all()  # the other image's region is not drawn


class FakeDescriber:
    """Records what describe() got; answers each region with its kind and size."""

    def __init__(self, kind: str) -> None:
        self.kind, self.calls = kind, []

    def eval(self):
        return self

    def input_spec(self):
        return SimpleNamespace(region_kind=self.kind)

    def describe(self, images, regions, prompt=None, max_new_tokens=None, **kwargs):
        self.calls.append((images, regions, prompt, kwargs))
        if self.kind == "box":
            return [[f"box {tuple(int(v) for v in b)}" for b in regions[0]]]
        return [[f"mask of {int(m.sum())} px" for m in regions[0]]]


@pytest.mark.parametrize(("kind", "regions_flag"), [("mask", "--boxes"), ("box", "--masks")])
def test_cli_model_answers_with_the_region_kind_the_model_takes(scene_files, monkeypatch, kind, regions_flag):
    fake = FakeDescriber(kind)
    built = []
    monkeypatch.setattr("rsvlm_zoo.cli.model_args.build_model", lambda name, **kw: built.append((name, kw)) or fake)
    source = scene_files / ("boxes.json" if regions_flag == "--boxes" else "masks.png")
    out = scene_files / "model.png"
    argv = ["visualize", "--image", str(scene_files / "scene.png"), regions_flag, str(source), "--model", "tiny"]
    assert main([*argv, "--prompt", "What is {region}?", "--out", str(out)]) == 0
    assert built == [("tiny", {"pretrained": False})]
    ((images, regions, prompt, kwargs),) = fake.calls
    assert images[0].shape == (120, 160, 3) and prompt == "What is {region}?"
    if kind == "mask":  # boxes were rasterised for the mask model
        assert [int(m.sum()) for m in regions[0]] == [55 * 45, 70 * 70] and kwargs == {}
    else:  # instance masks were reduced to their boxes for the box model, which answers per box
        assert regions[0] == [(10.0, 10.0, 70.0, 50.0), (90.0, 60.0, 150.0, 110.0)]
        assert kwargs == {"task": "attributes"}
    panel = np.asarray(Image.open(out).convert("RGB"))[:, 160:]
    assert has_colour(panel, region_colour(0)) and has_colour(panel, region_colour(1))


@pytest.mark.parametrize(
    ("swap", "message"),
    [
        ({"--masks": "missing.png"}, "mask file not found"),
        ({"--answers": "bad_answers.json"}, "has 3 answers but there are 2 regions"),
        ({"--masks": "small_masks.png"}, "masks are 40x30 but the image is 160x120"),
        ({"--image": "nope.png"}, "image file not found"),
    ],
)
def test_cli_errors_name_the_problem(scene_files, capsys, swap, message):
    (scene_files / "bad_answers.json").write_text(json.dumps(["a", "b", "c"]))
    Image.fromarray(np.ones((30, 40), np.uint8)).save(scene_files / "small_masks.png")
    args = {"--image": "scene.png", "--masks": "masks.png", "--answers": "answers.json", **swap}
    argv = ["visualize", "--out", str(scene_files / "x.png")]
    for flag, name in args.items():
        argv += [flag, str(scene_files / name)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err
    assert not (scene_files / "x.png").exists()


# ---------------------------------------------------------------- callbacks


def region_batch(n: int, offset: int = 0, side: int = 32) -> dict:
    """A RegionCollator-style generation batch: n sequences, sequence i has i % 2 + 1 square regions."""
    images = torch.zeros(n, side, side, 3, dtype=torch.uint8)
    images[..., 1] = 180
    pixel_values = (images.permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25
    masks, owners = [], []
    for i in range(n):
        for k in range(i % 2 + 1):
            m = torch.zeros(side, side)
            m[4 + 12 * k : 12 + 12 * k, 4:20] = 1.0
            masks.append(m)
            owners.append(i)
    return {
        "input_ids": torch.ones(n, 5, dtype=torch.long),
        "pixel_values": pixel_values,
        "region_masks": torch.stack(masks),
        "region_image_index": torch.tensor(owners),
        "answers": [f"reference {offset + i}" for i in range(n)],
        "sample_ids": [str(offset + i) for i in range(n)],
    }


def test_examples_from_batch_split_sequences_and_denormalise():
    batch = region_batch(3)
    examples = examples_from_batch(batch, ["p0", "p1", "p2"], mean=(0.5,) * 3, std=(0.25,) * 3)
    assert [len(e.regions) for e in examples] == [1, 2, 1]
    assert [e.prediction for e in examples] == ["p0", "p1", "p2"]
    assert examples[1].reference == "reference 1" and examples[1].sample_id == "1"
    assert examples[0].image.dtype == np.uint8 and tuple(examples[0].image[0, 0]) == (0, 180, 0)
    assert examples[1].regions[1][20, 10] and not examples[1].regions[0][20, 10]
    stale = examples_from_batch(batch, ["only one"], limit=2)
    assert len(stale) == 2 and all(e.prediction is None for e in stale)


def test_render_example_enlarges_small_inputs_and_shows_answer_and_reference():
    example = examples_from_batch(region_batch(2), ["a green field", "x"], (0.5,) * 3, (0.25,) * 3)[0]
    figure = render_example(example, display_size=128)
    assert figure.height == 128 and figure.width > 128
    pixels = np.asarray(figure).astype(int)
    np.testing.assert_allclose(pixels[8 * 4 + 8, 12 * 4], blended(region_colour(0), np.array([0, 180, 0])), atol=1)
    assert first_text_run(pixels[:, 128:]) > 0


class ToyRegionModule(L.LightningModule):
    """Trains a scalar, 'answers' every validation sequence and exposes the answers like RegionVLM should."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor(2.0))

    def input_spec(self) -> SimpleNamespace:
        return SimpleNamespace(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))

    def training_step(self, batch, batch_idx):
        loss = (self.weight * batch).pow(2).mean()
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        return {"predictions": [f"prediction {s}" for s in batch["sample_ids"]]}

    def on_validation_epoch_end(self):
        self.log("val/exact_match", 0.25 + 0.5 * self.current_epoch)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def toy_fit(tmp_path, callbacks, logger=False, epochs=1):
    train = DataLoader(torch.ones(8, 1), batch_size=2)
    val = DataLoader([region_batch(2, 0), region_batch(2, 2), region_batch(2, 4)], batch_size=None)
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=logger,
        callbacks=callbacks,
        default_root_dir=tmp_path,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=1,
    )
    trainer.fit(ToyRegionModule(), train, val)
    return trainer


def test_region_figure_logger_saves_pngs_without_an_image_logger(tmp_path):
    callback = RegionFigureLogger(num_samples=3, every_n_epochs=1, display_size=96)
    toy_fit(tmp_path, [callback])
    files = sorted((tmp_path / "figures").glob("*.png"))
    assert [f.name for f in files] == ["epoch000_0.png", "epoch000_1.png", "epoch000_2.png"]
    assert files == callback.last_paths
    figure = np.asarray(Image.open(files[1]).convert("RGB")).astype(int)
    assert figure.shape[0] >= 96 and figure.shape[1] > 96
    assert has_colour(figure[:, :96], region_colour(1))  # sample 1 has two regions
    assert first_text_run(figure[:, 96:]) > 0


class ImageLogger(Logger):
    """Stands in for TensorBoardLogger: its experiment has add_image."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[tuple[str, tuple, int, str]] = []
        self._experiment = SimpleNamespace(add_image=self._add_image)

    def _add_image(self, tag, image, global_step=None, dataformats="CHW"):
        self.images.append((tag, image.shape, global_step, dataformats))

    @property
    def experiment(self):
        return self._experiment

    @property
    def name(self):
        return "images"

    @property
    def version(self):
        return 0

    def log_metrics(self, metrics, step=None):
        pass

    def log_hyperparams(self, params, *args, **kwargs):
        pass


def test_region_figure_logger_sends_figures_to_an_image_logger(tmp_path):
    logger = ImageLogger()
    toy_fit(tmp_path, [RegionFigureLogger(num_samples=2, every_n_epochs=2)], logger=logger, epochs=2)
    assert [(tag, step, fmt) for tag, _, step, fmt in logger.images] == [
        ("val/regions/0", 8, "HWC"),
        ("val/regions/1", 8, "HWC"),
    ]  # only after the second epoch (every_n_epochs=2), not in the sanity check
    assert all(len(shape) == 3 and shape[2] == 3 for _, shape, _, _ in logger.images)
    assert not (tmp_path / "figures").exists()


def test_training_curve_plotter_writes_loss_and_validation_curves(tmp_path):
    plotter = TrainingCurvePlotter()
    toy_fit(tmp_path, [plotter], epochs=2)
    loss = plotter.history["train/loss"]
    assert [step for step, _ in loss] == list(range(1, 9))
    assert loss[0][1] == pytest.approx(4.0)  # (2 * 1)^2 before the first update
    assert plotter.history["val/exact_match"] == [(4, 0.25), (8, 0.75)]  # no sanity-check point
    assert plotter.path == tmp_path / "training_curves.png"
    plot = np.asarray(Image.open(plotter.path).convert("RGB"))
    assert plot.shape == (2 * 260, 900, 3)
    assert has_colour(plot[:260], curve_colour(0)) and has_colour(plot[260:], curve_colour(1))


def test_plot_curves_handles_flat_single_point_and_non_finite_series():
    image = plot_curves({"flat": [(0, 1.0), (1, 1.0)], "one": [(3, 0.5)], "nan": [(0, float("nan"))]}, width=400)
    assert image.size == (400, 3 * 260)
    pixels = np.asarray(image)
    assert has_colour(pixels[:260], curve_colour(0)) and has_colour(pixels[260:520], curve_colour(1))
    assert not has_colour(pixels[520:], curve_colour(2))
    with pytest.raises(ValueError, match="no series"):
        plot_curves({})


def test_a_single_validation_is_drawn_from_zero_to_its_value():
    assert value_range(0.9956, 0.9956, "linear") == (0.0, 0.9956)  # not past 1 for an accuracy
    assert value_range(-2.0, -2.0, "linear") == (-2.0, 0.0)
    assert value_range(0.0, 0.0, "linear") == (-0.5, 0.5)
    assert value_range(-1.0, -1.0, "log") == (-1.5, -0.5)  # log10 values: 0.1 drawn on 0.03-0.3
    assert value_range(0.2, 0.8, "linear") == (0.2, 0.8)


def test_a_falling_loss_gets_a_log_axis_and_a_smoothed_line():
    loss = [(step, 5.0 * 0.9**step + 0.05 + 0.02 * (step % 7) / 7) for step in range(1, 1001)]
    accuracy = [(100 * k, 0.1 * k) for k in range(1, 6)]
    image = plot_curves({"train/loss": loss, "val/exact_match": accuracy})
    assert image.size == (900, 2 * 260)
    assert image.info["y_axes"] == {"train/loss": "log", "val/exact_match": "linear"}
    assert y_axis_scale("train/loss", [2.0, 1.5, 1.2]) == "linear"  # less than a decade apart
    assert y_axis_scale("train/loss", [2.0, 0.0]) == "linear"  # a zero has no logarithm
    trend = smoothed([v for _, v in loss])
    assert trend[0] == loss[0][1] and abs(trend[-1] - 0.06) < 0.01


def test_validation_points_are_joined_by_a_line():
    image = plot_curves({"val/exact_match": [(4, 0.25), (8, 0.75), (12, 0.5)]}, width=400)
    pixels = np.asarray(image)
    colour_columns = np.flatnonzero((pixels == np.asarray(curve_colour(0))).all(axis=2).any(axis=0))
    assert colour_columns.max() - colour_columns.min() > 200
    # the line covers the columns between the dots, not only the dots themselves
    assert len(colour_columns) > 0.9 * (colour_columns.max() - colour_columns.min())


def test_cli_refuses_model_and_answers_together(scene_files, capsys):
    argv = ["visualize", "--image", str(scene_files / "scene.png"), "--boxes", str(scene_files / "boxes.json")]
    argv += ["--model", "tiny", "--answers", str(scene_files / "answers.json"), "--out", str(scene_files / "x.png")]
    assert main(argv) == 2
    assert "either --model or --answers" in capsys.readouterr().err


def test_validation_examples_draw_each_region_once_and_name_the_asked_one():
    from rsvlm_zoo import build_model
    from rsvlm_zoo.callbacks import examples_from_batch
    from rsvlm_zoo.datamodules import RegionDataModule, SyntheticSource

    source = SyntheticSource(2, seed=1, one_question_per_sample=True)
    data = RegionDataModule(val=source, eval_batch_size=8)
    data.attach(build_model("aquila_plus_tiny").input_spec())
    batch = next(iter(data.val_dataloader()[0]))
    examples = examples_from_batch(batch, None)
    assert len(examples) == len(source)  # the loader keeps the source's order
    for k, example in enumerate(examples):
        sample = source[k]
        assert len(example.regions) == len(sample.regions), sample.sample_id
        assert example.asked == int(sample.sample_id.split(":region")[1])
