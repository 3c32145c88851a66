"""Strict config parsing (issue 31): experiment specs and evaluate's config are checked by type, key by key.

Strings are not booleans or numbers, zeros are not "unset", seeds are distinct and >= 0, and every error names the key,
the value and the file. ``--config FILE`` plus overriding flags is the one way to pass a config. No training here.
"""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from synthxray.cli import main
from synthxray.evaluation import EvaluationConfig
from synthxray.experiments.spec import ExperimentSpec, load_spec
from synthxray.training.common import parse_config

EXP = {"real_train": "train_dir", "test": "test_dir", "output_dir": "out", "recipes": ["baseline"]}
EVAL = {"real": "real.npz", "synthetic": "synthetic.npz"}


def write(path, data):
    path.write_text(yaml.safe_dump(data))
    return path


# --- issue case 6: strings and zeros coerced quietly ------------------------------------------------------------------

@pytest.mark.parametrize("key, value", [("by_class", "false"), ("cache", "no")])
def test_evaluate_yaml_string_booleans_are_errors(tmp_path, key, value):
    path = write(tmp_path / "eval.yaml", {**EVAL, key: value})
    match = rf"eval.yaml: {key}: '{value}' \(str\) is not true or false; write true or false"
    with pytest.raises(ValueError, match=match):
        parse_config(EvaluationConfig, [str(path)])


def test_evaluate_repeated_seeds_are_an_error(tmp_path):
    with pytest.raises(ValueError, match=r"seeds: \[0, 0\] must be distinct"):
        EvaluationConfig(**EVAL, seeds=[0, 0])
    path = write(tmp_path / "eval.yaml", {**EVAL, "seeds": [0, 0]})
    with pytest.raises(ValueError, match=r"eval.yaml: seeds: \[0, 0\]"):
        parse_config(EvaluationConfig, ["--config", str(path)])


@pytest.mark.parametrize("extra, match", [
    ({"plots": "false"}, r"plots: 'false' \(str\) is not true or false"),
    ({"regimes": {"fractions": ["1"]}}, r"regimes.fractions: \['1'\] \(list\) is not a list of numbers \(item 0"),
    ({"seeds": [1.7]}, r"seeds: \[1.7\] \(list\) is not a list of integers"),
])
def test_experiment_strings_and_floats_are_not_coerced(tmp_path, extra, match):
    path = write(tmp_path / "exp.yaml", {**EXP, **extra})
    with pytest.raises(ValueError, match="exp.yaml: " + match):
        load_spec(path)


@pytest.mark.parametrize("key", ["epochs", "learning_rate", "batch_size"])
def test_backbone_zero_is_an_error_not_unset(key):
    match = rf"backbone 'cnn': {key}: 0 must be .*leave the key out to use the top-level {key}"
    with pytest.raises(ValueError, match=match):
        load_spec({**EXP, "backbones": [{"name": "cnn", key: 0}]})


def test_backbone_settings_override_the_top_level_ones():
    backbones = [{"name": "cnn", "epochs": 2, "learning_rate": 0.5}, {"name": "cnn", "id": "b"}]
    spec = load_spec({**EXP, "epochs": 5, "backbones": backbones})
    own, top = (spec.train_config(b) for b in spec.backbones)
    assert (own.epochs, own.learning_rate) == (2, 0.5) and (top.epochs, top.learning_rate) == (5, spec.learning_rate)


# --- issue case 10: evaluate's YAML --------------------------------------------------------------------------------

@pytest.mark.parametrize("content, match", [
    ({**EVAL, "batchsize": 8}, r"eval.yaml: unknown key\(s\) \['batchsize'\]"),
    ({**EVAL, "batch_size": "8"}, r"eval.yaml: batch_size: '8' \(str\) is not an integer; write the number without"),
    ("real: [a\n", r"eval.yaml: not valid YAML \(line 2, column 1\)"),
    ("- a\n- b\n", r"eval.yaml: the config must be a mapping"),
    (None, r"eval.yaml not found"),
])
@pytest.mark.parametrize("form", ["positional", "--config"])
def test_evaluate_bad_yaml_is_one_error_line_naming_the_file(tmp_path, capsys, content, match, form):
    import re

    path = tmp_path / "eval.yaml"
    if isinstance(content, dict):
        write(path, content)
    elif content is not None:
        path.write_text(content)
    given = [str(path)] if form == "positional" else ["--config", str(path)]
    rc = main(["evaluate", *given, "--output_dir", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert err.startswith("synthxray evaluate: error: ") and re.search(match, err), err


@pytest.mark.parametrize("form", ["positional", "--config"])
def test_evaluate_yaml_plus_flags_keeps_the_yaml_and_flags_override_it(tmp_path, form):
    path = write(tmp_path / "eval.yaml", {**EVAL, "batch_size": 8, "by_class": False, "metrics": ["fid"]})
    argv = [str(path)] if form == "positional" else ["--config", str(path)]
    cfg = parse_config(EvaluationConfig, [*argv, "--batch_size", "4", "--output_dir", "o"])
    assert (cfg.real, cfg.synthetic, cfg.by_class, cfg.metrics) == ("real.npz", "synthetic.npz", False, ["fid"])
    assert cfg.batch_size == 4 and cfg.output_dir == "o"
    cfg = parse_config(EvaluationConfig, [f"--config={path}", "--real", "other.npz", "--by_class"])
    assert cfg.real == "other.npz" and cfg.by_class is True and cfg.batch_size == 8
    with pytest.raises(ValueError, match=r"eval.yaml \+ flags: batch_size \(--batch_size\) must be >= 1, got 0"):
        parse_config(EvaluationConfig, [str(path), "--batch_size", "0"])


def test_experiment_cli_bad_file_is_one_error_line(tmp_path, capsys):
    cases = [("missing.yaml", None, "missing.yaml not found"), ("bad.yaml", "a: [1\n", "bad.yaml: not valid YAML"),
             ("types.yaml", yaml.safe_dump({**EXP, "image_size": "28"}), "types.yaml: image_size: '28'")]
    for name, text, match in cases:
        if text is not None:
            (tmp_path / name).write_text(text)
        assert main(["experiment", "--config", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert match in err and "Traceback" not in err, err


# --- issue case 11: experiment spec types ----------------------------------------------------------------------------

@pytest.mark.parametrize("extra, match", [
    ({"regimes": {"fractions": [None]}}, r"regimes.fractions: \[None\] \(list\) is not a list of numbers \(item 0"),
    ({"regimes": {"mixed_fraction": "abc"}}, r"regimes.mixed_fraction: 'abc' \(str\) is not a number"),
    ({"image_size": "28"}, r"image_size: '28' \(str\) is not an integer; write the number without quotes"),
    ({"epochs": "1"}, r"epochs: '1' \(str\) is not an integer"),
    ({"seeds": [-1]}, r"seeds: \[-1\] out of range"),
])
def test_experiment_spec_types_are_value_errors_before_any_data_loads(extra, match):
    with pytest.raises(ValueError, match=match):
        load_spec({**EXP, **extra})


# --- a table of bad values for every key -----------------------------------------------------------------------------

BOOL = ["false", "true", "no", 1, 0, None]
INT = ["1", "false", 1.5, True, None]
OPT_INT = ["1", "false", 1.5, True]
FLOAT = ["0.1", "false", True, None, [0.1]]
OPT_FLOAT = ["7.5", "false", True]
STR = [1, None, ["a"], False]
OPT_STR = [1, ["a"], False]

EXPERIMENT_BAD = {
    "real_train": [None],
    "test": [None],
    "output_dir": STR + [""],
    "real_train_split": STR,
    "val_split": STR,
    "test_split": STR,
    "val_fraction": FLOAT + [0, 1],
    "synthetic": [{"generator": 3}, {"dataset": "d", "seed": "1"}, {"generator": "g", "per_class": "5"},
                  {"generator": "g", "per_class": 0}, {"dataset": "d", "batch_size": "false"},
                  {"dataset": "d", "colour": 1}],
    "backbones": [[{"name": 3}], [{"name": "cnn", "epochs": "1"}], [{"name": "cnn", "learning_rate": "false"}],
                  [{"name": "cnn", "id": 3}], [{"name": "cnn", "batch_size": 1.5}], [], "cnn-string-not-list"],
    "recipes": [[{"name": "r", "real_fraction": "1"}], [{"name": "r", "pretrain_synthetic": "false"}], [{"name": 3}],
                []],
    "regimes": [{"fractions": [None]}, {"fractions": ["1"]}, {"fractions": [0]}, {"mixed_fraction": "abc"},
                {"recipes": "real"}, "yes"],
    "seeds": [["1"], [1.7], [None], [True], "0", [-1], [0, 0], None, [], 0],
    "baseline": OPT_STR + ["nope"],
    "compare_to": [1, [1], ["nope"]],
    "balance": STR + ["nope"],
    "ratio_of": STR + ["nope"],
    "strict_counts": BOOL,
    "epochs": INT + [0],
    "image_size": INT + [4],
    "channels": OPT_INT + [2],
    "batch_size": INT + [0],
    "learning_rate": FLOAT + [0],
    "weight_decay": FLOAT,
    "lr_scheduler": STR + ["nope"],
    "hflip": BOOL,
    "rotation": FLOAT,
    "color_jitter": FLOAT,
    "early_stopping_patience": OPT_INT,
    "early_stopping_monitor": STR + ["nope"],
    "max_real_train": OPT_INT + [1],
    "positive_class": OPT_STR,
    "robustness": ["false", {"epsilon": "0.03"}, {"max_images": "5"}, {"attacks": "fgsm"}, {"epsilonn": 0.1}],
    "save_classifiers": BOOL,
    "plots": BOOL,
    "mixed_precision": STR + ["fp16"],
    "device": OPT_STR,
    "num_threads": OPT_INT + [0],
}
NOT_CHECKED = {"val"}  # any data source (a path, a dataset, a Hub id) is a valid val


def test_the_experiment_table_covers_every_key():
    assert set(EXPERIMENT_BAD) | NOT_CHECKED == {f.name for f in dataclasses.fields(ExperimentSpec)}


@pytest.mark.parametrize("key, value", [(k, v) for k, values in EXPERIMENT_BAD.items() for v in values])
def test_every_experiment_key_rejects_bad_values_by_name(key, value):
    with pytest.raises((ValueError, KeyError)) as info:
        load_spec({**EXP, key: value})
    names = {"backbones": "backbone", "recipes": "recipe"}.get(key, key)
    assert names in str(info.value) or (key == "recipes" and "recipe" in str(info.value)), str(info.value)


EVALUATION_BAD = {
    "metrics": [5, ["fid", 5], None, ["nope"], "false"],
    "by_class": BOOL,
    "seeds": ["2", [1.5], [0, 0], [-1], 0, None, True, [], ["0"]],
    "num_samples": OPT_INT + [1],
    "num_per_class": OPT_INT + [0],
    "real_split": OPT_STR,
    "synthetic_split": STR,
    "protocol": STR,
    "match_resolution": [1, False, "nope"],
    "class_mix": STR + ["nope"],
    "train_split": STR,
    "batch_size": INT + [0],
    "device": OPT_STR,
    "cache": BOOL,
    "overwrite_output_dir": BOOL,
    "cache_synthetic": BOOL,
    "cache_dir": OPT_STR,
    "kid_subset_size": OPT_INT + [0],
    "kid_subsets": INT + [0],
    "prc_neighborhood": INT + [0],
    "scheduler": OPT_STR,
    "num_inference_steps": OPT_INT + [0],
    "guidance_scale": OPT_FLOAT,
    "output_dir": OPT_STR,
    "progress": BOOL,
}
ANY_OBJECT = {"real", "synthetic", "extractor", "train"}  # a path, a dataset, a Generator or a torch module


def test_the_evaluation_table_covers_every_key():
    assert set(EVALUATION_BAD) | ANY_OBJECT == {f.name for f in dataclasses.fields(EvaluationConfig)}


@pytest.mark.parametrize("key, value", [(k, v) for k, values in EVALUATION_BAD.items() for v in values])
def test_every_evaluation_key_rejects_bad_values_by_name(tmp_path, key, value):
    with pytest.raises(ValueError, match=key):
        EvaluationConfig(**{**EVAL, key: value})
    path = write(tmp_path / "bad.yaml", {**EVAL, key: value})
    with pytest.raises(ValueError, match=rf"bad.yaml.*{key}"):
        parse_config(EvaluationConfig, ["--config", str(path)])


def test_training_configs_take_the_same_config_file_and_flags(tmp_path):
    from synthxray.training.ddpm import DDPMTrainingConfig

    path = write(tmp_path / "ddpm.yaml", {"dataset": "data.npz", "output_dir": "out", "train_batch_size": 8, "seed": 3})
    cfg = parse_config(DDPMTrainingConfig, ["--config", str(path), "--seed", "5"])
    assert (cfg.dataset, cfg.train_batch_size, cfg.seed) == ("data.npz", 8, 5)
    write(path, {"dataset": "data.npz", "output_dir": "out", "overwrite_output_dir": "false"})
    with pytest.raises(ValueError, match=r"ddpm.yaml: overwrite_output_dir: 'false' \(str\) is not true or false"):
        parse_config(DDPMTrainingConfig, [str(path)])
    with pytest.raises(ValueError, match=r"train_batch_size: '8' \(str\) is not an integer"):
        DDPMTrainingConfig(dataset="data.npz", output_dir="out", train_batch_size="8")
