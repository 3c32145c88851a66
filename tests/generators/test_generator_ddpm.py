import json

import numpy as np
import pytest
import torch

import synthxray
from synthxray.generators import GENERATORS, GeneratorInfo, load_generator
from synthxray.generators.ddpm import ClassConditionalDDPMPipeline, DDPMGenerator, build_unet


def same(a, b) -> bool:
    return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b)) and len(a) == len(b)


def test_registry_lists_ddpm():
    assert "ddpm" in synthxray.list_generators()
    assert GENERATORS.get("ddpm") is DDPMGenerator


def test_save_load_roundtrip_same_images(tiny_ddpm_dir, tmp_path):
    gen = load_generator(tiny_ddpm_dir)
    assert isinstance(gen, DDPMGenerator) and gen.class_names == ["0", "1"]
    first = gen.generate(3, class_label=1, seed=7, num_inference_steps=3)
    gen.save_pretrained(tmp_path / "copy")
    again = load_generator(tmp_path / "copy").generate(3, class_label=1, seed=7, num_inference_steps=3)
    assert same(first, again)
    assert first[0].mode == "L" and first[0].size == (16, 16)  # grayscale data -> 1-channel model


def test_plain_diffusers_loads_the_parts(tiny_ddpm_dir):
    from diffusers import DDPMScheduler, UNet2DModel

    unet = UNet2DModel.from_pretrained(tiny_ddpm_dir, subfolder="unet")
    assert unet.config.num_class_embeds == 3  # 2 classes + the null class
    DDPMScheduler.from_pretrained(tiny_ddpm_dir, subfolder="scheduler")
    pipe = ClassConditionalDDPMPipeline.from_pretrained(tiny_ddpm_dir)
    assert len(pipe([0, 1], generator=torch.Generator().manual_seed(0), num_inference_steps=2).images) == 2


def test_seed_per_image_is_batch_independent(tiny_ddpm_dir):
    gen = load_generator(tiny_ddpm_dir)
    batch = gen.generate(4, class_label=0, seed=100, num_inference_steps=3, batch_size=4)
    alone = gen.generate(1, class_label=0, seed=[102], num_inference_steps=3)
    assert np.abs(np.asarray(batch[2], float) - np.asarray(alone[0], float)).max() <= 1  # same image, float noise only


@pytest.mark.parametrize("scheduler", ["ddpm", "ddim", "dpm", "dpm-sde", "unipc"])
def test_every_scheduler_runs(tiny_ddpm_dir, scheduler):
    gen = load_generator(tiny_ddpm_dir)
    images = gen.generate(2, class_label="1", seed=0, scheduler=scheduler, num_inference_steps=3)
    assert len(images) == 2
    arr = np.asarray(images[0])
    assert arr.std() > 0  # not a blank image


def test_stochastic_sampler_is_per_image_seeded(tiny_ddpm_dir):
    gen = load_generator(tiny_ddpm_dir)
    batch = gen.generate(3, class_label=0, seed=[5, 6, 7], scheduler="dpm-sde", num_inference_steps=3, batch_size=3)
    alone = gen.generate(1, class_label=0, seed=[6], scheduler="dpm-sde", num_inference_steps=3)
    assert np.abs(np.asarray(batch[1], float) - np.asarray(alone[0], float)).max() <= 1
    ode = gen.generate(1, class_label=0, seed=[6], scheduler="dpm", num_inference_steps=3)
    assert not same(alone, ode)  # the SDE adds noise at every step


def test_guidance_changes_output(tiny_ddpm_dir):
    gen = load_generator(tiny_ddpm_dir)
    plain = gen.generate(2, class_label=0, seed=3, num_inference_steps=3, guidance_scale=1.0)
    guided = gen.generate(2, class_label=0, seed=3, num_inference_steps=3, guidance_scale=4.0)
    assert not same(plain, guided)


def test_classes_differ_for_same_seed(tiny_ddpm_dir):
    gen = load_generator(tiny_ddpm_dir)
    assert not same(gen.generate(2, class_label=0, seed=1, num_inference_steps=3), gen.generate(2, class_label=1, seed=1, num_inference_steps=3))


def test_unknown_class_name_is_clear(tiny_ddpm_dir):
    gen = load_generator(tiny_ddpm_dir)
    with pytest.raises(ValueError, match=r"unknown class 'cat'; this generator knows \['0', '1'\]"):
        gen.generate(1, class_label="cat")
    with pytest.raises(ValueError, match="class_label is required"):
        gen.generate(1)
    with pytest.raises(ValueError, match="unknown scheduler"):
        gen.generate(1, class_label=0, scheduler="euler-magic")


def test_bad_resolution_is_clear():
    with pytest.raises(ValueError, match="resolution 30 is not divisible by 4"):
        build_unet(2, 30, 1, (8, 16, 16))


def test_not_a_generator_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="synthxray.json"):
        load_generator(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        load_generator(str(tmp_path / "missing" / "deeper" / "x"))


def test_info_rejects_unknown_keys(tmp_path):
    GeneratorInfo(backend="ddpm", class_names=["a"]).save(tmp_path)
    text = (tmp_path / "synthxray.json").read_text().replace('"backend"', '"surprise": 1, "backend"')
    (tmp_path / "synthxray.json").write_text(text)
    with pytest.raises(ValueError, match="unknown keys"):
        GeneratorInfo.load(tmp_path)


@pytest.mark.parametrize("name,steps", [("ddim", 50), ("unipc", 10)])
def test_timestep_spacing_is_the_training_configs_unless_asked(name, steps):
    from diffusers import DDPMScheduler

    from synthxray.generators.ddpm import make_scheduler

    config = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction").config
    assert config["timestep_spacing"] == "leading"
    default = make_scheduler(name, config)
    default.set_timesteps(steps)
    assert 1000 - 2 * (1000 // steps) <= int(default.timesteps[0]) < 999  # leading: e.g. 940-950 for 20 steps
    trailing = make_scheduler(name, config, timestep_spacing="trailing")
    trailing.set_timesteps(steps)
    assert int(trailing.timesteps[0]) == 999 and len(trailing.timesteps) == steps


def test_dpm_spaces_steps_in_log_snr_unless_a_spacing_is_asked():
    from diffusers import DDPMScheduler

    from synthxray.generators.ddpm import make_scheduler

    config = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction").config
    dpm = make_scheduler("dpm", config)
    dpm.set_timesteps(20)
    half_lambdas = -torch.log(dpm.sigmas[:-1])  # sigmas are noise/signal; the final zero-noise step dropped
    steps = half_lambdas[1:] - half_lambdas[:-1]
    assert torch.allclose(steps, steps.mean().expand_as(steps), rtol=1e-3)  # uniform in log-SNR
    assert int(dpm.timesteps[-1]) == 0 and int((dpm.timesteps < 100).sum()) >= 5  # most steps at low noise
    leading = make_scheduler("dpm", config, timestep_spacing="leading")
    leading.set_timesteps(20)
    assert int(leading.timesteps[0]) == 940 and int(leading.timesteps[-1]) == 47


def test_save_after_sampling_keeps_the_training_scheduler(tiny_ddpm_dir, tmp_path):
    gen = load_generator(tiny_ddpm_dir)
    gen.generate(1, class_label=0, seed=0, scheduler="dpm", num_inference_steps=2)
    gen.save_pretrained(tmp_path / "again")
    saved = json.loads((tmp_path / "again" / "scheduler" / "scheduler_config.json").read_text())
    assert saved["_class_name"] == "DDPMScheduler" and "algorithm_type" not in saved
    again = load_generator(tmp_path / "again")
    assert same(again.generate(1, class_label=0, seed=0, num_inference_steps=2), gen.generate(1, class_label=0, seed=0, num_inference_steps=2))


def test_attention_heads_and_mid_block_are_configurable():
    unet = build_unet(2, 32, 1, [16, 32, 64, 64], 1, attention_head_dim=None, mid_block_attention=False)
    assert unet.config.attention_head_dim is None and unet.config.add_attention is False
    out = unet(torch.randn(1, 1, 32, 32), torch.tensor([10]), class_labels=torch.tensor([0])).sample
    assert out.shape == (1, 1, 32, 32)


def test_sampling_keeps_no_autograd_graph(tiny_ddpm_dir):
    """Issue 35: without no_grad every denoising step's graph stayed alive (a 64-image batch held 4.7 GB)."""
    gen = load_generator(tiny_ddpm_dir)
    seen: list[bool] = []
    hook = gen.pipeline.unet.register_forward_hook(lambda module, args, out: seen.append(torch.is_grad_enabled()))
    try:
        gen.generate(2, class_label=0, seed=0, num_inference_steps=3)  # through the generator interface
        gen.pipeline([0], num_inference_steps=2)  # and the diffusers pipeline called on its own
    finally:
        hook.remove()
    assert seen and not any(seen)
