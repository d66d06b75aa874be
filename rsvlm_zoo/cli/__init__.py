"""The `rsvlm` command (also installed as `lightning`): one entry point, one line of help per command.

`fit`, `validate`, `test` and `predict` are LightningCLI's (`-c recipe.yaml`, `--print_config`); the others are
rsvlm's own, each in its own module here. Every command that loads a model takes `--model`, `--checkpoint` and
`--pretrained` with one meaning (`rsvlm_zoo.cli.model_args`).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path

LIGHTNING_COMMANDS = {
    "fit": "train a model from a recipe: rsvlm fit -c recipes/mgimm.yaml",
    "validate": "score a model on the validation sets of a recipe",
    "test": "score a model on the test sets; writes predictions and metrics.json under <root>/eval",
    "predict": "answer every sample of a recipe's predict set; writes <root>/predictions.jsonl",
}
# name -> (module, function, one line of help)
OWN_COMMANDS: dict[str, tuple[str, str, str]] = {
    "describe": ("rsvlm_zoo.cli.describe", "describe_main", "answer a question about every region of one scene"),
    "visualize": ("rsvlm_zoo.cli.visualize", "visualize_main", "draw a scene's regions and their answers into a PNG"),
    "eval": ("rsvlm_zoo.cli.eval", "eval_main", "score a predictions file (rsvlm test/predict, or captions) again"),
    "data": ("rsvlm_zoo.cli.data", "data_main", "check an annotation source: counts and problems as a table"),
    "export": ("rsvlm_zoo.cli.export", "export_main", "write a deployable model directory from a model file"),
    "recipes": ("rsvlm_zoo.cli.recipes", "recipes_main", "list, show or copy the recipes shipped with the package"),
}


def usage() -> str:
    """The top-level help: every command with one line."""
    rows = {**LIGHTNING_COMMANDS, **{name: spec[2] for name, spec in OWN_COMMANDS.items()}}
    width = max(map(len, rows))
    lines = [
        "usage: rsvlm <command> [options]   (rsvlm <command> --help for a command's options; rsvlm --version)",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {text}" for name, text in rows.items()]
    return "\n".join(lines)


def lightning_script_note() -> str | None:
    """A warning when the `lightning` on PATH is not this package's script (another package installed its own)."""
    import shutil
    from importlib.metadata import distributions

    found = shutil.which("lightning")
    if found is None:
        return None
    try:
        head = Path(found).read_text(encoding="utf-8", errors="replace")[:2000]
    except OSError:
        return None
    if "rsvlm_zoo" in head:
        return None
    owners = sorted(
        {d.metadata["Name"] for d in distributions() for e in d.entry_points if e.name == "lightning"} - {"rsvlm_zoo"}
    )
    return (
        f"note: the `lightning` command on PATH ({found}) is not rsvlm_zoo's"
        + (f" (installed by {', '.join(owners)})" if owners else "")
        + "; use `rsvlm` (the same commands), or reinstall rsvlm_zoo after that package"
    )


def _own_command(name: str) -> Callable[[list[str]], int]:
    module, func, _ = OWN_COMMANDS[name]
    return getattr(importlib.import_module(module), func)


def main(args: list[str] | None = None) -> int | None:
    """Run the command line; `args` defaults to `sys.argv[1:]` (and then the process exits with the status)."""
    argv = list(sys.argv[1:] if args is None else args)
    if argv and argv[0] in ("-V", "--version"):
        from rsvlm_zoo import __version__

        print(f"rsvlm_zoo {__version__}")
        code = 0
    elif not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        note = lightning_script_note()
        if note:
            print(f"\n{note}")
        code = 0 if argv else 2
    elif argv[0] in OWN_COMMANDS:
        code = _own_command(argv[0])(argv[1:])
    elif argv[0] in LIGHTNING_COMMANDS or argv[0].startswith("-"):
        from rsvlm_zoo.cli.lightning_cli import lightning_main
        from rsvlm_zoo.cli.recipes import resolve_config_args

        code = lightning_main(resolve_config_args(argv))  # `-c NAME` may name a shipped recipe
    else:
        print(f"rsvlm: error: unknown command {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        code = 2
    if args is None:
        sys.exit(code)
    return code
