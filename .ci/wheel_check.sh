#!/usr/bin/env bash
# The wheel, as a user installs it: build it, install it into a fresh virtual environment (the heavy
# dependencies reused from the system site-packages), then train -> generate -> cards from a directory
# outside the checkout, with nothing from the checkout on the path. Exits non-zero on any failure.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
unset PYTHONPATH SYNTHXRAY_MODEL_CARDS
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=2

pip wheel --no-deps --quiet "$repo" -w "$work/dist"
wheel=$(ls "$work"/dist/synthxray-*.whl)
python - "$wheel" "$repo" <<'PY'
import re, sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
need = {f"synthxray/hub/templates/{k}.md" for k in ("generator", "dataset", "classifier")} | {
    "synthxray/py.typed", "synthxray/training/__main__.py", "synthxray/commands/train.py"}
missing = need - names
assert not missing, f"the wheel lacks {sorted(missing)}"
version = re.search(r'^__version__ = "([^"]+)"', open(sys.argv[2] + "/synthxray/__init__.py").read(), re.M).group(1)
assert sys.argv[1].split("/")[-1].startswith(f"synthxray-{version}-"), (sys.argv[1], version)
print(f"wheel: {sys.argv[1].split('/')[-1]}, {len(names)} files, templates + py.typed inside")
PY

python -m venv --system-site-packages "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --no-deps "$wheel"
py="$work/venv/bin/python"
mkdir "$work/elsewhere" && cd "$work/elsewhere"
"$py" - <<'PY'
import importlib.metadata as md, sys, numpy as np, synthxray
assert "/venv/" in synthxray.__file__, f"synthxray imported from {synthxray.__file__}, not the wheel"
assert md.version("synthxray") == synthxray.__version__
rng = np.random.default_rng(0)
labels = np.arange(16) % 2
images = np.clip(rng.integers(0, 120, (16, 28, 28)) + labels[:, None, None] * 120, 0, 255).astype(np.uint8)
np.savez("tiny.npz", train_images=images, train_labels=labels[:, None], test_images=images[:4], test_labels=labels[:4, None])
print(f"synthxray {synthxray.__version__} from {synthxray.__file__}")
PY
tiny=(--resolution 16 --block_out_channels 8 16 --layers_per_block 1 --train_batch_size 8 --checkpointing_steps 0
      --save_images_steps 0 --sample_steps 2 --num_train_timesteps 10 --max_train_steps 2)
"$py" -m accelerate.commands.launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no \
  -m synthxray.training ddpm --dataset tiny.npz --output_dir gen "${tiny[@]}"
"$work/venv/bin/synthxray" train ddpm --dataset tiny.npz --output_dir gen-cli "${tiny[@]}" --max_train_steps 1
"$work/venv/bin/synthxray" generate --model gen --per_class 2 --output_dir synthetic --scheduler ddim --num_inference_steps 2
"$py" - <<'PY'
from pathlib import Path
from synthxray import load_dataset
for folder in ("gen", "gen-cli", "synthetic"):
    card = Path(folder, "README.md").read_text()
    assert "synthxray:card" in card and "Not for clinical use" in card, f"{folder}: no card"
ds = load_dataset("synthetic")
assert len(ds) == 4 and set(ds["num_inference_steps"]) == {2}, ds
print("wheel install: train (accelerate launch -m, synthxray train) -> generate -> cards OK, outside the checkout")
PY
