"""A published benchmark scored end to end: `rsvlm data refs` writes the references, `rsvlm eval --task` reads them."""

import json

from rsvlm_zoo.cli import main
from rsvlm_zoo.data.box_codec import BoxCodec


def test_dior_rsvg_sample_refs_then_grounding_eval(shared_data, tmp_path, capsys):
    refs = tmp_path / "refs.json"
    assert main(["data", "refs", "dior-rsvg", str(shared_data / "regions" / "dior_rsvg"), "--out", str(refs)]) == 0
    (ref,) = json.loads(refs.read_text())
    assert ref["box"] == [133.0, 237.0, 684.0, 672.0] and (ref["width"], ref["height"]) == (800, 800)
    # A GeoChat-style model answers on the 0-100 grid; a Qwen-style one on 0-1000; both are read back to pixels.
    grid = BoxCodec("grid100").encode(ref["box"], ref["width"], ref["height"])
    answers = {"geochat": f"It is at {grid}.", "qwen": "<box>(166,296),(855,840)</box>"}
    scores = {}
    for box_format, answer in answers.items():
        preds = tmp_path / f"{box_format}.jsonl"
        preds.write_text(json.dumps({"sample_id": ref["sample_id"], "answer": answer}) + "\n")
        out = tmp_path / f"{box_format}.json"
        args = ["eval", "--task", "grounding", "--box-format", box_format, "--predictions", str(preds)]
        assert main([*args, "--references", str(refs), "--output", str(out)]) == 0, capsys.readouterr().err
        scores[box_format] = json.loads(out.read_text())
    for got in scores.values():
        assert got["acc@0.75"] == 1.0 and got["unparsed"] == 0 and got["samples"] == 1
    assert scores["geochat"]["miou"] > 0.97 and scores["qwen"]["miou"] > 0.99  # grid quantisation only
    # The grid numbers read as pixels would land far away: the formats are not interchangeable.
    preds = tmp_path / "wrong.jsonl"
    preds.write_text(json.dumps({"sample_id": ref["sample_id"], "answer": "[17, 30, 86, 84]"}) + "\n")
    out = tmp_path / "wrong.json"
    args = ["eval", "--task", "grounding", "--box-format", "pixels", "--predictions", str(preds)]
    assert main([*args, "--references", str(refs), "--output", str(out)]) == 0
    assert json.loads(out.read_text())["miou"] == 0.0
