import numpy as np
import pytest
from tinydata import Interrupt, fail_at_batch

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


def test_resume_after_interruption(tiny_ddpm_dir, tmp_path):
    gen = load_generator(tiny_ddpm_dir)
    calls = fail_at_batch(gen, 3)
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
    (tmp_path / "syn.partial" / "images" / "0").mkdir(parents=True)
    (tmp_path / "syn.partial" / "job.json").write_text("{}")
    (tmp_path / "syn.partial" / "images" / "0" / "0_000000.png").write_bytes(b"kept")  # finished work is never thrown away
    with pytest.raises(FileExistsError, match="other settings"):
        generate_dataset(gen, per_class=1, output_dir=tmp_path / "syn", num_inference_steps=2, progress=False)


def test_existing_output_is_kept_unless_overwrite(tiny_ddpm_dir, tmp_path):
    gen = load_generator(tiny_ddpm_dir)
    generate_dataset(gen, per_class=1, output_dir=tmp_path / "syn", num_inference_steps=2, progress=False)
    with pytest.raises(FileExistsError, match="already exists .*--overwrite"):
        generate_dataset(gen, per_class=2, output_dir=tmp_path / "syn", num_inference_steps=2, progress=False)
    assert len(load_dataset(tmp_path / "syn")) == 2
    generate_dataset(gen, per_class=2, output_dir=tmp_path / "syn", num_inference_steps=2, overwrite=True, progress=False)
    assert len(load_dataset(tmp_path / "syn")) == 4  # a synthxray dataset is replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["syn"]  # no .old-* or .partial left behind


def test_overwrite_never_deletes_foreign_files(tiny_ddpm_dir, tmp_path):
    gen = load_generator(tiny_ddpm_dir)
    out = tmp_path / "syn"
    (out / "sub").mkdir(parents=True)
    (out / "precious.txt").write_text("precious")
    (out / "sub" / "thesis.tex").write_text("thesis")
    for overwrite in (False, True):
        with pytest.raises(FileExistsError, match="did not write .*--overwrite only replaces a synthxray dataset"):
            generate_dataset(gen, per_class=1, output_dir=out, num_inference_steps=2, overwrite=overwrite, progress=False)
    with pytest.raises(FileExistsError, match="a synthxray generator"):  # nor a generator folder
        generate_dataset(gen, per_class=1, output_dir=tiny_ddpm_dir, num_inference_steps=2, overwrite=True, progress=False)
    assert (out / "precious.txt").read_text() == "precious" and (out / "sub" / "thesis.tex").read_text() == "thesis"
    assert (tiny_ddpm_dir / "synthxray.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["syn"]  # and nothing was written beside it
    (tmp_path / "empty").mkdir()  # an empty folder holds nothing to lose
    assert len(generate_dataset(gen, per_class=1, output_dir=tmp_path / "empty", num_inference_steps=2, progress=False)) == 2


@pytest.mark.parametrize("kwargs, match", [
    ({"per_class": 0}, "per_class .*>= 1"),
    ({"per_class": 1, "batch_size": 0}, "batch_size .*>= 1"),
    ({"per_class": 1, "num_inference_steps": 0}, "num_inference_steps .*>= 1"),
    ({"images_per_class": {"0": 0, "1": 0}}, "asks for no images"),
    ({"images_per_class": {"0": 1, 0: 2}}, "gives class '0' twice"),
    ({"per_class": 1, "check_memorization": "fx/doesnotexist"}, "no such folder, and no Hub repo"),
])
def test_bad_arguments_are_refused_before_any_file(tiny_ddpm_dir, tmp_path, kwargs, match):
    gen = load_generator(tiny_ddpm_dir)
    kwargs.setdefault("num_inference_steps", 2)
    with pytest.raises(ValueError, match=match):
        generate_dataset(gen, output_dir=tmp_path / "syn", progress=False, **kwargs)
    assert list(tmp_path.iterdir()) == []  # no .partial that would block the corrected rerun
    assert len(generate_dataset(gen, per_class=1, output_dir=tmp_path / "syn", num_inference_steps=2, progress=False)) == 2


def test_output_dir_links_and_files(tiny_ddpm_dir, tmp_path):
    gen = load_generator(tiny_ddpm_dir)
    (tmp_path / "dangling").symlink_to(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="symlink to .*missing, which does not exist"):
        generate_dataset(gen, per_class=1, output_dir=tmp_path / "dangling", num_inference_steps=2, progress=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="is a file"):
        generate_dataset(gen, per_class=1, output_dir=tmp_path / "file", num_inference_steps=2, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling", "file"]
    (tmp_path / "target").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "target")  # a link to a folder: written into the target
    generate_dataset(gen, per_class=1, output_dir=tmp_path / "link", num_inference_steps=2, progress=False)
    assert (tmp_path / "link").is_symlink() and len(load_dataset(tmp_path / "target")) == 2


def test_failed_first_batch_does_not_block_a_rerun(tiny_ddpm_dir, tmp_path):
    gen = load_generator(tiny_ddpm_dir)
    calls = fail_at_batch(gen, 1)  # e.g. the device is lost
    with pytest.raises(Interrupt):
        generate_dataset(gen, per_class=1, output_dir=tmp_path / "syn", num_inference_steps=2, progress=False)
    calls["n"] = 10
    ds = generate_dataset(gen, per_class=2, output_dir=tmp_path / "syn", num_inference_steps=2, progress=False)  # other args: fine
    assert len(ds) == 4


def test_memorization_gate_records_figures(tiny_ddpm_dir, tiny_npz, tmp_path):
    import json

    gen = load_generator(tiny_ddpm_dir)
    generate_dataset(gen, per_class=3, output_dir=tmp_path / "syn", num_inference_steps=2, progress=False, check_memorization=tiny_npz)
    manifest = json.loads((tmp_path / "syn" / "synthxray_dataset.json").read_text())
    mem = manifest["memorization"]
    assert mem["train"] == tiny_npz.name and mem["num_train"] == 24 and mem["num_synthetic"] == 6
    pixel = mem["spaces"]["pixel"]
    assert 0 <= pixel["fraction_below"] <= 1 and pixel["threshold"] > 0 and "feature" not in mem["spaces"]
    assert len(pixel["closest_pairs"]) == 5
    card = (tmp_path / "syn" / "README.md").read_text()
    assert "Privacy check" in card and f"{100 * pixel['fraction_below']:.1f}%" in card
    assert not list((tmp_path / "syn").rglob("memorization*"))  # no grid of training images beside the synthetic set
    # a synthetic set that IS the training set is flagged, and the card says so
    from synthxray.synthesis import memorization_summary

    copied = memorization_summary(load_dataset(tiny_npz), load_dataset(tiny_npz), progress=False)
    assert copied["spaces"]["pixel"]["fraction_below"] == 1.0


def test_bad_counts(tiny_ddpm_dir):
    gen = load_generator(tiny_ddpm_dir)
    with pytest.raises(ValueError, match="exactly one"):
        generate_dataset(gen)
    with pytest.raises(ValueError, match="unknown class 'dog'"):
        generate_dataset(gen, images_per_class={"dog": 1})


# ---- the `synthxray generate` command: one-line errors, nothing written, Ctrl-C ------------------
@pytest.mark.parametrize("flags, message", [
    (["--per_class", "0"], "--per_class must be >= 1, got 0"),
    (["--per_class", "1", "--batch_size", "0"], "--batch_size must be >= 1, got 0"),
    (["--per_class", "1", "--num_inference_steps", "0"], "--num_inference_steps must be >= 1, got 0"),
    (["--images_per_class", "0=x"], "--images_per_class: the count for '0' must be a whole number"),
    (["--images_per_class", "0=1,0=2"], "--images_per_class names class '0' twice"),
    (["--per_class", "1", "--check_memorization", "fx/doesnotexist"], "fx/doesnotexist: no such folder, and no Hub repo of that name"),
])
def test_generate_command_probes(tiny_ddpm_dir, tmp_path, capsys, flags, message):
    from synthxray.cli import main

    out = tmp_path / "syn"
    assert main(["generate", "--model", str(tiny_ddpm_dir), "--output_dir", str(out), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []
    rc = main(["generate", "--model", str(tiny_ddpm_dir), "--output_dir", str(out), "--per_class", "1", "--num_inference_steps", "2"])
    assert rc == 0  # the corrected rerun is not blocked


def test_generate_command_overwrite_keeps_foreign_folder(tiny_ddpm_dir, tmp_path, capsys):
    from synthxray.cli import main

    out = tmp_path / "thesis"
    (out / "sub").mkdir(parents=True)
    (out / "precious.txt").write_text("precious")
    (out / "sub" / "thesis.tex").write_text("tex")
    rc = main(["generate", "--model", str(tiny_ddpm_dir), "--output_dir", str(out), "--per_class", "1", "--overwrite"])
    err = capsys.readouterr().err
    assert rc == 2 and "--overwrite only replaces a synthxray dataset" in err and str(out) in err
    assert (out / "precious.txt").is_file() and (out / "sub" / "thesis.tex").is_file()
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    rc = main(["generate", "--model", str(tiny_ddpm_dir), "--output_dir", str(tmp_path / "dangling"), "--per_class", "1"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "which does not exist" in err and len(err.splitlines()) == 1


def test_generate_command_ctrl_c_says_how_to_resume(tiny_ddpm_dir, tmp_path, capsys, monkeypatch):
    from synthxray.cli import main
    from synthxray.generators.ddpm import DDPMGenerator

    original = DDPMGenerator._generate_batch
    calls = {"n": 0}

    def interrupted(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DDPMGenerator, "_generate_batch", interrupted)
    argv = ["generate", "--model", str(tiny_ddpm_dir), "--output_dir", str(tmp_path / "syn"), "--per_class", "2",
            "--batch_size", "1", "--num_inference_steps", "2"]
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "interrupted: rerun the same command to resume" in err and "Traceback" not in err
    assert len(list((tmp_path / "syn.partial" / "images").rglob("*.png"))) == 1
    assert main(argv) == 0 and len(load_dataset(tmp_path / "syn")) == 4
    assert calls["n"] == 5  # 1 image kept, 3 made on the rerun (after the interrupted call)


def test_resume_reads_every_process_log(tiny_ddpm_dir, tmp_path):
    """A run on N processes leaves one records log per process; any later run (1 or N processes) keeps all their images."""
    gen = load_generator(tiny_ddpm_dir)
    calls = fail_at_batch(gen, 2)
    with pytest.raises(Interrupt):
        generate_dataset(gen, per_class=2, output_dir=tmp_path / "syn", batch_size=2, num_inference_steps=2, progress=False)
    partial = tmp_path / "syn.partial"
    (partial / "records.jsonl").rename(partial / "records.rank1.jsonl")
    (partial / "records.rank1.jsonl").open("a").write('{"class_name": "1", "ind')  # a line cut by the kill
    calls["n"] = 10
    ds = generate_dataset(gen, per_class=2, output_dir=tmp_path / "syn", batch_size=2, num_inference_steps=2, progress=False)
    assert calls["n"] == 11 and ds["label"] == [0, 0, 1, 1]  # only class 1's batch was made
    assert ds["seed"] == [sample_seed(0, c, i) for c in (0, 1) for i in (0, 1)]


def test_generate_reports_the_classes_made_and_warns_of_a_missing_one(tiny_ddpm_dir, tmp_path, capsys, caplog):
    """Issue 31 (8): the closing line counts what was made; a pool without a class is said, not silent."""
    from synthxray.cli import main

    with caplog.at_level("WARNING", logger="synthxray.synthesis"):
        rc = main(["generate", "--model", str(tiny_ddpm_dir), "--images_per_class", "1=2", "--output_dir",
                   str(tmp_path / "syn"), "--num_inference_steps", "2"])
    assert rc == 0
    assert "wrote 2 images (1 2) to" in capsys.readouterr().out
    assert "no images of ['0']" in caplog.text
