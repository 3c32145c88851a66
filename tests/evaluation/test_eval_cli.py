"""`synthxray evaluate` end to end on tiny files, plus the extras (memorization, label fidelity, t-SNE) through evaluate()."""

from __future__ import annotations

import json

from tinydata import xray_like

from synthxray.cli import main
from synthxray.evaluation import evaluate


def test_cli_writes_json_and_markdown(tiny_npz, tmp_path, capsys):
    out = tmp_path / "eval"
    rc = main(["evaluate", "--real", str(tiny_npz), "--synthetic", str(tiny_npz), "--synthetic_split", "val",
               "--metrics", "fid", "kid", "--extractor", "random", "--by_class", "--seeds", "2", "--no_progress",
               "--cache_dir", str(tmp_path / "cache"), "--output_dir", str(out)])
    assert rc == 0
    data = json.loads((out / "evaluation.json").read_text())
    assert [r["class"] for r in data["rows"]] == ["overall", "0", "1"]
    assert len(data["rows"][0]["fid"]["values"]) == 2 and data["extractor"].startswith("random CNN")
    assert "| overall |" in (out / "evaluation.md").read_text()
    assert "KID ×10³" in capsys.readouterr().out


def test_cli_reports_mismatched_classes_in_one_line(tiny_npz, tmp_path, capsys):
    folder = tmp_path / "imgs"
    for name in ("cat", "dog"):
        (folder / name).mkdir(parents=True)
        for i, im in enumerate(xray_like(4, seed=3)["image"]):
            im.save(folder / name / f"{i}.png")
    rc = main(["evaluate", "--real", str(tiny_npz), "--synthetic", str(folder), "--extractor", "random", "--no_progress",
               "--output_dir", str(tmp_path / "o")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "do not match the real class names" in err and "Traceback" not in err


def test_evaluate_with_memorization_label_fidelity_and_tsne(real_ds, other_real_ds, tmp_path):
    from test_eval_fidelity import OpacityClassifier

    res = evaluate(real_ds, other_real_ds, metrics=("fid", "memorization", "label_fidelity", "tsne"), extractor="random",
                   classifier=OpacityClassifier(), cache=False, output_dir=tmp_path, progress=False)
    assert res.memorization["against"].startswith("real") and "pixel" in res.memorization["spaces"]
    assert res.label_fidelity["synthetic"]["accuracy"] > 0.9
    assert (tmp_path / "embedding.png").is_file() and len(res.tsne["coordinates"]["synthetic"]) == len(other_real_ds)
    md = (tmp_path / "evaluation.md").read_text()
    assert "Memorization" in md and "Label fidelity" in md and "Embedding plot" in md


def test_cli_protocol_and_resolution_flags_reach_the_report(tiny_npz, tmp_path, capsys):
    out = tmp_path / "eval"
    rc = main(["evaluate", "--real", str(tiny_npz), "--synthetic", str(tiny_npz), "--synthetic_split", "val",
               "--metrics", "fid", "--extractor", "random", "--protocol", "clean", "--match_resolution", "real",
               "--no_progress", "--no_cache", "--output_dir", str(out)])
    assert rc == 0
    data = json.loads((out / "evaluation.json").read_text())
    assert data["protocol"] == "clean" and data["settings"]["compared_size"] == 28 and data["real"]["split"] == "test"
    assert data["settings"]["match_resolution"] == "real"
    printed = capsys.readouterr().out
    assert "protocol **clean**" in printed and "compared at **28 px**" in printed and "n = 6 real / 6 synthetic" in printed


def test_evaluation_config_is_what_the_cli_parses_and_evaluate_takes(tiny_npz, tmp_path):
    """One set of option names: the CLI's flags are EvaluationConfig's fields, and evaluate() takes the same config or
    the same names as keywords (``by_class`` is the rows flag; ``per_class`` is generate_dataset's count)."""
    import pytest

    from synthxray.evaluation import EvaluationConfig
    from synthxray.training.common import parse_config

    argv = ["--real", str(tiny_npz), "--synthetic", str(tiny_npz), "--synthetic_split", "val", "--metrics", "fid",
            "--extractor", "random", "--no_by_class", "--match_resolution", "none", "--no_cache", "--no_progress"]
    cfg = parse_config(EvaluationConfig, argv)
    assert cfg.by_class is False and cfg.match_resolution is None and cfg.cache is False and cfg.metrics == ["fid"]
    by_config = evaluate(config=cfg)
    by_keywords = evaluate(tiny_npz, tiny_npz, synthetic_split="val", metrics=("fid",), extractor="random", by_class=False,
                           match_resolution=None, cache=False, progress=False)
    assert [r["class"] for r in by_config.rows] == ["overall"] and by_config.value("fid") == by_keywords.value("fid")
    assert evaluate(config=cfg, by_class=True).settings["by_class"] is True  # keywords override the config
    for options, match in [({"per_class": True}, "now by_class"), ({"metric": ["fid"]}, r"unknown option\(s\) \['metric'\]"),
                           ({"metrics": ["fdi"]}, r"unknown metric\(s\) \['fdi'\]"), ({"seeds": 0}, "seeds"),
                           ({"metrics": ["tsne"]}, "needs output_dir"), ({"class_mix": "both"}, "class_mix"),
                           ({"scheduler": "ddim"}, "apply only when synthetic is a generator")]:
        with pytest.raises(ValueError, match=match):
            evaluate(config=cfg, **options)


def test_cli_needs_output_dir_and_prints_every_flag(tiny_npz, capsys):
    import pytest

    assert main(["evaluate", "--real", str(tiny_npz), "--synthetic", str(tiny_npz)]) == 2
    assert "--output_dir is required" in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:
        main(["evaluate", "--help"])
    printed = capsys.readouterr().out
    assert done.value.code == 0 and all(f in printed for f in ("--by_class", "--output_dir", "--no_progress"))
