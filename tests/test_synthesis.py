import numpy as np
import pytest

from synthxray import generate_dataset, load_dataset, load_generator
from synthxray.synthesis import PROVENANCE_COLUMNS, sample_seed


def test_counts_labels_and_provenance(tiny_ddpm_dir, tmp_path):
    gen = load_generator(tiny_ddpm_dir)
    ds = generate_dataset(gen, images_per_class={"0": 2, "1": 3}, seed=10, output_dir=tmp_path / "syn",
                          batch_size=2, num_inference_steps=3, scheduler="ddim", guidance_scale=2.0, progress=False)
    assert ds["label"] == [0, 0, 1, 1, 1]
    assert ds.features["label"].names == ["0", "1"]
    assert set(PROVENANCE_COLUMNS) <= set(ds.column_names)
    row = ds[3]
    assert row["class_name"] == "1" and row["generator"] == "ddpm" and row["generator_path"] == str(tiny_ddpm_dir)
    assert row["scheduler"] == "ddim" and row["num_inference_steps"] == 3 and row["guidance_scale"] == 2.0
    assert row["seed"] == sample_seed(10, 1, 1)
    # the recorded seed remakes that one image alone
    again = gen.generate(1, class_label=1, seed=[row["seed"]], num_inference_steps=3, scheduler="ddim", guidance_scale=2.0)[0]
    assert np.abs(np.asarray(again, float) - np.asarray(row["image"], float)).max() <= 1
    assert len(load_dataset(tmp_path / "syn")) == 5  # the data layer reads it back
    assert not (tmp_path / "syn.partial").exists()
    card = (tmp_path / "syn" / "README.md").read_text()
    assert "generator: ddpm" in card and "clinical" in card  # written locally, states intended use


def test_in_memory_and_image_folder(tiny_ddpm_dir, tmp_path):
    gen = load_generator(tiny_ddpm_dir)
    ds = generate_dataset(gen, per_class=1, num_inference_steps=2, progress=False)
    assert len(ds) == 2 and ds[0]["image"].size == (16, 16)
    generate_dataset(gen, per_class=2, num_inference_steps=2, output_dir=tmp_path / "out", image_folder=True, progress=False)
    pngs = sorted(p.relative_to(tmp_path / "out" / "image_folder").as_posix() for p in (tmp_path / "out" / "image_folder").rglob("*.png"))
    assert pngs == ["0/0_000000.png", "0/0_000001.png", "1/1_000000.png", "1/1_000001.png"]
    assert len(load_dataset(tmp_path / "out" / "image_folder")) == 4


class Interrupt(RuntimeError):
    pass


def test_resume_after_interruption(tiny_ddpm_dir, tmp_path):
    gen = load_generator(tiny_ddpm_dir)
    calls = {"n": 0}
    original = gen._generate_batch

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise Interrupt("killed")
        return original(*args, **kwargs)

    gen._generate_batch = flaky
    with pytest.raises(Interrupt):
        generate_dataset(gen, per_class=4, seed=0, output_dir=tmp_path / "syn", batch_size=2, num_inference_steps=2, progress=False)
    assert not (tmp_path / "syn").exists()  # never a half-written dataset under the final name
    assert len(list((tmp_path / "syn.partial" / "images").rglob("*.png"))) == 4
    calls["n"] = 10  # no more failures; count the batches the resumed run needs
    ds = generate_dataset(gen, per_class=4, seed=0, output_dir=tmp_path / "syn", batch_size=2, num_inference_steps=2, progress=False)
    assert calls["n"] == 12  # only the 4 missing images were generated
    fresh = generate_dataset(load_generator(tiny_ddpm_dir), per_class=4, seed=0, batch_size=2, num_inference_steps=2, progress=False)
    assert ds["seed"] == fresh["seed"]
    for a, b in zip(ds["image"], fresh["image"]):
        assert np.abs(np.asarray(a, float) - np.asarray(b, float)).max() <= 1


def test_resume_with_other_settings_is_refused(tiny_ddpm_dir, tmp_path):
    gen = load_generator(tiny_ddpm_dir)
    (tmp_path / "syn.partial").mkdir()
    (tmp_path / "syn.partial" / "job.json").write_text("{}")
    with pytest.raises(FileExistsError, match="other settings"):
        generate_dataset(gen, per_class=1, output_dir=tmp_path / "syn", num_inference_steps=2, progress=False)


def test_existing_output_is_kept_unless_overwrite(tiny_ddpm_dir, tmp_path):
    gen = load_generator(tiny_ddpm_dir)
    (tmp_path / "syn").mkdir()
    (tmp_path / "syn" / "mine.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="already exists"):
        generate_dataset(gen, per_class=1, output_dir=tmp_path / "syn", num_inference_steps=2, progress=False)
    assert (tmp_path / "syn" / "mine.txt").read_text() == "precious"
    generate_dataset(gen, per_class=1, output_dir=tmp_path / "syn", num_inference_steps=2, overwrite=True, progress=False)
    assert not (tmp_path / "syn" / "mine.txt").exists() and len(load_dataset(tmp_path / "syn")) == 2


def test_bad_counts(tiny_ddpm_dir):
    gen = load_generator(tiny_ddpm_dir)
    with pytest.raises(ValueError, match="exactly one"):
        generate_dataset(gen)
    with pytest.raises(ValueError, match="unknown class 'dog'"):
        generate_dataset(gen, images_per_class={"dog": 1})
