"""Bad input fails with a clear message before any training starts (and before anything is written)."""

from __future__ import annotations

import shutil

import pytest
from script_loader import load_script
from sd_testing import base_args, write_images

from synthxray.data import DataError
from synthxray.training.common import parse_config
from synthxray.training.dreambooth import DreamBoothConfig
from synthxray.training.dreambooth import train as train_dreambooth
from synthxray.training.lora import LoRAConfig
from synthxray.training.lora import train as train_lora


def test_base_model_missing_a_part(tiny_sd, concept_folder, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_sd, broken)
    shutil.rmtree(broken / "vae")
    (broken / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    out = tmp_path / "out"
    cfg = parse_config(LoRAConfig, base_args(broken, out) + ["--instance_data_dir", str(concept_folder), "--instance_prompt", "x"])
    with pytest.raises(FileNotFoundError, match=r"missing unet/ weights .*, vae/"):
        train_lora(cfg)
    assert not out.exists()
    with pytest.raises(FileNotFoundError, match="no such folder"):
        train_lora(parse_config(LoRAConfig, base_args(tmp_path / "nowhere", out) + ["--instance_data_dir", str(concept_folder), "--instance_prompt", "x"]))


def test_prompt_template_without_label(tiny_sd, xray_folder, tmp_path):
    args = base_args(tiny_sd, tmp_path / "out") + ["--dataset_name", str(xray_folder), "--class_prompt_template", "a chest x-ray"]
    with pytest.raises(ValueError, match=r"has no \{label\}"):
        parse_config(DreamBoothConfig, args)
    with pytest.raises(ValueError, match="not a valid template"):
        parse_config(DreamBoothConfig, args[:-1] + ["a {label} x-ray of {view}"])


def test_script_reports_bad_input_in_one_line(tiny_sd, xray_folder, tmp_path, capsys):
    script = load_script("train_scripts/train_lora.py")
    code = script.main(base_args(tiny_sd, tmp_path / "out") + ["--dataset_name", str(xray_folder)])
    assert code == 2 and "needs a prompt per class" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_class_with_no_images(tiny_sd, tmp_path):
    import datasets

    folder = tmp_path / "folder"
    write_images(folder / "normal", 2, seed=0)
    (folder / "covid").mkdir()
    out = tmp_path / "out"
    with pytest.raises(DataError, match="covid"):
        train_lora(parse_config(LoRAConfig, base_args(tiny_sd, out) + ["--dataset_name", str(folder), "--class_prompt_template", "{label}"]))
    # a dataset whose labels name a class that has no rows
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["normal", "covid", "pneumonia"])})
    files = sorted(str(p) for p in (folder / "normal").iterdir())
    datasets.Dataset.from_dict({"image": files, "label": [0, 2]}, features=features).save_to_disk(str(tmp_path / "saved"))
    with pytest.raises(DataError, match=r"\['covid'\] have no images"):
        train_dreambooth(parse_config(DreamBoothConfig, base_args(tiny_sd, out) + [
            "--dataset_name", str(tmp_path / "saved"), "--one_model_per_class", "--instance_prompt", "a chest x-ray",
        ]))
    assert not out.exists()


def test_concept_folder_errors(tiny_sd, xray_folder, tmp_path):
    args = base_args(tiny_sd, tmp_path / "out") + ["--instance_prompt", "x", "--instance_data_dir"]
    with pytest.raises(DataError, match="use --dataset_name"):
        train_lora(parse_config(LoRAConfig, args + [str(xray_folder)]))  # class sub-folders, no images at the top
    with pytest.raises(ValueError, match="exactly one of"):
        parse_config(LoRAConfig, args + [str(xray_folder), "--dataset_name", str(xray_folder)])
    with pytest.raises(ValueError, match="needs --class_prompt"):
        parse_config(LoRAConfig, args + [str(xray_folder), "--with_prior_preservation"])
    with pytest.raises(ValueError, match="--sample_scheduler must be one of"):
        parse_config(LoRAConfig, args + [str(xray_folder), "--sample_scheduler", "dpm_sde"])
    from synthxray.training.stable_diffusion import check_base_model, check_resolution

    with pytest.raises(ValueError, match="not a multiple of 4"):  # VAE x UNet downsampling of the tiny model
        check_resolution(check_base_model(str(tiny_sd)), 34)
