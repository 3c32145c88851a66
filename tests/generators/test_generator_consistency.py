"""The consistency (few-step) generator: sampling settings, save/load round trip, generation paths."""

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler

from synthxray.generators import load_generator
from synthxray.generators.base import GeneratorInfo
from synthxray.generators.consistency import ConsistencyGenerator, make_consistency_scheduler
from synthxray.generators.ddpm import ClassConditionalDDPMPipeline, build_unet


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    """A tiny untrained consistency generator (28 px images from a 32 px UNet, like PneumoniaMNIST's)."""
    torch.manual_seed(0)
    unet = build_unet(2, 32, 1, (8, 16), 1, attention_levels=[False, False], norm_num_groups=8)
    teacher_sched = DDPMScheduler(num_train_timesteps=100, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction")
    pipe = ClassConditionalDDPMPipeline(unet=unet, scheduler=make_consistency_scheduler(teacher_sched.config, 10), image_size=28)
    info = GeneratorInfo(backend="consistency", class_names=["0", "1"], channels=1, resolution=28,
                         base_model="teacher/ddpm", defaults={"scheduler": "lcm", "num_inference_steps": 4},
                         extra={"distillation": {"teacher": "teacher/ddpm", "num_solver_steps": 10}})
    gen = ConsistencyGenerator(pipe, info)
    folder = tmp_path_factory.mktemp("consistency")
    gen.save_pretrained(folder)
    return folder


def test_save_load_same_images_for_a_seed(student):
    gen = load_generator(student, device="cpu")
    assert isinstance(gen, ConsistencyGenerator) and gen.max_steps == 10
    for steps in (1, 2, 4):
        a = gen.generate(3, class_label="1", seed=7, num_inference_steps=steps, batch_size=2)
        b = load_generator(student, device="cpu").generate(3, class_label="1", seed=7, num_inference_steps=steps)
        assert [im.size for im in a] == [(28, 28)] * 3 and a[0].mode == "L"
        assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b))
    one = gen.generate(1, class_label=0, seed=8, num_inference_steps=1)[0]
    alone = gen.generate(1, class_label=0, seed=[8], num_inference_steps=1)[0]
    assert np.array_equal(np.asarray(one), np.asarray(alone))
    # more steps re-noise and denoise again: a different image from the same seed
    four = gen.generate(1, class_label=0, seed=8, num_inference_steps=4)[0]
    assert not np.array_equal(np.asarray(one), np.asarray(four))


def test_settings(student):
    gen = load_generator(student, device="cpu")
    assert gen.resolve_settings(None, None, None) == {"num_inference_steps": 4, "guidance_scale": 1.0, "scheduler": "lcm"}
    assert gen.resolve_settings(1, 1.0, "lcm")["num_inference_steps"] == 1
    with pytest.raises(ValueError, match="consistency sampler only"):
        gen.resolve_settings(2, None, "dpm")
    with pytest.raises(ValueError, match="guidance"):
        gen.resolve_settings(2, 2.0, None)
    with pytest.raises(ValueError, match=r"must be in 1\.\.10"):
        gen.resolve_settings(11, None, None)


def test_generate_dataset_records_the_sampler(student, tmp_path):
    from synthxray.synthesis import generate_dataset

    ds = generate_dataset(load_generator(student, device="cpu"), per_class=2, seed=0, num_inference_steps=2)
    assert len(ds) == 4 and set(ds["scheduler"]) == {"lcm"} and set(ds["num_inference_steps"]) == {2}
    assert set(ds["generator"]) == {"consistency"}


def test_evaluate_samples_the_student(student, tiny_npz):
    from synthxray.evaluation import evaluate

    res = evaluate(tiny_npz, load_generator(student, device="cpu"), metrics=("fid",), extractor="random", num_samples=6,
                   cache=False, generate_kwargs={"num_inference_steps": 1, "batch_size": 6}, progress=False)
    assert res.synthetic["num_images"] == [6] and np.isfinite(res.overall["fid"]["values"][0])
