from rsvlm_zoo.cli import main


def test_rsvlm_data_check_runs_from_the_main_cli(shared_data, capsys):
    code = main(
        [
            "data",
            "check",
            "dota",
            str(shared_data / "regions/dota/labelTxt"),
            "--images",
            str(shared_data / "regions/dota/images"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "64" in out


def test_rsvlm_data_refs_runs_from_the_main_cli(shared_data, tmp_path, capsys):
    out = tmp_path / "refs.json"
    code = main(["data", "refs", "dior-rsvg", str(shared_data / "regions/dior_rsvg"), "--out", str(out)])
    assert code == 0
    assert "wrote 1 grounding reference(s)" in capsys.readouterr().out
    assert out.is_file()


def _osprey_raw(tmp_path, question: str) -> str:
    import json

    import numpy as np
    from PIL import Image

    (tmp_path / "images").mkdir()
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(tmp_path / "images" / "000000000139.jpg")
    record = {
        "id": 139,
        "file_name": "COCO_train2014_000000000139.jpg",
        "height": 48,
        "width": 64,
        "annotation": [{"bbox": [4, 6, 12, 10], "segmentation": [[4, 6, 16, 6, 16, 16, 4, 16]], "category_id": 3}],
        "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": "a man"}],
    }
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps([record]))
    return str(path)


def test_rsvlm_data_check_reads_a_raw_osprey_file_without_options(tmp_path, capsys):
    path = _osprey_raw(tmp_path, "What is <region1> doing?")
    code = main(["data", "check", "osprey", path, "--images", str(tmp_path / "images")])
    out = capsys.readouterr().out
    assert code == 0, out
    row = next(line for line in out.splitlines() if line.strip().startswith("regions never referenced"))
    assert row.split()[-2:] == ["0", "ok"]


def test_rsvlm_data_check_names_the_kind_option_for_an_ambiguous_osprey_file(tmp_path, capsys):
    path = _osprey_raw(tmp_path, "What is going on here?")
    code = main(["data", "check", "osprey", path, "--images", str(tmp_path / "images")])
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert code == 1 and "record 0" in text and "--option kind=conversation" in text
    code = main(
        ["data", "check", "osprey", path, "--images", str(tmp_path / "images"), "--option", "kind=conversation"]
    )
    assert code == 0


def test_rsvlm_data_pack_writes_shards_that_rsvlm_data_check_reads(shared_data, tmp_path, capsys):
    import pytest

    pytest.importorskip("litdata", reason="LitData is not installed: pip install 'rsvlm_zoo[stream]'")
    isaid = shared_data / "regions/isaid/instances.json"
    out = tmp_path / "shards"
    code = main(["data", "pack", "coco", str(isaid), "--out", str(out), "--input-size", "64", "--workers", "2"])
    assert code == 0
    assert "packed 2 sample(s) from 2 scene(s)" in capsys.readouterr().out
    assert main(["data", "pack", "coco", str(isaid), "--out", str(out)]) == 1
    assert "already holds a finished pack" in capsys.readouterr().err
    code_original = main(["data", "check", "coco", str(isaid)])
    original = capsys.readouterr().out.splitlines()
    code_packed = main(["data", "check", "shards", str(out)])
    packed = capsys.readouterr().out.splitlines()
    assert code_packed == code_original
    assert packed[0].startswith("shards (coco, squash)")
    counts = [line for line in original if line.split()[0] in ("samples", "images", "regions", "category")]
    assert counts and all(line in packed for line in counts)
