"""Start-up cost: `import rsvlm_zoo`, `rsvlm --help`, `rsvlm --version` and the first `build_model` import.

    python benchmarks/startup.py [--repeats 5]

Each row runs a fresh interpreter (`python -X importtime -c ...`, or the `rsvlm` command) `--repeats` times and
keeps the best wall time, so disk caches are warm and the figure is the interpreter's own work. Targets (2-core
CPU): `import rsvlm_zoo` <= 1.5 s, `rsvlm --help` <= 2.5 s. The `import` rows also print the slowest top-level
module `-X importtime` reports and whether torch was imported.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time

ROWS = {
    "import rsvlm_zoo": [sys.executable, "-X", "importtime", "-c", "import rsvlm_zoo"],
    "rsvlm --help": ["rsvlm", "--help"],
    "rsvlm --version": ["rsvlm", "--version"],
    "from rsvlm_zoo import build_model; build_model": [
        sys.executable,
        "-X",
        "importtime",
        "-c",
        "from rsvlm_zoo import build_model; build_model.__name__",
    ],
}
TARGETS = {"import rsvlm_zoo": 1.5, "rsvlm --help": 2.5}


def best_time(cmd: list[str], repeats: int) -> tuple[float, str]:
    """Best wall time of `repeats` runs, and the stderr of the last one."""
    best, err = float("inf"), ""
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        best = min(best, time.perf_counter() - start)
        err = done.stderr
    return best, err


def slowest_top_level(importtime: str) -> str:
    """The top-level module with the largest cumulative import time in `-X importtime` output."""
    rows = []
    for line in importtime.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \| ( *)(\S+)", line)
        if m and len(m.group(2)) <= 1:
            rows.append((int(m.group(1)), m.group(3)))
    if not rows:
        return "-"
    us, name = max(rows)
    return f"{name} {us / 1e6:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if shutil.which("rsvlm") is None:
        sys.exit("the rsvlm command is not on PATH: pip install the package first")
    print(f"| what | best of {args.repeats} (s) | target (s) | torch imported | slowest top-level import |")
    print("|---|---|---|---|---|")
    for name, cmd in ROWS.items():
        seconds, err = best_time(cmd, args.repeats)
        torch_loaded = "yes" if re.search(r"\| +torch$", err, re.MULTILINE) else ("no" if "importtime" in cmd else "-")
        target = TARGETS.get(name)
        slowest = slowest_top_level(err) if "importtime" in cmd else "-"
        print(f"| {name} | {seconds:.2f} | {target if target else '-'} | {torch_loaded} | {slowest} |")


if __name__ == "__main__":
    main()
