"""FID / KID / precision-recall: sanity (self ~0, halves << blurred << noise), cache, seeds, class matching."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from tinydata import blur, noise_like, transformed, xray_like

from synthxray.evaluation import (
    compute_features,
    evaluate,
    fid_from_features,
    inception_available,
    kid_from_features,
    precision_recall_from_features,
)
from synthxray.evaluation.extractors import to_uint8_rgb


def test_fid_of_a_set_with_itself_is_zero(real_ds, tmp_path):
    res = evaluate(real_ds, real_ds, metrics=("fid", "kid", "precision", "recall"), extractor="random",
                   cache_dir=tmp_path, progress=False)
    for row in res.rows:
        assert abs(row["fid"]["mean"]) < 1e-3, row
        assert abs(row["kid"]["mean"]) < 1e-3, row
        assert row["precision"]["mean"] == pytest.approx(1.0)
        assert row["recall"]["mean"] == pytest.approx(1.0)
    assert [r["class"] for r in res.rows] == ["overall", "normal", "pneumonia"]
    assert res.overall["n_real"] == 64 and res["pneumonia"]["n_synthetic"] == 32


def _sanity(extractor, ds, margin: float):
    half = len(ds) // 2
    a, b = ds.select(range(half)), ds.select(range(half, len(ds)))
    fa = compute_features(a, extractor, progress=False).features
    fb = compute_features(b, extractor, progress=False).features
    fblur = compute_features(transformed(a, blur), extractor, progress=False).features
    fnoise = compute_features(transformed(a, noise_like), extractor, progress=False).features
    halves = fid_from_features(fa, fb)
    blurred = fid_from_features(fb, fblur)
    noise = fid_from_features(fb, fnoise)
    assert halves >= 0
    assert blurred > margin * halves, (halves, blurred)
    assert noise > margin * halves and noise > blurred, (halves, blurred, noise)
    return halves, blurred, noise


def test_halves_score_far_lower_than_blurred_or_noise_random_extractor(random_extractor):
    _sanity(random_extractor, xray_like(128, seed=3), margin=5)


@pytest.mark.skipif(not inception_available()[0], reason=f"Inception FID not tested: {inception_available()[1]}")
def test_halves_score_far_lower_than_blurred_or_noise_inception():
    from synthxray.evaluation import get_extractor

    ext = get_extractor("inception", device="cpu")
    t = time.time()
    halves, blurred, noise = _sanity(ext, xray_like(24, size=32, seed=4), margin=2)
    print(f"inception FID halves {halves:.1f}, blurred {blurred:.1f}, noise {noise:.1f} ({time.time() - t:.0f} s)")


def test_precision_recall_and_kid_move_the_right_way(random_extractor, real_ds, other_real_ds):
    fr = compute_features(real_ds, random_extractor, progress=False).features
    fo = compute_features(other_real_ds, random_extractor, progress=False).features
    fn = compute_features(transformed(other_real_ds, noise_like), random_extractor, progress=False).features
    p_ok, r_ok = precision_recall_from_features(fr, fo)
    p_bad, r_bad = precision_recall_from_features(fr, fn)
    assert p_ok > 0.5 and r_ok > 0.5 and p_bad < 0.1 and r_bad < 0.1
    assert kid_from_features(fr, fn)[0] > 10 * abs(kid_from_features(fr, fo)[0])


def test_kid_subset_size_adapts_to_small_sets(tmp_path):
    small = xray_like(10, seed=5)
    res = evaluate(xray_like(30, seed=6), small, metrics=("kid",), extractor="random", cache=False, progress=False)
    assert res.overall["kid_subset_size"] == 10
    assert res["normal"]["kid_subset_size"] == 5
    assert np.isfinite(res.overall["kid"]["mean"])


def test_real_features_are_cached_on_disk(real_ds, random_extractor, tmp_path):
    first = compute_features(real_ds, random_extractor, cache=True, cache_dir=tmp_path, progress=False)
    assert not first.cached and len(list(tmp_path.glob("*.npz"))) == 1
    second = compute_features(real_ds, random_extractor, cache=True, cache_dir=tmp_path, progress=False)
    assert second.cached
    np.testing.assert_array_equal(first.features, second.features)
    np.testing.assert_array_equal(first.labels, second.labels)
    # other content or another extractor: another key
    compute_features(real_ds.select(range(10)), random_extractor, cache=True, cache_dir=tmp_path, progress=False)
    from synthxray.evaluation import get_extractor

    compute_features(real_ds, get_extractor("random", seed=1, device="cpu"), cache=True, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("*.npz"))) == 3
    res = evaluate(real_ds, real_ds, metrics=("fid",), extractor=random_extractor, cache_dir=tmp_path, progress=False)
    assert res.real["features_cached"] is True


def test_seeds_subsample_and_report_mean_std(real_ds, other_real_ds, tmp_path):
    res = evaluate(real_ds, other_real_ds, metrics=("fid", "precision"), extractor="random", seeds=3, num_samples=24,
                   cache=False, output_dir=tmp_path, progress=False)
    fid = res.overall["fid"]
    assert len(fid["values"]) == 3 and len(set(fid["values"])) == 3
    assert fid["std"] > 0 and fid["mean"] == pytest.approx(np.mean(fid["values"]))
    assert res.overall["n_real"] == 24 and res.overall["n_synthetic"] == 24
    data = json.loads((tmp_path / "evaluation.json").read_text())
    assert data["seeds"] == [0, 1, 2] and data["rows"][0]["class"] == "overall"
    md = (tmp_path / "evaluation.md").read_text()
    assert "random CNN" in md and "± " in md and "| normal |" in md


def test_class_names_matched_by_name_and_mismatch_is_a_clear_error(real_ds):
    import datasets

    upper = real_ds.cast_column("label", datasets.ClassLabel(names=["NORMAL", "PNEUMONIA"]))
    res = evaluate(real_ds, upper, metrics=("fid",), extractor="random", cache=False, progress=False)
    assert abs(res.overall["fid"]["mean"]) < 1e-3 and abs(res["pneumonia"]["fid"]["mean"]) < 1e-3
    # reversed class order maps by name, not index
    swapped = datasets.Dataset.from_dict(
        {"image": real_ds["image"], "label": [1 - v for v in real_ds["label"]]},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["pneumonia", "normal"])}),
    )
    res = evaluate(real_ds, swapped, metrics=("fid",), extractor="random", cache=False, progress=False)
    assert abs(res["normal"]["fid"]["mean"]) < 1e-3
    other = real_ds.cast_column("label", datasets.ClassLabel(names=["healthy", "sick"]))
    with pytest.raises(ValueError, match=r"do not match the real class names \['normal', 'pneumonia'\]"):
        evaluate(real_ds, other, metrics=("fid",), extractor="random", cache=False, progress=False)


def test_unknown_metric_is_rejected(real_ds):
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate(real_ds, real_ds, metrics=("fjd",), extractor="random", progress=False)


def test_preprocessing_grayscale_16bit_and_non_square():
    from PIL import Image

    gray = Image.fromarray(np.arange(40 * 30, dtype=np.uint8).reshape(30, 40), mode="L")
    out = to_uint8_rgb(gray, 16)
    assert out.shape == (3, 16, 16) and out.dtype == np.uint8
    assert (out[0] == out[1]).all() and (out[1] == out[2]).all()
    wide = (np.arange(30 * 40).reshape(30, 40) * 50).astype(np.uint16)
    out16 = to_uint8_rgb(Image.fromarray(wide), 16)
    assert out16.max() > 200  # 16-bit rescaled, not clipped to 255 everywhere
    assert (out16 < 255).mean() > 0.5


def test_generator_input_sampled_in_real_proportions(tiny_ddpm_dir, tiny_npz):
    from synthxray import load_generator

    gen = load_generator(tiny_ddpm_dir, device="cpu")
    res = evaluate(tiny_npz, gen, metrics=("fid",), extractor="random", num_samples=8, seeds=2, cache=False,
                   generate_kwargs={"num_inference_steps": 2, "scheduler": "ddim", "batch_size": 8}, progress=False)
    assert res.synthetic["images_per_class"] == {"0": 4, "1": 4}
    assert res.synthetic["num_images"] == [8, 8]
    assert len(res.overall["fid"]["values"]) == 2 and res.overall["fid"]["values"][0] != res.overall["fid"]["values"][1]
    assert res.timings["generate_images_per_s"] > 0


@pytest.mark.parametrize("n1,n2,d", [(30, 45, 64), (200, 150, 32)])
def test_frechet_distance_equals_torch_fidelity(n1, n2, d):
    """Our nuclear-norm form of tr sqrt(S1 S2) gives torch-fidelity's FID (n < d and n > d)."""
    from torch_fidelity.metric_fid import fid_statistics_to_metric

    from synthxray.evaluation.fid import fid_from_statistics, fid_statistics

    rng = np.random.default_rng(n1)
    a = rng.standard_normal((n1, d)).astype(np.float32) + 0.5
    b = (rng.standard_normal((n2, d)) @ rng.standard_normal((d, d)) * 0.4).astype(np.float32)
    s1, s2 = fid_statistics(a), fid_statistics(b)
    ref = fid_statistics_to_metric({k: s1[k] for k in ("mu", "sigma")}, {k: s2[k] for k in ("mu", "sigma")}, False)
    assert fid_from_statistics(s1, s2) == pytest.approx(ref["frechet_inception_distance"], rel=1e-6)
