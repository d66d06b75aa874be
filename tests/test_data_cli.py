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
