"""A downstream project type-checks the README's API with `mypy --strict` (the package ships `py.typed`)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mypy")

REPO = Path(__file__).resolve().parents[1]

DOWNSTREAM = """\
from pathlib import Path

import numpy as np

from rsvlm_zoo import RegionVLM, build_model, from_pretrained, list_models

names: list[str] = list_models("aquila*")
model: RegionVLM = build_model("aquila_plus_tiny")
image = np.zeros((64, 64, 3), dtype=np.uint8)
mask = np.zeros((64, 64), dtype=bool)
answers = model.describe([image], [[mask]])
print(len(answers), names, model.num_parameters(trainable_only=True))
out: Path = model.save_pretrained("exported", overwrite=True)
again: RegionVLM = from_pretrained(out)
again.describe([image], [[mask]], max_new_tokens=4)
"""

# The same calls with mistakes a checker must see: the checks above are not vacuous.
MISTAKES = """\
from rsvlm_zoo import build_model, from_pretrained

count: int = build_model("aquila_plus_tiny")
from_pretrained("exported").describe_all([])
"""

# torch and lightning are followed (RegionVLM's bases are real classes, so a wrong type is seen); the rest of the
# stack is left out to keep the check to seconds.
CONFIG = """\
[mypy]
strict = True
follow_imports = silent

[mypy-transformers.*,timm.*,torchmetrics.*,peft.*,torchvision.*,safetensors.*,pycocotools.*,PIL.*,jsonargparse.*,open_clip.*,tifffile.*,lightning_utilities.*]
follow_imports = skip
follow_imports_for_stubs = True
"""


def test_readme_api_passes_mypy_strict_and_mistakes_are_caught(tmp_path):
    (tmp_path / "downstream.py").write_text(DOWNSTREAM)
    (tmp_path / "mistakes.py").write_text(MISTAKES)
    (tmp_path / "mypy.ini").write_text(CONFIG)
    # An installed wheel puts the package on the path; an editable install's import hook is invisible to mypy.
    env = {**os.environ, "MYPYPATH": str(REPO)}
    run = lambda f: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "mypy", "--config-file", "mypy.ini", "--cache-dir", str(tmp_path / "cache"), f],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    good = run("downstream.py")
    assert good.returncode == 0, good.stdout + good.stderr
    bad = run("mistakes.py")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert 'expression has type "RegionVLM", variable has type "int"' in bad.stdout, bad.stdout
    assert "mistakes.py:4: error" in bad.stdout, bad.stdout  # nn.Module's __getattr__ gives a Tensor: not callable
