"""Training from anywhere (``synthxray train``, ``python -m synthxray.training``) and the error rule:
our own input errors are one line, unexpected exceptions keep their traceback."""

from __future__ import annotations

import json

import pytest

from synthxray.cli import main as cli_main
from synthxray.errors import ExplainedError, is_input_error
from synthxray.training import TRAINERS, run_trainer
from synthxray.training.common import run_script
from synthxray.training.ddpm import DDPMTrainingConfig

TINY = ["--resolution", "16", "--block_out_channels", "8", "16", "--layers_per_block", "1", "--train_batch_size", "8",
        "--checkpointing_steps", "0", "--save_images_steps", "0", "--sample_steps", "2", "--num_train_timesteps", "10"]


def _raised(fn) -> BaseException:
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001
        return exc
    raise AssertionError("did not raise")


def test_input_errors_are_those_our_code_raises():
    from synthxray.data import load_dataset

    assert is_input_error(_raised(lambda: load_dataset("/no/such/folder.npz")))  # synthxray's validation
    assert not is_input_error(_raised(lambda: int("x")))  # a ValueError from elsewhere is unexpected
    assert not is_input_error(_raised(lambda: json.loads("{")))  # raised inside the json library
    assert is_input_error(ExplainedError("the message says it all"))


def test_run_script_one_line_for_input_errors(tmp_path, capsys):
    argv = ["--dataset", str(tmp_path / "missing.npz"), "--output_dir", str(tmp_path / "out"), *TINY]
    assert run_trainer("ddpm", argv, prog="synthxray train ddpm") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("synthxray train ddpm: error: ") and "missing.npz" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_run_script_keeps_the_traceback_of_unexpected_errors(tiny_npz, tmp_path):
    def broken_train(cfg):
        raise RuntimeError("a bug")

    argv = ["--dataset", str(tiny_npz), "--output_dir", str(tmp_path / "out"), *TINY]
    with pytest.raises(RuntimeError, match="a bug"):
        run_script(DDPMTrainingConfig, broken_train, argv)
    with pytest.raises(ValueError):  # a ValueError that is not our validation is not swallowed either
        run_script(DDPMTrainingConfig, lambda cfg: int("not a number"), argv)


def test_cli_train_lists_the_trainers_and_their_flags(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli_main(["train", "ddpm", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "usage: synthxray train ddpm" in out and "--resolution" in out and "--resume_from_checkpoint" in out
    assert {"ddpm", "sd-dreambooth", "sd-lora"} <= set(TRAINERS)
    with pytest.raises(SystemExit):
        cli_main(["train", "nosuch"])
    assert "invalid choice" in capsys.readouterr().err


def test_trainers_table_names_real_configs():
    import importlib

    for name, (module, config, defaults) in TRAINERS.items():
        mod = importlib.import_module(module)
        assert callable(mod.train) and hasattr(getattr(mod, config), "__dataclass_fields__"), name
        assert set(defaults) <= set(getattr(mod, config).__dataclass_fields__), name


def test_one_key_per_backend_across_generators_trainers_and_federated_backends():
    """A backend has one name: the generator registry's, which the trainers and the federated backends use too."""
    from synthxray.federated.backends import FEDERATED_BACKENDS
    from synthxray.generators import list_generators
    from synthxray.training import SCRIPT_NAMES, _with_defaults, trainer_key

    # the "diffusers" backend wraps pipelines others trained (issue 33): there is nothing for synthxray to train
    assert set(TRAINERS) == set(list_generators()) - {"diffusers"}
    assert set(FEDERATED_BACKENDS.names()) <= set(TRAINERS)
    assert {trainer_key(n) for n in SCRIPT_NAMES} <= set(TRAINERS) and trainer_key("nosuch") is None
    # a GAN backend name sets its architecture; a flag still overrides it
    from synthxray.training.gan import GANTrainingConfig

    cls = _with_defaults(GANTrainingConfig, TRAINERS["wgan-gp"][2], script=False)
    assert issubclass(cls, GANTrainingConfig) and cls.__dataclass_fields__["architecture"].default == "wgan-gp"


def test_python_m_synthxray_training_dispatches_to_the_trainer(capsys):
    """``python -m synthxray.training NAME`` (what ``accelerate launch -m`` runs; .ci/wheel_check.sh trains with it
    from an installed wheel outside the checkout)."""
    from synthxray.training import main

    with pytest.raises(SystemExit) as exit_:
        main(["lora", "--help"])
    assert exit_.value.code == 0 and "usage: python -m synthxray.training lora" in capsys.readouterr().out
    assert main([]) == 2 and "ddpm,sd-dreambooth,sd-lora,dcgan" in capsys.readouterr().out
    assert main(["nosuch"]) == 2 and "unknown trainer 'nosuch'" in capsys.readouterr().err
