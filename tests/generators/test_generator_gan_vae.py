"""GAN and VAE backends: registered, saved -> loaded -> same images per seed, one pass per image, clear errors."""

import json

import numpy as np
import pytest
import torch

import synthxray
from synthxray.generators import GENERATORS, load_generator
from synthxray.generators.gan import ACGANGenerator, CGANGenerator, DCGANGenerator, WGANGPGenerator
from synthxray.generators.vae import VAEGenerator
from synthxray.networks import ConvDiscriminator, ConvGenerator, ConvVAE, TorchvisionDiscriminator, resolution_plan
from tiny_oneshot import train_gan, train_vae

ONE_PASS = {"dcgan": DCGANGenerator, "wgan-gp": WGANGPGenerator, "cgan": CGANGenerator, "acgan": ACGANGenerator, "vae": VAEGenerator}


def same(a, b) -> bool:
    return len(a) == len(b) and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b))


@pytest.fixture(scope="session")
def one_pass_dirs(tiny_npz, tmp_path_factory):
    """One tiny trained folder per one-pass backend."""
    root = tmp_path_factory.mktemp("one_pass")
    dirs = {a: train_gan(tiny_npz, root / a, architecture=a) for a in ("dcgan", "wgan-gp", "cgan", "acgan")}
    dirs["vae"] = train_vae(tiny_npz, root / "vae")
    return dirs


def test_registry_lists_the_baselines():
    names = synthxray.list_generators()
    for backend, cls in ONE_PASS.items():
        assert backend in names and GENERATORS.get(backend) is cls


@pytest.mark.parametrize("backend", sorted(ONE_PASS))
def test_save_load_same_images_per_image_seeds(backend, one_pass_dirs, tmp_path):
    gen = load_generator(one_pass_dirs[backend], device="cpu")
    assert isinstance(gen, ONE_PASS[backend]) and gen.class_names == ["0", "1"] and gen.backend == backend
    first = gen.generate(3, class_label=1, seed=7)
    assert first[0].mode == "L" and first[0].size == (16, 16)
    assert same(first, gen.generate(3, class_label="1", seed=7, batch_size=1)), "batch size must not change the images"
    assert same(first[1:], gen.generate(2, class_label=1, seed=8)), "image i must use seed + i"
    assert not same(first[:1], gen.generate(1, class_label=0, seed=7)), "the class must matter"
    gen.save_pretrained(tmp_path / "copy")
    assert same(first, load_generator(tmp_path / "copy", device="cpu").generate(3, class_label=1, seed=7))


def test_folder_is_diffusers_networks_plus_synthxray_json(one_pass_dirs):
    gan, vae = one_pass_dirs["acgan"], one_pass_dirs["vae"]
    for sub in ("generator", "discriminator"):
        assert (gan / sub / "config.json").is_file() and (gan / sub / "diffusion_pytorch_model.safetensors").is_file()
    g = ConvGenerator.from_pretrained(gan / "generator")
    d = ConvDiscriminator.from_pretrained(gan / "discriminator")
    assert g.config.num_classes == 2 and d.config.aux_classifier and d.config.conditioning == "none"
    assert ConvVAE.from_pretrained(vae / "vae").config.num_classes == 2
    info = json.loads((gan / "synthxray.json").read_text())
    assert info["backend"] == "acgan" and info["extra"]["network_evaluations_per_image"] == 1
    assert info["extra"]["losses"]["objective"] == "bce" and info["extra"]["train_steps"] == 4


@pytest.mark.parametrize("bad", [dict(num_inference_steps=20), dict(scheduler="ddim"), dict(guidance_scale=2.0)])
def test_sampler_flags_are_an_error(one_pass_dirs, bad):
    gen = load_generator(one_pass_dirs["dcgan"], device="cpu")
    with pytest.raises(ValueError, match="one network evaluation"):
        gen.generate(1, class_label=0, seed=0, **bad)
    assert len(gen.generate(1, class_label=0, seed=0, num_inference_steps=1)) == 1  # what datasets record


def test_unknown_class_is_an_error_before_writing(one_pass_dirs, tmp_path):
    gen = load_generator(one_pass_dirs["cgan"], device="cpu")
    with pytest.raises(ValueError, match="unknown class 'NORMAL'"):
        gen.generate(1, class_label="NORMAL")
    with pytest.raises(ValueError, match="unknown class"):
        synthxray.generate_dataset(gen, images_per_class={"NORMAL": 2}, output_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_one_network_evaluation_per_image(one_pass_dirs, monkeypatch):
    gen = load_generator(one_pass_dirs["wgan-gp"], device="cpu")
    calls = []
    original = ConvGenerator.forward
    monkeypatch.setattr(ConvGenerator, "forward", lambda self, *a, **k: calls.append(a[0].shape[0]) or original(self, *a, **k))
    gen.generate(5, class_label=0, seed=0, batch_size=5)
    assert calls == [5]


def test_generate_dataset_and_cli_work_unchanged(one_pass_dirs, tmp_path):
    from synthxray.cli import main

    gen = load_generator(one_pass_dirs["vae"], device="cpu")
    ds = synthxray.generate_dataset(gen, per_class=2, seed=3, output_dir=tmp_path / "ds", progress=False)
    assert ds.features["label"].names == ["0", "1"] and len(ds) == 4
    row = ds[0]
    assert row["generator"] == "vae" and row["num_inference_steps"] == 1 and row["scheduler"] is None
    again = synthxray.generate_dataset(gen, per_class=2, seed=3, progress=False)
    assert same(ds["image"], again["image"])
    assert main(["generate", "--model", str(one_pass_dirs["vae"]), "--per_class", "2", "--output_dir", str(tmp_path / "cli")]) == 0
    assert main(["generate", "--model", str(one_pass_dirs["vae"]), "--per_class", "2", "--scheduler", "ddim",
                 "--output_dir", str(tmp_path / "cli2")]) != 0
    assert not (tmp_path / "cli2").exists()


def test_unconditional_generator_has_one_class(tiny_npz, tmp_path):
    gen = load_generator(train_vae(tiny_npz, tmp_path / "u", conditional=False, max_train_steps=2), device="cpu")
    assert gen.class_names == ["all"] and not gen.conditional
    assert len(gen.generate(2, seed=0)) == 2
    assert gen.info.extra["trained_on_classes"] == ["0", "1"]


@pytest.mark.parametrize("resolution", [28, 32, 64, 256])
def test_networks_make_every_resolution_grayscale_and_rgb(resolution):
    z, y = torch.randn(2, 8), torch.tensor([0, 1])
    for channels in (1, 3):
        g = ConvGenerator(latent_dim=8, num_classes=2, image_channels=channels, resolution=resolution, base_channels=16, min_channels=4)
        x = g(z, y)
        assert x.shape == (2, channels, resolution, resolution) and x.abs().max() <= 1
        for cond in ("projection", "concat"):
            d = ConvDiscriminator(image_channels=channels, resolution=resolution, num_classes=2, conditioning=cond,
                                  aux_classifier=True, base_channels=16, min_channels=4, spectral_norm=True)
            adv, aux = d(x, y)
            assert adv.shape == (2,) and aux.shape == (2, 2)
        vae = ConvVAE(image_channels=channels, resolution=resolution, latent_dim=8, num_classes=2, base_channels=4, max_channels=16)
        assert vae(x, y)[0].shape == x.shape


def test_resolution_plan_and_bad_resolutions():
    assert resolution_plan(28) == (7, 2) and resolution_plan(32) == (4, 3) and resolution_plan(256) == (4, 6)
    for bad in (30, 100, 8, 1024):
        with pytest.raises(ValueError, match=f"resolution {bad} cannot be made.*28, 32"):
            ConvGenerator(resolution=bad)


def test_torchvision_discriminators_and_weights_announcement(caplog):
    x, y = torch.rand(2, 1, 28, 28) * 2 - 1, torch.tensor([0, 1])
    rn = TorchvisionDiscriminator(backbone="resnet18", resolution=28, num_classes=2, conditioning="projection", aux_classifier=True)
    adv, aux = rn(x, y)
    assert adv.shape == (2,) and aux.shape == (2, 2)
    pretrained, note = rn.load_pretrained_backbone("no-such-weights")  # unreachable weights: said loudly, random init kept
    assert pretrained is False and "RANDOM WEIGHTS" in note and "RANDOM WEIGHTS" in caplog.text
    vit = TorchvisionDiscriminator(backbone="vit_b_16", resolution=28, num_classes=2, conditioning="none", aux_classifier=True,
                                   backbone_kwargs={"image_size": 32})
    adv, aux = vit(x)
    assert adv.shape == (2,) and aux.shape == (2, 2) and vit.input_size == 32
    assert vit.load_pretrained_backbone("auto") == (False, "random initialisation (custom vit_b_16 size)")
    swin = TorchvisionDiscriminator(backbone="swin_t", resolution=28, input_size=32, num_classes=2, conditioning="projection")
    assert swin(x, y)[0].shape == (2,) and swin.load_pretrained_backbone("auto")[0] is False
    with pytest.raises(ValueError, match="concat"):
        TorchvisionDiscriminator(backbone="resnet18", num_classes=2, conditioning="concat")
    with pytest.raises(ValueError, match="unknown discriminator backbone"):
        TorchvisionDiscriminator(backbone="vgg")


def test_evaluate_and_experiments_take_a_gan_unchanged(one_pass_dirs, tiny_npz, tmp_path):
    from synthxray import load_dataset, run_experiment

    res = synthxray.evaluate(str(tiny_npz), load_generator(one_pass_dirs["dcgan"], device="cpu"), metrics=("fid",),
                             extractor="random", real_split="test", progress=False)
    assert np.isfinite(res.value("fid")) and np.isfinite(res.value("fid", "1"))
    train, test = load_dataset(str(tiny_npz), split="train"), load_dataset(str(tiny_npz), split="test")
    spec = dict(real_train=train, test=test, synthetic={"generator": str(one_pass_dirs["acgan"]), "batch_size": 16},
                output_dir=str(tmp_path / "exp"), backbones=[{"name": "cnn", "widths": [4, 8]}], recipes=["synth-50"],
                seeds=[0], epochs=1, image_size=16, batch_size=16, plots=False)
    out = run_experiment(spec)
    import datasets

    pool = datasets.load_from_disk(str(tmp_path / "exp" / "synthetic"))
    assert set(pool["generator"]) == {"acgan"} and set(pool["num_inference_steps"]) == {1}
    assert out.runs[0]["counts"]["synthetic"] > 0
