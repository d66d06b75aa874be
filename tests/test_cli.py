import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from rsvlm_zoo.cli import main
from tests.conftest import FRAGMENT_DIRS, RECIPES

# Whole recipes; fragments are parsed after a recipe in tests/test_recipes_cli.py.
ALL_RECIPES = sorted(p for p in RECIPES.rglob("*.yaml") if p.parent.name not in FRAGMENT_DIRS)


@pytest.mark.parametrize("recipe", ALL_RECIPES, ids=lambda p: str(p.relative_to(RECIPES)))
def test_every_recipe_parses_against_the_code(recipe, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "-c", str(recipe), "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = capsys.readouterr().out
    assert "class_path: rsvlm_zoo." in printed


def test_recipes_exist():
    assert (RECIPES / "tiny" / "aquila_plus.yaml").is_file()


def _fast_dev_run_args(recipe: str, tmp_path: Path, *overrides: str) -> list[str]:
    return [
        "fit",
        "-c",
        str(RECIPES / recipe),
        "--trainer.fast_dev_run",
        "1",
        "--trainer.default_root_dir",
        str(tmp_path),
        "--data.init_args.num_workers",
        "0",
        "--data.init_args.batch_size",
        "4",
        "--data.init_args.eval_batch_size",
        "4",
        *overrides,
    ]


def test_fit_fast_dev_run_on_the_tiny_recipe(tmp_path):
    assert main(_fast_dev_run_args("tiny/aquila_plus.yaml", tmp_path)) == 0


def test_a_frozen_encoder_fit_prints_no_warning(tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(_fast_dev_run_args("tiny/mgimm_stage1.yaml", tmp_path)) == 0
    # The frozen encoder is in eval mode on purpose: Lightning's warning about it is not shown; nor is any other
    # warning a user would see (Python hides DeprecationWarnings raised outside __main__).
    shown = [f"{w.category.__name__}: {w.message}" for w in caught if not issubclass(w.category, DeprecationWarning)]
    assert not shown, shown


def test_an_unexpected_module_in_eval_mode_is_still_warned_about():
    from rsvlm_zoo import build_model

    model = build_model("aquila_plus_tiny")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.on_fit_start()
        model.train()
        model.projector.eval()  # not the frozen encoder: Lightning's count is one more
        n = sum(1 for m in model.modules() if not m.training)
        warnings.warn(f"Found {n} module(s) in eval mode at the start of training.", UserWarning, stacklevel=1)
    assert [w for w in caught if "in eval mode" in str(w.message)]


def test_a_users_config_yaml_is_never_overwritten(tmp_path):
    (tmp_path / "config.yaml").write_text("my: own settings\n")
    one_step = ("--trainer.fast_dev_run", "0", "--trainer.max_steps", "1", "--trainer.limit_val_batches", "1")
    for _ in range(2):  # without a logger the run directory is default_root_dir itself
        args = _fast_dev_run_args("tiny/aquila_plus.yaml", tmp_path, *one_step, "--trainer.logger", "false")
        assert main(args) == 0
    assert (tmp_path / "config.yaml").read_text() == "my: own settings\n"
    for saved in ("config_1.yaml", "config_2.yaml"):
        assert "AquilaPlus" in (tmp_path / saved).read_text() and "seed_everything: 0" in (tmp_path / saved).read_text()


def test_frozen_encoder_in_bfloat16_from_the_command_line(tmp_path):
    args = _fast_dev_run_args(
        "tiny/mgimm_stage1.yaml",
        tmp_path,
        "--model.init_args.encoder_dtype",
        "bfloat16",
        "--data.init_args.train.init_args.num_scenes",
        "8",
    )
    assert main(args) == 0


def test_bfloat16_encoder_is_refused_when_the_recipe_trains_the_encoder(tmp_path):
    args = _fast_dev_run_args(
        "tiny/aquila_plus.yaml",
        tmp_path,
        "--model.init_args.encoder_dtype",
        "bfloat16",
        "--model.init_args.train_encoder",
        "true",
    )
    with pytest.raises(ValueError, match="only suits a frozen encoder"):
        main(args)


def test_short_class_paths_resolve_in_overrides(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(
            ["fit", "-c", str(RECIPES / "tiny" / "aquila_plus.yaml"), "--model.init_args.stage", "2", "--print_config"]
        )
    assert "stage: 2" in capsys.readouterr().out


def _script(name: str) -> str:
    path = Path(sys.executable).parent / name
    if not path.exists():
        pytest.fail(f"console script {name} is not installed next to {sys.executable}; run pip install -e .")
    return str(path)


@pytest.mark.parametrize("script", ["rsvlm", "lightning"])
def test_installed_scripts_show_help(script):
    out = subprocess.run([_script(script), "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "fit" in out.stdout and "validate" in out.stdout


def test_python_dash_m_runs_the_cli():
    out = subprocess.run(
        [sys.executable, "-m", "rsvlm_zoo", "fit", "--help"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "--model" in out.stdout


@pytest.mark.parametrize("recipe", ["aquila_plus.yaml", "mgimm.yaml"])
def test_full_size_recipe_fails_fast_without_local_weights(recipe, tmp_path):
    """Without local weights the command stops at once, naming where it looked and the override that fixes it."""
    import os
    import time

    env = {**os.environ, "HF_HOME": str(tmp_path / "empty_cache"), "HF_HUB_OFFLINE": "1"}
    start = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "rsvlm_zoo", "fit", "-c", str(RECIPES / recipe), "--trainer.accelerator", "cpu"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert out.returncode != 0
    assert time.monotonic() - start < 120
    message = out.stderr + out.stdout
    assert "no local weights for" in message
    assert str(tmp_path / "empty_cache") in message
    assert "--model.init_args.encoder.init_args.weights" in message


def test_checkpoint_of_a_cli_run_rebuilds_the_model(tmp_path):
    """LightningCLI adds `_class_path` to the model's hyperparameters; the checkpoint still rebuilds it."""
    import torch

    from rsvlm_zoo import from_pretrained

    code = main(
        [
            "fit",
            "-c",
            str(RECIPES / "tiny" / "mgimm_stage1.yaml"),
            "--trainer.max_steps",
            "1",
            "--trainer.limit_val_batches",
            "0",
            "--trainer.default_root_dir",
            str(tmp_path),
            "--data.init_args.train.init_args.num_scenes",
            "2",
            "--data.init_args.batch_size",
            "2",
        ]
    )
    assert code == 0
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    model = from_pretrained(ckpt)
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    assert saved and all(torch.equal(model.state_dict()[k], v) for k, v in saved.items())


def test_rsvlm_help_lists_every_command_once_and_version_is_the_package_metadata(capsys):
    import importlib.metadata

    from rsvlm_zoo.cli import LIGHTNING_COMMANDS, OWN_COMMANDS

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("  ")]
    assert listed == [*LIGHTNING_COMMANDS, *OWN_COMMANDS]
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"rsvlm_zoo {importlib.metadata.version('rsvlm_zoo')}"
    assert main(["nonsense"]) == 2 and "unknown command 'nonsense'" in capsys.readouterr().err


def test_a_foreign_lightning_script_on_path_is_named(tmp_path, monkeypatch):
    from rsvlm_zoo.cli import lightning_script_note

    own = tmp_path / "own"
    own.mkdir()
    (own / "lightning").write_text("#!/usr/bin/python\nfrom rsvlm_zoo.cli import main\nmain()\n")
    (own / "lightning").chmod(0o755)
    monkeypatch.setenv("PATH", str(own))
    assert lightning_script_note() is None
    other = tmp_path / "other"
    other.mkdir()
    (other / "lightning").write_text("#!/usr/bin/python\nfrom lightning_sdk.cli import main\nmain()\n")
    (other / "lightning").chmod(0o755)
    monkeypatch.setenv("PATH", str(other))
    assert f"the `lightning` command on PATH ({other / 'lightning'}) is not rsvlm_zoo's" in lightning_script_note()


def test_import_and_help_stay_light_until_a_model_is_asked_for():
    """`import rsvlm_zoo` and `rsvlm --help` load no torch or lightning; the first public name loads what it needs."""
    code = (
        "import sys, rsvlm_zoo; from rsvlm_zoo.cli import main;"
        "heavy = [m for m in ('torch', 'lightning', 'transformers', 'timm') if m in sys.modules];"
        "assert not heavy, heavy;"
        "rsvlm_zoo.list_models(); assert 'torch' in sys.modules and 'rsvlm_zoo.models' in sys.modules;"
        "assert 'build_model' in dir(rsvlm_zoo)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from rsvlm_zoo.cli import main; main(['--help']); print(*sys.modules)"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and "commands:" in done.stdout, done.stderr
    assert not {"torch", "lightning"} & set(done.stdout.split()), done.stdout[-300:]


def test_output_and_replace_flags_have_one_name_in_every_command(tmp_path, capsys):
    """`--out` names what a command writes and `--force` lets it replace it, in eval and export as in data."""
    from rsvlm_zoo.cli.eval import build_parser

    assert build_parser().parse_args(["--predictions", "p.jsonl", "--out", "m.json"]).output == Path("m.json")
    assert build_parser().parse_args(["--predictions", "p.jsonl", "--output", "m.json"]).output == Path("m.json")
    target = tmp_path / "export"
    target.mkdir()
    (target / "kept.txt").write_text("")
    assert main(["export", "--model", "mgimm_tiny", "--out", str(target)]) != 0  # kept without --force
    assert (target / "kept.txt").exists()
    assert main(["export", "--model", "mgimm_tiny", "--out", str(target), "--force"]) == 0
    assert not (target / "kept.txt").exists() and any(target.iterdir())  # replaced by the export
