"""`rsvlm recipes list|show|copy`: the recipes shipped inside the package, and recipe names for `-c`.

Every recipe travels with the package (`rsvlm_zoo/recipes/`), so a pip install has them too. They are named by
their path below that folder without `.yaml` (`tiny/aquila_plus`, `mgimm`); `rsvlm fit -c tiny/aquila_plus` (and
`lightning fit -c ...`) reads the shipped recipe when no file of that name exists, and `rsvlm recipes copy NAME`
writes a copy to edit (never over an existing file).
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

CONFIG_FLAGS = ("-c", "--config")


def recipes_dir() -> Path:
    """The folder of the shipped recipes."""
    return Path(str(resources.files("rsvlm_zoo") / "recipes"))


def list_recipes() -> list[str]:
    """Names of the shipped recipes, sorted (`tiny/aquila_plus`, ...)."""
    root = recipes_dir()
    return sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.yaml"))


def recipe_path(name: str) -> Path | None:
    """The shipped recipe called `name` (with or without `.yaml`, or `recipes/`), or None."""
    stem = name.removeprefix("recipes/").removesuffix(".yaml")
    path = recipes_dir() / f"{stem}.yaml"
    return path if stem in list_recipes() else None


def resolve_config_args(argv: list[str]) -> list[str]:
    """`-c NAME` / `--config NAME` / `--config=NAME`: a shipped recipe's path when no file `NAME` exists."""
    out = list(argv)
    for i, arg in enumerate(out):
        flag, sep, value = arg.partition("=")
        if sep and flag == "--config":
            out[i] = f"--config={_resolve(value)}"
        elif arg in CONFIG_FLAGS and i + 1 < len(out):
            out[i + 1] = _resolve(out[i + 1])
    return out


def _resolve(value: str) -> str:
    if Path(value).exists():
        return value
    shipped = recipe_path(value)
    return str(shipped) if shipped is not None else value


def recipes_main(argv: list[str] | None = None) -> int:
    """Run `rsvlm recipes`; returns the exit status (1 when a name is unknown or a copy would overwrite)."""
    parser = argparse.ArgumentParser(prog="rsvlm recipes", description="The recipes shipped with rsvlm_zoo.")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="name every shipped recipe")
    show = sub.add_parser("show", help="print a recipe")
    show.add_argument("name")
    copy = sub.add_parser("copy", help="write a recipe to edit (never over an existing file)")
    copy.add_argument("name")
    copy.add_argument("dest", nargs="?", default=None, help="file or folder (default: ./<name>.yaml)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse: 2 for bad arguments, 0 for --help
        return int(exit_.code or 0)
    if args.action == "list":
        print("\n".join(list_recipes()))
        return 0
    path = recipe_path(args.name)
    if path is None:
        print(f"rsvlm recipes: error: no recipe {args.name!r}; shipped: {', '.join(list_recipes())}", file=sys.stderr)
        return 1
    text = path.read_text(encoding="utf-8")
    if args.action == "show":
        print(text, end="")
        return 0
    dest = Path(args.dest) if args.dest else Path(f"{Path(args.name.removesuffix('.yaml')).name}.yaml")
    if dest.is_dir():
        dest = dest / path.name
    if dest.exists():
        print(f"rsvlm recipes: error: {dest} exists and is kept; name another destination", file=sys.stderr)
        return 1
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text, encoding="utf-8")
    print(f"wrote {dest}")
    return 0
