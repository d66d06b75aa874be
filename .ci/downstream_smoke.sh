#!/usr/bin/env bash
# Downstream smoke test: the wheel, installed into a fresh virtualenv outside the repository, used as the README
# tells a pip user to: the Python snippet, `rsvlm recipes copy`, a fast_dev_run fit from a shipped recipe with both
# command names, and `rsvlm eval`; then the sdist's own tests. The new virtualenv sees the calling environment's
# packages through a .pth line (so torch and the rest are not installed twice); rsvlm_zoo comes only from the wheel.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python -m pip wheel -q --no-deps -w "$work/dist" "$repo"
deps_site="$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
python -m venv "$work/venv"
venv_site="$("$work/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$deps_site" > "$venv_site/zz_ci_dependencies.pth"
"$work/venv/bin/python" -m pip install -q --no-deps "$work"/dist/rsvlm_zoo-*.whl
export PATH="$work/venv/bin:$PATH"
mkdir "$work/project" && cd "$work/project"

python - <<'PY'
import rsvlm_zoo

where = rsvlm_zoo.__file__
assert "site-packages" in where and "/venv/" in where, f"rsvlm_zoo imported from {where}, not from the wheel"
from importlib.resources import files

assert files("rsvlm_zoo").joinpath("py.typed").is_file(), "py.typed is missing from the wheel"
PY

# The README's Python snippet, with an image and two masks.
python - <<'PY'
import numpy as np

from rsvlm_zoo import build_model, list_models

image = np.zeros((96, 96, 3), dtype=np.uint8)
mask1 = np.zeros((96, 96), dtype=bool)
mask1[10:40, 10:40] = True
mask2 = ~mask1
print(list_models("aquila*"))
model = build_model("aquila_plus_tiny")
answers = model.describe([image], [[mask1, mask2]])
assert len(answers) == 1 and len(answers[0]) == 2, answers
print("describe:", answers)
PY

rsvlm recipes list
rsvlm recipes copy tiny/aquila_plus aquila_plus.yaml
test -s aquila_plus.yaml
rsvlm fit -c aquila_plus.yaml --trainer.fast_dev_run true --trainer.default_root_dir runs/rsvlm
lightning fit -c tiny/mgimm_stage1 --trainer.fast_dev_run true --trainer.default_root_dir runs/lightning

cat > predictions.jsonl <<'JSON'
{"image_id": 1, "caption": "many planes are parked next to a long building"}
{"image_id": 2, "caption": "a runway lies in a green field"}
JSON
cat > references.json <<'JSON'
{"images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}],
 "annotations": [{"image_id": 1, "caption": "planes are parked next to a building"},
                 {"image_id": 2, "caption": "a runway in a field"}]}
JSON
rsvlm eval --predictions predictions.jsonl --references references.json --no-meteor --output scores.json
python -c "import json; s = json.load(open('scores.json')); assert s['CIDEr'] > 0, s; print('eval:', s)"
# The sdist carries its tests with their conftest files and runs them from its own tree.
python -m build --sdist -o "$work/sdist" "$repo" >/dev/null
tar xzf "$work"/sdist/rsvlm_zoo-*.tar.gz -C "$work/sdist"
(cd "$work"/sdist/rsvlm_zoo-*/ && python -m pytest -q -p no:cacheprovider tests/test_registry.py tests/test_recipes_cli.py)
echo "downstream smoke test passed"
