"""The accelerate config files shipped in configs/accelerate/ load with accelerate's own reader."""

from __future__ import annotations

from pathlib import Path

import pytest

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "accelerate"


def test_every_shipped_accelerate_config_loads():
    from accelerate.commands.config.config_args import load_config_from_file

    names = sorted(p.name for p in CONFIGS.glob("*.yaml"))
    assert names == ["deepspeed_zero2.yaml", "fsdp.yaml", "multi_gpu.yaml", "multi_node.yaml"]
    for name in names:
        cfg = load_config_from_file(str(CONFIGS / name))
        assert cfg.num_processes >= 8 and not cfg.use_cpu, name


def test_fsdp_config_reaches_accelerate_fsdp_plugin_through_its_launcher(monkeypatch):
    """What `accelerate launch --config_file configs/accelerate/fsdp.yaml` hands the processes builds the FSDP2 plugin."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import FullyShardedDataParallelPlugin
    from accelerate.utils.launch import prepare_multi_gpu_env
    from diffusers import UNet2DConditionModel

    args = launch_command_parser().parse_args(["--config_file", str(CONFIGS / "fsdp.yaml"), "train_scripts/train_dreambooth.py"])
    args, _, _ = _validate_launch_command(args)
    env = prepare_multi_gpu_env(args)
    assert env["ACCELERATE_USE_FSDP"] == "true" and env["ACCELERATE_MIXED_PRECISION"] == "bf16"
    for key, value in env.items():
        if key.startswith("FSDP_"):
            monkeypatch.setenv(key, value)
    plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2 and plugin.reshard_after_forward is True
    assert str(plugin.state_dict_type).endswith("SHARDED_STATE_DICT")
    # the layers it wraps are Stable Diffusion UNet classes (accelerate raises on a name the model lacks)
    unet = UNet2DConditionModel(sample_size=8, block_out_channels=(8, 16), layers_per_block=1, cross_attention_dim=8,
                                norm_num_groups=4, attention_head_dim=2,
                                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
    present = {type(m).__name__ for m in unet.modules()}
    assert set(plugin.transformer_cls_names_to_wrap) <= present


def test_fsdp_runs_refuse_what_sharded_weights_cannot_do():
    from types import SimpleNamespace

    from accelerate.utils import DistributedType

    from synthxray.training.common import parse_config
    from synthxray.training.dreambooth import DreamBoothConfig
    from synthxray.training.stable_diffusion import check_fsdp, gathered_model

    flags = ["--pretrained_model_name_or_path", "base", "--dataset_name", "data", "--output_dir", "out",
             "--class_prompt_template", "a chest x-ray showing {label}"]
    fsdp, ddp = SimpleNamespace(distributed_type=DistributedType.FSDP), SimpleNamespace(distributed_type=DistributedType.MULTI_GPU)
    assert check_fsdp(parse_config(DreamBoothConfig, flags), fsdp) is True
    assert check_fsdp(parse_config(DreamBoothConfig, [*flags, "--train_text_encoder"]), ddp) is False
    with pytest.raises(ValueError, match="drop --train_text_encoder"):
        check_fsdp(parse_config(DreamBoothConfig, [*flags, "--train_text_encoder"]), fsdp)
    with pytest.raises(ValueError, match="drop --validation_prompt"):
        check_fsdp(parse_config(DreamBoothConfig, [*flags, "--validation_prompt", "a chest x-ray"]), fsdp)
    module = object()
    assert gathered_model(SimpleNamespace(unwrap_model=lambda m: m), module, fsdp=False) is module


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
