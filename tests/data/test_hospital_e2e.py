"""Hospital data end to end, as a user runs it: train_ddpm.py, synthxray generate and synthxray evaluate in subprocesses.

- 12- and 16-bit PNG exports reach the training loop at full range (not clipped to white);
- DICOM with planted patient data: no name, ID, date or institution in any output or log.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hospitaldata import INSTITUTION, PATIENT_ID, PATIENT_NAME, make_16bit_folder, make_dicom_folder

ROOT = Path(__file__).resolve().parents[2]
TRAIN_FLAGS = ["--resolution", "16", "--block_out_channels", "8", "16", "--layers_per_block", "1", "--train_batch_size", "4",
               "--max_train_steps", "2", "--checkpointing_steps", "0", "--save_images_steps", "0", "--num_train_timesteps", "20",
               "--sample_steps", "2", "--seed", "0"]

# runs train_scripts/train_ddpm.py unchanged, recording what the training transform hands the model
RECORDER = """
import json, runpy, sys
import synthxray.data as data
stats, original = [], data.image_transform
def recording(*args, **kwargs):
    tf = original(*args, **kwargs)
    def apply(image):
        t = tf(image)
        stats.append([float(t.min()), float(t.max()), float((t > 0.99).float().mean())])
        return t
    return apply
data.image_transform = recording
script, out = sys.argv[1], sys.argv[2]
sys.argv = [script, *sys.argv[3:]]
try:
    runpy.run_path(script, run_name="__main__")
finally:
    json.dump(stats, open(out, "w"))
"""


def _env(tmp_path: Path) -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
            "HF_DATASETS_CACHE": str(tmp_path / "hf-cache"), "SYNTHXRAY_CACHE": str(tmp_path / "feature-cache")}


def _run(cmd: list[str], tmp_path: Path, log: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=_env(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=600)
    (tmp_path / "logs").mkdir(exist_ok=True)
    (tmp_path / "logs" / f"{log}.log").write_text(proc.stdout + "\n" + proc.stderr)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _train(tmp_path: Path, dataset: Path, out: Path, log: str) -> list[list[float]]:
    recorder = tmp_path / "recorder.py"
    recorder.write_text(RECORDER)
    stats = tmp_path / f"{log}_stats.json"
    _run([sys.executable, str(recorder), str(ROOT / "train_scripts" / "train_ddpm.py"), str(stats),
          "--dataset", str(dataset), "--output_dir", str(out), *TRAIN_FLAGS], tmp_path, log)
    assert (out / "synthxray.json").is_file()
    return json.loads(stats.read_text())


@pytest.mark.slow
def test_train_ddpm_sees_12_and_16_bit_images_at_full_range(tmp_path):
    data = make_16bit_folder(tmp_path / "exports", high=4095)  # 12-bit exports in 16-bit PNGs
    for f in make_16bit_folder(tmp_path / "full16", high=65535).joinpath("b").iterdir():
        f.replace(data / "b" / f"full16_{f.name}")  # and true 16-bit ones beside them
    stats = _train(tmp_path, data, tmp_path / "gen", "train")
    assert len(stats) >= 4, "the training transform was never called"
    assert min(s[0] for s in stats) == pytest.approx(-1.0, abs=0.02) and max(s[1] for s in stats) == pytest.approx(1.0, abs=0.02)
    assert max(s[2] for s in stats) < 0.2  # convert("L") made a 12-bit ramp 94% white
    recorded = json.loads((tmp_path / "gen" / "synthxray.json").read_text())["data"]["intensity"]
    assert recorded["mode"] == "dataset" and recorded["window"][1] > 60000  # one window for the mixed 12/16-bit folder


@pytest.mark.slow
def test_no_patient_data_in_any_output(tmp_path):
    dicoms = make_dicom_folder(tmp_path / "hospital", per_class=4)
    needles = [PATIENT_NAME, *PATIENT_NAME.split("^"), PATIENT_ID, INSTITUTION, "Plantedname", "Plantedphysician", "19010203", "20240229"]
    assert PATIENT_ID.encode() in next(dicoms.rglob("*.dcm")).read_bytes()  # the grep below can find them
    stats = _train(tmp_path, dicoms, tmp_path / "generator", "train")
    assert max(s[1] for s in stats) == pytest.approx(1.0, abs=0.02) and min(s[0] for s in stats) == pytest.approx(-1.0, abs=0.02)
    synthxray = [sys.executable, "-m", "synthxray.cli"]
    proc = _run([*synthxray, "generate", "--model", str(tmp_path / "generator"), "--output_dir", str(tmp_path / "synthetic"),
                 "--per_class", "3", "--num_inference_steps", "2", "--check_memorization", str(dicoms), "--image_folder"], tmp_path, "generate")
    assert "memorization (pixel)" in proc.stdout
    manifest = json.loads((tmp_path / "synthetic" / "synthxray_dataset.json").read_text())
    assert manifest["memorization"]["train"] == "hospital" and manifest["memorization"]["num_train"] == 8
    _run([*synthxray, "evaluate", "--real", str(dicoms), "--synthetic", str(tmp_path / "synthetic"), "--metrics", "fid",
          "memorization", "--extractor", "random", "--output_dir", str(tmp_path / "evaluation"), "--no_progress"], tmp_path, "evaluate")
    outputs = [p for d in ("generator", "synthetic", "evaluation", "logs", "hf-cache", "feature-cache")
               for p in (tmp_path / d).rglob("*") if p.is_file()]
    names = {p.name for p in outputs}
    assert {"synthxray.json", "training_config.json", "README.md", "synthxray_dataset.json", "generate.log"} <= names
    assert any(p.suffix == ".arrow" for p in outputs)
    leaks = [(str(p.relative_to(tmp_path)), n) for p in outputs for n in needles
             if n.encode() in p.read_bytes() or n.encode("utf-16-le") in p.read_bytes()]
    assert not leaks, leaks
