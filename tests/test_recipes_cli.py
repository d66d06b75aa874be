"""Recipes travel with the package: listed, shown, copied (never over a file) and named directly by `-c`."""

import subprocess
import sys

from rsvlm_zoo.cli import main
from rsvlm_zoo.cli.recipes import list_recipes, recipe_path, recipes_dir, resolve_config_args


def test_every_recipe_is_shipped_inside_the_package():
    assert recipes_dir().is_relative_to(__import__("rsvlm_zoo").__path__[0])
    assert {"tiny/aquila_plus", "tiny/mgimm_stage1", "tiny/mgimm", "aquila_plus", "mgimm"} <= set(list_recipes())


def test_list_show_and_copy_without_overwriting(tmp_path, capsys):
    assert main(["recipes", "list"]) == 0
    assert "tiny/aquila_plus" in capsys.readouterr().out.split()
    assert main(["recipes", "show", "tiny/aquila_plus"]) == 0
    assert capsys.readouterr().out == recipe_path("tiny/aquila_plus").read_text()
    dest = tmp_path / "mine.yaml"
    assert main(["recipes", "copy", "tiny/aquila_plus", str(dest)]) == 0
    assert dest.read_text() == recipe_path("tiny/aquila_plus").read_text()
    dest.write_text("my edits\n")
    assert main(["recipes", "copy", "tiny/aquila_plus", str(dest)]) == 1
    assert dest.read_text() == "my edits\n" and "exists and is kept" in capsys.readouterr().err
    assert main(["recipes", "show", "nope"]) == 1 and "no recipe 'nope'" in capsys.readouterr().err


def test_config_names_resolve_to_shipped_recipes_unless_a_file_exists(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shipped = str(recipe_path("tiny/mgimm"))
    assert resolve_config_args(["fit", "-c", "tiny/mgimm"]) == ["fit", "-c", shipped]
    assert resolve_config_args(["fit", "--config=tiny/mgimm.yaml"]) == ["fit", f"--config={shipped}"]
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "mgimm.yaml").write_text("{}\n")
    assert resolve_config_args(["fit", "-c", "tiny/mgimm.yaml"]) == ["fit", "-c", "tiny/mgimm.yaml"]


def test_fit_a_shipped_recipe_by_name_from_another_folder(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "rsvlm_zoo",
            "fit",
            "-c",
            "tiny/aquila_plus",
            "--trainer.fast_dev_run=true",
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.enable_progress_bar=false",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "max_steps=1" in out.stdout + out.stderr
