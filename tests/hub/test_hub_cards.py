"""Cards: rendered locally from a folder's own metadata with every field, and safely without any."""

from __future__ import annotations

import json

import pytest
import yaml

from synthxray import hub


def front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


@pytest.fixture
def full_generator(tmp_path):
    folder = tmp_path / "sd-lora-chest"
    (folder / "samples").mkdir(parents=True)
    for step in (100, 200):
        (folder / "samples" / f"step_{step:06d}.png").write_bytes(b"png")
    (folder / "synthxray.json").write_text(json.dumps({
        "backend": "sd-lora", "class_names": ["normal", "pneumonia"], "channels": 1, "resolution": 512,
        "prompts": {"normal": "a chest x-ray, normal", "pneumonia": "a chest x-ray showing pneumonia"},
        "base_model": "stabilityai/stable-diffusion-2-1-base", "base_model_revision": "5ede9e4",
        "data": {"source": "/data/chest_xray/train", "num_images": 5216, "license": "CC BY 4.0", "modality": "x-ray", "anatomy": "chest"},
        "defaults": {"scheduler": "dpm", "num_inference_steps": 50, "guidance_scale": 4.0},
        "extra": {"train_steps": 800, "train_seconds": 5400, "hardware": "1x NVIDIA H100", "license": "openrail++",
                  "train_config": {"learning_rate": 1e-4, "rank": 8, "hub_token": "secret", "output_dir": "/x"}},
        "synthxray_version": "0.1.0",
    }))
    (folder / "evaluation.json").write_text(json.dumps({
        "extractor": "dinov2", "num_samples": 1000,
        "metrics": {"fid": {"mean": 61.9, "std": 2.1}, "kid": {"mean": 0.031, "std": 0.004}},
        "per_class": {"normal": {"fid": 64.1}, "pneumonia": {"fid": 61.9}},
    }))
    return folder


def test_hub_generator_card_has_every_field(full_generator):
    path = hub.write_generator_card(full_generator, repo_id="alice/sd-lora-chest")
    text = path.read_text()
    meta = front_matter(text)
    assert meta["library_name"] == "synthxray" and meta["license"] == "openrail++"
    assert meta["base_model"] == "stabilityai/stable-diffusion-2-1-base" and meta["pipeline_tag"] == "text-to-image"
    for tag in ("modality:x-ray", "anatomy:chest", "class:normal", "class:pneumonia", "resolution:512", "metric:fid", "sd-lora"):
        assert tag in meta["tags"], tag
    assert meta["synthxray"]["extractor"] == "dinov2" and meta["synthxray"]["metrics"] == {"fid": 61.9, "kid": 0.031}
    results = meta["model-index"][0]["results"]
    assert {(m["type"], m["value"]) for r in results for m in r["metrics"]} == {("fid", 61.9), ("kid", 0.031)}
    for needle in (
        "Not for clinical use", "## Known limits", "`stabilityai/stable-diffusion-2-1-base` @ `5ede9e4`", "CC BY 4.0",
        "**Steps:** 800", "90.0 min", "1x NVIDIA H100", "| rank | 8 |", "| overall | fid | 61.9 | 2.1 | dinov2 |",
        "| normal | fid | 64.1 |", "![one row per class](samples/step_000200.png)", 'load_generator("alice/sd-lora-chest")',
        'normal: "a chest x-ray, normal"', "scheduler=dpm",
    ):
        assert needle in text, needle
    assert "secret" not in text and "/x" not in text.split("Hyperparameters")[1]
    # huggingface_hub reads the card back with the same metadata
    from huggingface_hub import ModelCard

    card = ModelCard(text)
    assert card.data.library_name == "synthxray" and card.data.eval_results[0].metric_type in ("fid", "kid")


def test_hub_dataset_card_has_provenance_and_recipe(tmp_path):
    folder = tmp_path / "synthetic"
    folder.mkdir()
    (folder / "synthxray_dataset.json").write_text(json.dumps({
        "counts": {"normal": 234, "pneumonia": 390}, "seed": 3, "scheduler": "dpm", "num_inference_steps": 20,
        "guidance_scale": 1.5, "generator": "ddpm", "generator_path": "alice/ddpm-chest", "generator_revision": "abc123",
        "class_names": ["normal", "pneumonia"], "num_images": 624, "seconds": 95.0,
        "columns": ["image", "label", "class_name", "generator", "generator_path", "generator_revision", "seed",
                    "scheduler", "num_inference_steps", "guidance_scale"],
        "generate_kwargs": {"negative_prompt": "blurry"},
    }))
    text = hub.render_dataset_card(folder, repo_id="alice/synthetic-chest")
    meta = front_matter(text)
    assert meta["task_categories"] == ["image-classification"] and meta["size_categories"] == ["n<1K"]
    assert meta["source_datasets"] == ["alice/ddpm-chest"]
    assert meta["synthxray"]["counts"] == {"normal": 234, "pneumonia": 390} and meta["synthxray"]["generator_revision"] == "abc123"
    assert "class:pneumonia" in meta["tags"] and "generator:ddpm" in meta["tags"]
    for needle in ("| normal | 234 |", "| **total** | **624** |", "`abc123`", "| guidance scale | 1.5 |",
                   "- `generator_revision`", "- `seed`", "--model alice/ddpm-chest", "--revision abc123",
                   "--images_per_class normal=234,pneumonia=390", "--seed 3", "--negative_prompt blurry",
                   'load_dataset("alice/synthetic-chest")', "Not for clinical use", "3 + c × 1000000 + i"):
        assert needle in text, needle


def test_hub_classifier_card_reads_whatever_is_there(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "weights.safetensors").write_bytes(b"\0")
    (folder / "run.json").write_text(json.dumps({"config": {"backbone": "densenet121", "image_size": 224, "recipe": "synth-25"},
                                                 "classes": {"0": "normal", "1": "pneumonia"},
                                                 "test_metrics": {"accuracy": 0.894, "f1": 0.92, "confusion": [[1, 2], [3, 4]]}}))
    text = hub.render_classifier_card(folder)
    meta = front_matter(text)
    assert meta["synthxray"]["backbone"] == "densenet121" and meta["synthxray"]["classes"] == ["normal", "pneumonia"]
    assert set(meta["metrics"]) == {"accuracy", "f1"} and "recipe:synth-25" in meta["tags"]
    assert "| accuracy | 0.894 |" in text and "`weights.safetensors`" in text


def test_generator_card_reads_what_synthxray_evaluate_writes(tmp_path):
    from tinydata import xray_like

    from synthxray.evaluation import evaluate

    folder = tmp_path / "ddpm-chest"
    folder.mkdir()
    (folder / "synthxray.json").write_text(json.dumps({"backend": "ddpm", "class_names": ["normal", "pneumonia"],
                                                       "channels": 1, "resolution": 32}))
    result = evaluate(xray_like(24, seed=0), xray_like(20, seed=1), metrics=("fid", "kid"), extractor="random",
                      seeds=2, output_dir=folder, cache=False)
    text = hub.render_generator_card(folder, repo_id="alice/ddpm-chest")
    meta = front_matter(text)
    block = meta["synthxray"]
    assert block["metrics"] == pytest.approx({"fid": result.value("fid"), "kid": result.value("kid")})
    assert block["protocol"] == result.protocol and block["extractor"] == result.extractor
    assert set(meta["metrics"]) == {"fid", "kid"}  # not the settings' sizes nor the timings
    metrics = {m["type"]: m for r in meta["model-index"][0]["results"] for m in r["metrics"]}
    assert set(metrics) == {"fid", "kid"}
    assert metrics["fid"]["args"] == {"extractor": result.extractor, "protocol": result.protocol, "n": "24 real / 20 synthetic"}
    assert f"FID protocol: {result.protocol}." in text
    for row in result.rows:  # one table row per class and metric, with its mean, std, protocol and n
        for metric in ("fid", "kid"):
            cells = (f"| {row['class']} | {metric} | {row[metric]['mean']:.4g} | {row[metric]['std']:.2g} | {result.extractor} "
                     f"| {result.protocol} | {row['n_real']} real / {row['n_synthetic']} synthetic |")
            assert cells in text, cells
    assert [r["class"] for r in result.rows] == ["overall", "normal", "pneumonia"]
    for leaked in ("compared_size", "feature_dim", "total_s", "| settings |", "| timings |"):
        assert leaked not in text, leaked


@pytest.mark.parametrize("kind", ["generator", "dataset", "classifier"])
def test_hub_cards_tolerate_missing_and_malformed_metadata(kind, tmp_path, caplog):
    write = {"generator": hub.write_generator_card, "dataset": hub.write_dataset_card, "classifier": hub.write_classifier_card}[kind]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "Not for clinical use" in write(empty).read_text()
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "synthxray.json").write_text('{"backend": 3, "class_names": "normal", "extra": [1], "data": null, "resolution": "big",'
                                       ' "prompts": ["x"], "defaults": 5, "channels": "one"}')
    (odd / "synthxray_dataset.json").write_text('{"counts": [1, 2], "class_names": null, "num_images": "many", "seed": {"a": 1},'
                                               ' "columns": 7, "generate_kwargs": "x"}')
    (odd / "evaluation.json").write_text('{"metrics": {"fid": "n/a", "kid": [1, 2]}, "per_class": 4}')
    (odd / "classifier.json").write_text('{"backbone": {"x": 1}, "class_names": 5, "metrics": "good", "image_size": null}')
    (odd / "results.csv").write_text("only a header\n")
    (odd / "broken.json").write_text("{not json")
    text = write(odd).read_text()
    assert text.startswith("---\n") and "## Known limits" in text
    front_matter(text)
    assert "without its metadata" not in caplog.text, "odd metadata must be handled, not caught by the fallback"


def test_hub_cards_keep_a_hand_written_readme(tmp_path):
    (tmp_path / "README.md").write_text("# my own card\n")
    assert hub.write_classifier_card(tmp_path) is None
    assert (tmp_path / "README.md").read_text() == "# my own card\n"
    assert hub.write_classifier_card(tmp_path, overwrite=True) is not None
    generated = (tmp_path / "README.md").read_text()
    assert hub.CARD_MARKER in generated
    # a card synthxray wrote is refreshed without asking
    (tmp_path / "classifier.json").write_text('{"backbone": "resnet18"}')
    assert "resnet18" in hub.write_classifier_card(tmp_path).read_text()


def test_hub_classifier_card_of_an_experiment_run(tmp_path):
    """``runs/<backbone>/<recipe>/seed_<s>/classifier/``: recipe, seed and test metrics come from ../result.json."""
    run = tmp_path / "seed_1"
    (run / "classifier").mkdir(parents=True)
    (run / "classifier" / "classifier.json").write_text(json.dumps({
        "format": "synthxray-classifier", "backbone": "cnn", "class_names": ["normal", "pneumonia"], "image_size": 28,
        "pretrained": False, "weights_note": "random init", "metrics": {}}))
    (run / "result.json").write_text(json.dumps({
        "metrics": {"accuracy": 0.9, "f1": 0.91, "auc": None, "confusion_matrix": [[1, 2], [3, 4]]},
        "run_config": {"backbone": "cnn", "recipe": "synth-50", "seed": 1}}))
    text = hub.render_classifier_card(run / "classifier")
    for needle in ("| recipe | synth-50 |", "| seed | 1 |", "| accuracy | 0.9 |", "False (random init)"):
        assert needle in text, needle
    assert front_matter(text)["synthxray"]["metrics"] == {"accuracy": 0.9, "f1": 0.91}


def test_templates_ship_in_the_package_and_the_env_override_wins(tmp_path, monkeypatch, ddpm_folder):
    monkeypatch.delenv("SYNTHXRAY_MODEL_CARDS", raising=False)
    packaged = hub.template_dir()
    assert packaged.parent.name == "hub" and (packaged / "dataset.md").is_file()
    own = tmp_path / "cards"
    own.mkdir()
    for name in ("generator.md", "dataset.md", "classifier.md"):
        (own / name).write_text("{{ card_data }}\n\n# ours: {{ name }}\n\n{{ marker }} -->\n")
    monkeypatch.setenv("SYNTHXRAY_MODEL_CARDS", str(own))
    assert "# ours: alice/x" in hub.render_generator_card(ddpm_folder, repo_id="alice/x")
    (own / "classifier.md").unlink()
    with pytest.raises(FileNotFoundError, match="SYNTHXRAY_MODEL_CARDS=.*classifier.md"):
        hub.render_generator_card(ddpm_folder)


def test_hub_generator_card_of_a_federated_run(tmp_path):
    folder = tmp_path / "fed-vae"
    folder.mkdir()
    federation = {
        "framework": "Flower", "sites": 4, "partition": "majority", "majority_fraction": 0.8, "dirichlet_alpha": None,
        "site_class_counts": [{"normal": 694, "pneumonia": 173}, {"normal": 173, "pneumonia": 694}],
        "rounds": 3, "num_rounds": 4, "local_steps": 25, "failed_site_rounds": 1, "bytes_per_round": 70_100_000,
        "strategy": {"name": "FedProx", "weighted_by": "num-examples", "fraction_train": 0.5, "proximal_mu": 0.01,
                     "differential_privacy": {"kind": "client-side fixed clipping (Flower)", "noise_multiplier": 0.1,
                                              "clipping_norm": 1.0}},
    }
    (folder / "synthxray.json").write_text(json.dumps({
        "backend": "vae", "class_names": ["normal", "pneumonia"], "channels": 1, "resolution": 28,
        "extra": {"train_steps": 75, "federation": federation, "train_config": {"learning_rate": 0.002, "num_clients": 4},
                  "backend_config": {"learning_rate": 0.001, "latent_dim": 64}},
    }))
    text = hub.write_generator_card(folder).read_text()
    for needle in (
        "### Federated training", "across **4 sites**", "| partition | majority (each site holds 80% of its images from one class) |",
        "| rounds | 3 of 4 planned, 25 local steps per site per round |",
        "| strategy | FedProx, weighted by num-examples, 50% of sites per round, proximal mu 0.01 |",
        "| differential privacy | client-side fixed clipping (Flower): noise multiplier 0.1, clipping norm 1.0 |",
        "| failed site-rounds | 1 (dropped from their round) |", "| traffic | 70.1 MB per round",
        "| site | normal | pneumonia |", "| 0 | 694 | 173 |", "| 1 | 173 | 694 |",
        "| learning_rate | 0.001 |", "| latent_dim | 64 |",  # the VAE trainer's flags, not the federation's DDPM defaults
    ):
        assert needle in text, needle
    assert text.index("### Federated training") < text.index("## Evaluation")  # inside the card, not appended after it
    assert "| learning_rate | 0.002 |" not in text
    meta = front_matter(text)["synthxray"]["federation"]
    assert meta == {"framework": "Flower", "sites": 4, "partition": "majority", "rounds": 3, "local_steps": 25,
                    "strategy": "FedProx", "differential_privacy": True}
    large = {**federation, "partition": "large-site", "large_site_fraction": 0.6}
    (folder / "synthxray.json").write_text(json.dumps({"backend": "vae", "extra": {"federation": large}}))
    assert ("| partition | large-site (one large site with 60% of the images (a random draw), the others each 80% from one class) |"
            in hub.write_generator_card(folder, overwrite=True).read_text())
    (folder / "synthxray.json").write_text(json.dumps({
        "backend": "vae", "class_names": ["normal", "pneumonia"], "channels": 1, "resolution": 28,
        "extra": {"train_steps": 75, "federation": federation, "train_config": {"learning_rate": 0.002, "num_clients": 4},
                  "backend_config": {"learning_rate": 0.001, "latent_dim": 64}},
    }))
    # a card rewritten later (e.g. by push) keeps the section: it comes from the folder's metadata
    assert "### Federated training" in hub.write_generator_card(folder, overwrite=True).read_text()
    # an ordinary run has none, and odd federation values do not break the card
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "synthxray.json").write_text(json.dumps({"backend": "ddpm", "extra": {"federation": {"sites": "many", "strategy": 3}}}))
    text = hub.write_generator_card(plain).read_text()
    assert "Federated training" not in text and "federation" not in front_matter(text).get("synthxray", {})
    (plain / "synthxray.json").write_text(json.dumps({"backend": "ddpm", "extra": {"federation": {
        "sites": 2, "strategy": "x", "site_class_counts": "no", "bytes_per_round": "lots", "rounds": None}}}))
    text = hub.write_generator_card(plain, overwrite=True).read_text()
    assert "across **2 sites**" in text and "| rounds | not recorded |" in text and "| differential privacy | none |" in text
