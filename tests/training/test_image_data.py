"""The image-data flags, checks, data loading and run start shared by the DDPM, GAN and VAE trainers."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from synthxray.data import DataError
from synthxray.training.ddpm import DDPMTrainingConfig
from synthxray.training.gan import GANTrainingConfig
from synthxray.training.image_data import ImageDataConfig, image_dataloader, load_image_dataset
from synthxray.training.vae import VAETrainingConfig
from tiny_oneshot import gan_config, train_gan, train_vae, vae_config

SHARED = [f.name for f in dataclasses.fields(ImageDataConfig)]


@pytest.mark.parametrize("cls", [DDPMTrainingConfig, GANTrainingConfig, VAETrainingConfig])
def test_every_image_trainer_has_the_shared_flags_once(cls):
    names = [f.name for f in dataclasses.fields(cls)]
    assert len(names) == len(set(names))
    assert set(SHARED) <= set(names) and issubclass(cls, ImageDataConfig)


@pytest.mark.parametrize("make", [gan_config, vae_config])
@pytest.mark.parametrize("overrides, message", [
    (dict(num_epochs=0), "--num_epochs must be >= 1"),
    (dict(max_train_images=0), "--max_train_images must be >= 1"),
    (dict(channels=2), "channels must be 1 or 3"),
    (dict(save_images_steps=-1), "--save_images_steps must be >= 0"),
    (dict(num_validation_images=0), "--num_validation_images must be >= 1"),
    (dict(dataset=""), "dataset is required"),
])
def test_one_shot_configs_share_the_ddpm_data_checks(tiny_npz, tmp_path, make, overrides, message):
    flags = {"dataset": str(tiny_npz), **overrides}
    with pytest.raises(ValueError, match=message):
        make(flags.pop("dataset"), tmp_path / "out", **flags)
    with pytest.raises(ValueError, match=message):
        DDPMTrainingConfig(output_dir=str(tmp_path / "d"), **{"dataset": str(tiny_npz), **overrides})
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("trainer", [train_gan, train_vae])
def test_a_bad_dataset_leaves_no_output_folder(tmp_path, trainer):
    (tmp_path / "data" / "NORMAL").mkdir(parents=True)  # a class folder without images
    with pytest.raises(DataError, match="holds no images"):
        trainer(tmp_path / "data", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_dataloader_pads_with_edge_pixels_to_the_size_asked(tiny_npz, tmp_path):
    cfg = gan_config(tiny_npz, tmp_path / "out", max_train_images=5, train_batch_size=5)
    ds, names, channels = load_image_dataset(cfg)
    assert len(ds) == 5 and channels == 1 and names
    plain = next(iter(image_dataloader(cfg, ds, channels)))
    padded = next(iter(image_dataloader(cfg, ds, channels, pad_to=20)))
    assert plain["pixel_values"].shape == (5, 1, 16, 16) and padded["pixel_values"].shape == (5, 1, 20, 20)
    assert plain["label"].dtype == torch.long
    # the same shuffled order (seeded) is not promised; the padding repeats the border of each image
    edge = padded["pixel_values"]
    assert torch.equal(edge[:, :, :2, 2:-2], edge[:, :, 2:3, 2:-2].expand(-1, -1, 2, -1))
