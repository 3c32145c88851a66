"""The accelerate config files shipped in configs/accelerate/ load with accelerate's own reader."""

from __future__ import annotations

from pathlib import Path

import pytest

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "accelerate"


@pytest.mark.parametrize("name,kind,processes", [
    ("multi_gpu.yaml", "MULTI_GPU", 8), ("multi_node.yaml", "MULTI_GPU", 16), ("deepspeed_zero2.yaml", "DEEPSPEED", 8),
])
def test_shipped_accelerate_configs_load(name, kind, processes):
    from accelerate.commands.config.config_args import load_config_from_file

    cfg = load_config_from_file(str(CONFIGS / name))
    assert str(cfg.distributed_type).endswith(kind) and cfg.num_processes == processes and cfg.mixed_precision == "fp16"
    if kind == "DEEPSPEED":
        assert cfg.deepspeed_config["zero_stage"] == 2


def test_slurm_script_launches_the_multi_node_config():
    text = (CONFIGS / "slurm_dreambooth.sbatch").read_text()
    assert "configs/accelerate/multi_node.yaml" in text and "--machine_rank \"$SLURM_NODEID\"" in text
    assert "train_scripts/train_dreambooth.py" in text and "--resolution 512" in text


def test_slurm_script_flags_parse_as_a_dreambooth_config():
    import shlex

    from synthxray.training.common import parse_config
    from synthxray.training.dreambooth import DreamBoothConfig

    text = (CONFIGS / "slurm_dreambooth.sbatch").read_text()
    command = text[text.index("train_scripts/train_dreambooth.py") :].split("'")[0].replace("\\\n", " ")
    cfg = parse_config(DreamBoothConfig, shlex.split(command)[1:])
    assert cfg.resolution == 512 and cfg.one_model_per_class and cfg.with_prior_preservation and cfg.train_text_encoder
