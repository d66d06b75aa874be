"""The hostile-input catalogue: model files that try to run code, image names that leave their folder, geometry
that crashes or floods the libraries behind the readers, and samples that fail in unexpected ways.

Every hostile file is generated here; each must end in a refusal naming the file, the record and the reason.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from rsvlm_zoo import build_model, from_pretrained, register_class
from rsvlm_zoo.data.check import check_dataset
from rsvlm_zoo.data.geometry import region_to_mask
from rsvlm_zoo.data.processor import InputSpec
from rsvlm_zoo.data.readers import read_annotations
from rsvlm_zoo.data.readers._common import load_json
from rsvlm_zoo.data.schema import DataFormatError, Region, Sample, Turn
from rsvlm_zoo.data.tiling import mask_patch
from rsvlm_zoo.datamodules import RegionDataModule
from rsvlm_zoo.models.blocks.projectors import MLPProjector
from rsvlm_zoo.tokens import build_tiny_tokenizer
from rsvlm_zoo.weights.export import export_model
from rsvlm_zoo.weights.model_config import CHECKPOINT_CONFIG_KEY, UntrustedConfigError, build_from_config, model_config
from tests.sources import ListSource

# ------------------------------------------------------------------ model files are data, never programs


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = build_model("aquila_plus_tiny")
    return export_model(model, tmp_path_factory.mktemp("export") / "m"), model_config(model)


def hostile_configs(marker):
    """Configs naming a callable that would leave `marker` on disk if it were ever called."""
    command = f"touch {marker}"
    return {
        "model os.system": ("model.class_path", {"class_path": "os.system", "init_args": {"command": command}}),
        "encoder os.system": ("model.init_args.encoder.class_path", "os.system"),
        "llm subprocess": ("model.init_args.llm.class_path", "subprocess.getoutput"),
        "projector builtins.exec": ("model.init_args.projector.class_path", "builtins.exec"),
        "dotted into a zoo module": (
            "model.init_args.extractor.class_path",
            "rsvlm_zoo.weights.model_config.os.system",
        ),
    }


def poisoned(config, key, value, marker):
    config = json.loads(json.dumps(config))
    if key == "model.class_path":
        config = {**config, "class_path": value["class_path"]}
        config["init_args"]["command"] = f"touch {marker}"
        return config
    block = key.split(".")[2]
    config["init_args"][block] = {"class_path": value, "init_args": {"cmd": f"touch {marker}"}}
    return config


def poisoned_export(exported, key, value, marker, folder):
    """A copy of the exported directory whose config.json carries the hostile class path."""
    export_dir, config = exported
    folder.mkdir()
    for f in export_dir.iterdir():
        if f.is_file():
            (folder / f.name).write_bytes(f.read_bytes())
    meta = json.loads((export_dir / "config.json").read_text())
    meta["model"] = poisoned(config, key, value, marker)
    (folder / "config.json").write_text(json.dumps(meta))
    return folder


@pytest.mark.parametrize("kind", list(hostile_configs("x")))
def test_an_exported_config_cannot_run_code(kind, exported, tmp_path):
    marker = tmp_path / "pwned"
    key, value = hostile_configs(marker)[kind]
    bad = poisoned_export(exported, key, value, marker, tmp_path / "bad")
    modules_before = set(sys.modules)
    with pytest.raises(UntrustedConfigError, match=key.replace(".", r"\.") + ".*not a model or block registered"):
        from_pretrained(bad)
    assert not marker.exists()
    assert "subprocess" in modules_before or "subprocess" not in set(sys.modules) - modules_before


def test_a_checkpoint_without_pickle_cannot_run_code(exported, tmp_path):
    _, config = exported
    marker = tmp_path / "pwned"
    ckpt = tmp_path / "plain.ckpt"
    bad = poisoned(config, "model.init_args.encoder.class_path", "os.system", marker)
    torch.save({"state_dict": {}, CHECKPOINT_CONFIG_KEY: bad}, ckpt)
    with pytest.raises(UntrustedConfigError, match="encoder.class_path names 'os.system'"):
        from_pretrained(ckpt)
    assert not marker.exists()


def test_registered_zoo_classes_by_full_path_or_short_name_build(exported):
    _, config = exported
    short = json.loads(json.dumps(config))
    short["init_args"]["projector"]["class_path"] = "MLPProjector"
    model = build_from_config(short)
    assert isinstance(model.projector, MLPProjector)


class MyProjector(MLPProjector):
    """A user's own projector: loadable from model files once registered."""


def test_a_users_own_class_loads_only_after_register_class(exported):
    _, config = exported
    own = json.loads(json.dumps(config))
    own["init_args"]["projector"]["class_path"] = f"{MyProjector.__module__}.MyProjector"
    with pytest.raises(UntrustedConfigError, match="register_class"):
        build_from_config(own)
    register_class(MyProjector)
    assert isinstance(build_from_config(own).projector, MyProjector)


# ------------------------------------------------------------------ image paths stay inside their folder


def write_image(path, w=64, h=48):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(path)
    return path


def coco_doc(file_name, **ann):
    annotation = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 10, 10], **ann}
    return {
        "images": [{"id": 1, "file_name": file_name, "width": 64, "height": 48}],
        "annotations": [annotation],
        "categories": [{"id": 1, "name": "car"}],
    }


def write_json(path, doc):
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "nested dotdot"])
def test_image_names_cannot_leave_the_images_folder(kind, tmp_path):
    secret = write_image(tmp_path / "private" / "secret.png")
    images = tmp_path / "images"
    (images / "a").mkdir(parents=True)
    name = {
        "dotdot": "../private/secret.png",
        "absolute": str(secret),
        "symlink": "link.png",
        "nested dotdot": "a/../../private/secret.png",
    }[kind]
    if kind == "symlink":
        os.symlink(secret, images / "link.png")
    ann = write_json(tmp_path / "instances.json", coco_doc(name))
    with pytest.raises(DataFormatError, match=r"instances\.json: images\[0\] id=1: image .* outside the images dir"):
        read_annotations("coco", ann, images)
    assert read_annotations("coco", ann, images, on_bad_record="skip").report.skipped == 1
    report = check_dataset("coco", ann, images)
    assert report.problems["bad records (skipped)"] == 1 and not report.problems["missing images"]
    # Opting in reads it, for datasets that really keep images elsewhere.
    (sample,) = read_annotations("coco", ann, images, allow_outside_images=True)
    assert os.path.samefile(sample.image, secret)


def test_the_check_does_not_tell_whether_an_outside_path_exists(tmp_path):
    write_image(tmp_path / "exists.png")
    images = tmp_path / "images"
    images.mkdir()
    messages = []
    for name in ("../exists.png", "../does-not-exist.png"):
        report = check_dataset("coco", write_json(tmp_path / "i.json", coco_doc(name)), images)
        assert report.problems == {"bad records (skipped)": 1}
        messages.append(report.examples["bad records (skipped)"][0].replace(name, "NAME"))
    assert messages[0] == messages[1]


def test_symlinked_images_folder_and_links_inside_it_are_fine(tmp_path):
    real = tmp_path / "real"
    write_image(real / "a.png")
    os.symlink(real / "a.png", real / "b.png")
    os.symlink(real, tmp_path / "images")
    ann = write_json(tmp_path / "i.json", coco_doc("b.png"))
    (sample,) = read_annotations("coco", ann, tmp_path / "images")
    assert sample.image == tmp_path / "images" / "b.png"


# ------------------------------------------------------------------ geometry is validated before any library


@pytest.mark.parametrize(
    "segmentation, reason",
    [
        ([[1.0, 1.0, 4.4e8, 1.0, 5.0, 9.0]], "far outside"),
        ([[1.0, 1.0, 1e300, 1.0, 5.0, 9.0]], "far outside"),
        ([[-1e9, 1.0, 5.0, 1.0, 5.0, 9.0]], "far outside"),
        ({"size": [48, 64], "counts": [-5, 3077]}, "negative run length"),
        ({"size": [48, 64], "counts": [1.5, 3070.5]}, "must be integers"),
        ({"size": [48, 64], "counts": [True, 3071]}, "must be integers"),
        ({"size": [48, 64], "counts": [2**70, 3072]}, "longer than any image|sum to"),
        ({"size": [48, 64], "counts": [10, 20]}, "sum to 30, not h\\*w = 3072"),
        ({"size": [48, 64], "counts": "\x7f\x7f garbage"}, "outside COCO's alphabet"),
        ({"size": [48, 64], "counts": "PP"}, "ends inside a number"),
        ({"size": [48.5, 64], "counts": [3072]}, "two positive integers"),
    ],
)
def test_hostile_coco_geometry_is_refused_by_reader_check_and_training_path(segmentation, reason, tmp_path):
    write_image(tmp_path / "images" / "a.png")
    ann = write_json(tmp_path / "i.json", coco_doc("a.png", segmentation=segmentation, bbox=None))
    doc = json.loads(ann.read_text())
    del doc["annotations"][0]["bbox"]
    write_json(ann, doc)
    with pytest.raises(DataFormatError, match=r"i\.json: annotations\[0\] id=1: .*" + reason):
        read_annotations("coco", ann, tmp_path / "images")
    report = check_dataset("coco", ann, tmp_path / "images")
    assert report.errors == 1 and report.problems["bad records (skipped)"] == 1
    # Regions built in memory (describe's inputs, custom sources) meet the same rule before pycocotools.
    region = Region(rle=segmentation) if isinstance(segmentation, dict) else Region(polygons=segmentation)
    with pytest.raises(DataFormatError, match=reason):
        region_to_mask(region, 48, 64)
    with pytest.raises(DataFormatError, match=reason):
        mask_patch(region, 48, 64)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e300"])
def test_dota_csv_and_voc_refuse_non_finite_or_absurd_coordinates(value, tmp_path):
    write_image(tmp_path / "images" / "p1.png")
    labels = tmp_path / "labelTxt"
    labels.mkdir()
    (labels / "p1.txt").write_text(f"1 1 20 1 20 20 {value} 20 ship 0\n5 5 9 5 9 9 5 9 ship 0\n")
    with pytest.raises(DataFormatError, match=r"p1\.txt.*line 1.*(NaN or infinite|far outside)"):
        read_annotations("dota", labels, tmp_path / "images")
    kept = read_annotations("dota", labels, tmp_path / "images", on_bad_record="skip")
    assert kept.report.skipped == 1 and len(kept[0].regions) == 1

    csv = tmp_path / "boxes.csv"
    csv.write_text(f"image_path,xmin,ymin,xmax,ymax,label\np1.png,1,1,{value},20,ship\n")
    with pytest.raises(DataFormatError, match=r"boxes\.csv: line 2: box .*(NaN or infinite|far outside)"):
        read_annotations("csv", csv, tmp_path / "images")

    voc = tmp_path / "Annotations"
    voc.mkdir()
    (voc / "p1.xml").write_text(
        "<annotation><filename>p1.png</filename><size><width>64</width><height>48</height></size>"
        f"<object><name>ship</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>{value}</xmax><ymax>20</ymax>"
        "</bndbox></object></annotation>"
    )
    with pytest.raises(DataFormatError, match=r"p1\.xml.*(not a finite number|far outside)"):
        read_annotations("voc", voc, tmp_path / "images")
    assert check_dataset("voc", voc, tmp_path / "images").errors >= 1


def test_duplicate_annotation_ids_are_refused(tmp_path):
    write_image(tmp_path / "images" / "a.png")
    doc = coco_doc("a.png")
    doc["annotations"].append(dict(doc["annotations"][0]))
    ann = write_json(tmp_path / "i.json", doc)
    with pytest.raises(DataFormatError, match=r"annotations\[1\] id=1: annotation id 1 repeats annotations\[0\]"):
        read_annotations("coco", ann, tmp_path / "images")
    assert check_dataset("coco", ann, tmp_path / "images").problems["bad records (skipped)"] == 1


def test_osprey_region_refs_must_be_integers(tmp_path):
    write_image(tmp_path / "a.png")
    record = {
        "id": 7,
        "file_name": "a.png",
        "height": 48,
        "width": 64,
        "annotation": [{"bbox": [1, 1, 10, 10], "segmentation": [[1, 1, 10, 1, 10, 10]]}],
        "region_refs": ["0"],
        "conversations": [{"from": "human", "value": "<image>\nWhat is <mask><pos>?"}, {"from": "gpt", "value": "x"}],
    }
    ann = write_json(tmp_path / "o.json", [record])
    with pytest.raises(DataFormatError, match=r"o\.json: record 0 \(a\.png\): region_refs\[0\] must be int, got str"):
        read_annotations("osprey", ann, tmp_path)


def test_deeply_nested_or_oversized_json_is_a_clear_error(tmp_path, monkeypatch):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DataFormatError, match=r"deep\.json: JSON nested too deeply"):
        load_json(deep)
    import rsvlm_zoo.data.readers._common as common

    monkeypatch.setattr(common, "MAX_JSON_BYTES", 100)
    big = write_json(tmp_path / "big.json", {"x": "y" * 200})
    with pytest.raises(DataFormatError, match=r"big\.json: .* limit .* RSVLM_MAX_JSON_BYTES"):
        load_json(big)
    with pytest.raises(ValueError, match="encoding_errors must be one of strict, replace, got 'bogus'"):
        load_json(deep, encoding_errors="bogus")


# ------------------------------------------------------------------ on_bad_sample: skip skips every bad sample


def scene(sid, region):
    turns = [Turn("human", "<image>\nWhat is <mask><pos>?"), Turn("gpt", "a car")]
    return Sample(np.zeros((40, 50, 3), np.uint8), 50, 40, [region], turns, sample_id=sid, source="ann.json")


class Exploding(Region):
    """A region whose geometry raises what a third-party library would (not a DataFormatError)."""

    def __init__(self, error):
        super().__init__(box=(1.0, 1.0, 9.0, 9.0))
        self.error = error

    def to_mask(self, height, width):
        raise self.error


def module(samples, on_bad_sample):
    dm = RegionDataModule(train=ListSource(samples), batch_size=len(samples), on_bad_sample=on_bad_sample)
    dm.attach(InputSpec(build_tiny_tokenizer(), (32, 32), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), 2))
    return dm


def good():
    mask = np.zeros((40, 50), bool)
    mask[5:15, 5:20] = True
    return scene("good", Region(mask=mask))


@pytest.mark.parametrize(
    "error", [ValueError("frPyObjects: bad polygon"), OverflowError("int too large"), MemoryError(), IndexError("i")]
)
def test_skip_skips_any_error_of_one_sample_and_names_its_record(error, caplog):
    bad = scene("bad", Exploding(error))
    batch = next(iter(module([good(), bad, good()], "skip").train_dataloader()))
    assert batch["skipped"] == 1 and batch["sample_ids"] == ["good", "good"]
    assert "record 'bad' in ann.json" in caplog.text and type(error).__name__ in caplog.text
    with pytest.raises(DataFormatError, match=f"record 'bad' in ann.json: {type(error).__name__}"):
        next(iter(module([good(), bad], "error").train_dataloader()))


@pytest.mark.parametrize("error", [AttributeError("no such attribute"), AssertionError("invariant"), NameError("x")])
def test_programming_errors_still_stop_the_run(error):
    bad = scene("bad", Exploding(error))
    with pytest.raises(type(error)):
        next(iter(module([good(), bad], "skip").train_dataloader()))


# ------------------------------------------------------------------ outputs are strict JSON


def test_evaluation_files_are_strict_json_even_for_undefined_scores(tmp_path):
    from rsvlm_zoo.evaluation import write_evaluation

    def refuse(constant):
        raise ValueError(f"non-strict JSON constant {constant}")

    records = {"regions": [{"sample_id": "a", "answer": "x", "score": float("nan")}]}
    write_evaluation(tmp_path, records, {"regions": {"cider": float("nan"), "meteor": 0.25}})
    metrics = json.loads((tmp_path / "metrics.json").read_text(), parse_constant=refuse)
    assert metrics == {"regions": {"cider": None, "meteor": 0.25}}
    line = (tmp_path / "predictions_regions.jsonl").read_text().splitlines()[0]
    assert json.loads(line, parse_constant=refuse)["score"] is None


def test_the_commands_refuse_a_hostile_export_without_running_it(exported, tmp_path, capsys):
    from rsvlm_zoo.cli import main

    marker = tmp_path / "pwned"
    bad = poisoned_export(exported, "model.init_args.encoder.class_path", "os.system", marker, tmp_path / "bad")
    assert main(["export", "--model", str(bad), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "model.init_args.encoder.class_path names 'os.system'" in err and "Traceback" not in err
    assert not marker.exists() and not (tmp_path / "out").exists()
