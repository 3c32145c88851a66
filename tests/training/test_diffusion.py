import pytest
import torch

from synthxray.training.diffusion import sample_timesteps
from synthxray.training.ddpm import DDPMTrainingConfig


def _draw(**kw) -> torch.Tensor:
    return sample_timesteps(1000, 20000, generator=torch.Generator().manual_seed(0), **kw)


def test_uniform_timesteps_cover_the_range():
    t = _draw()
    assert t.dtype == torch.long and t.min() >= 0 and t.max() <= 999
    assert abs(t.float().mean().item() - 499.5) < 10


def test_logit_normal_timesteps_follow_the_requested_density():
    t = _draw(weighting_scheme="logit_normal", logit_mean=-1.4, logit_std=1.0)
    median = t.float().median().item()
    expected = 1000 * torch.sigmoid(torch.tensor(-1.4)).item()  # the median of sigmoid(N(m, s)) is sigmoid(m)
    assert abs(median - expected) < 10
    assert t.min() >= 0 and t.max() <= 999
    wide = _draw(weighting_scheme="logit_normal", logit_mean=-1.4, logit_std=2.0)
    assert wide.float().std() > t.float().std()


def test_mode_density_and_validation(tiny_npz):
    t = _draw(weighting_scheme="mode", mode_scale=1.29)
    assert t.min() >= 0 and t.max() <= 999
    with pytest.raises(ValueError, match="weighting_scheme"):
        _draw(weighting_scheme="lognormal")
    with pytest.raises(ValueError, match="weighting_scheme"):
        DDPMTrainingConfig(dataset=str(tiny_npz), output_dir="x", weighting_scheme="sigma_sqrt")
    with pytest.raises(ValueError, match="logit_std"):
        DDPMTrainingConfig(dataset=str(tiny_npz), output_dir="x", logit_std=0)
    with pytest.raises(ValueError, match="--sample_scheduler must be one of"):  # a typo must fail before training
        DDPMTrainingConfig(dataset=str(tiny_npz), output_dir="x", sample_scheduler="dpm_sde")


def test_ddpm_trains_with_logit_normal_timesteps(tiny_ddpm_config, tmp_path):
    from synthxray.generators import load_generator
    from synthxray.training.ddpm import train

    cfg = tiny_ddpm_config(output_dir=str(tmp_path / "ln"), max_train_steps=2, weighting_scheme="logit_normal", logit_mean=-1.5, logit_std=1.5)
    out = train(cfg)
    assert len(load_generator(out).generate(1, class_label=0, seed=0, num_inference_steps=2)) == 1
