"""Errors that say what changed and what to do (issue 22, item 4): a refused resume names the
changed fields, an offline Hub id fails at once in one line, third-party warnings keep their own
names and no line prints twice, and ``ripbench train shapes`` prints a next command that runs."""

from __future__ import annotations

import logging
import shlex
import socket
import time

import pytest
from click.testing import CliRunner

from ripbench.cli import main, use_trained_shapes_command, warning_line
from ripbench.config import ExperimentConfig, config_changes
from ripbench.models.classical import Biharmonic


def test_a_refused_resume_names_the_fields_that_changed():
    before = ExperimentConfig(iterations=30).model_dump(mode="json")
    assert config_changes(before, ExperimentConfig(iterations=31)) == ["iterations: 30 -> 31"]
    # plumbing (batch size, device, name) never counts as a change
    assert config_changes(before, ExperimentConfig(iterations=30, batch_size=2, name="other")) == []
    many = config_changes(before, ExperimentConfig(iterations=31, seeds=[0, 1], size=64), limit=2)
    assert len(many) == 3 and many[0] == "iterations: 30 -> 31" and many[-1] == "and 1 more"
    # a field kept out of the fingerprint at its default shows that default, not "(not set)"
    assert config_changes(before, ExperimentConfig(iterations=30, handoff="uint8")) == ['handoff: "float" -> "uint8"']
    uint8 = ExperimentConfig(iterations=30, handoff="jpeg:90").model_dump(mode="json")
    assert config_changes(uint8, ExperimentConfig(iterations=30)) == ['handoff: "jpeg:90" -> "float"']


def test_a_refused_resume_through_the_library_says_both_ways_out(tmp_path):
    from ripbench.errors import ResultsError
    from ripbench.run import run_experiment

    def config(n):
        return ExperimentConfig.model_validate({
            "name": "r", "output_dir": str(tmp_path), "iterations": n, "size": 32, "models": ["biharmonic"],
            "masks": [{"policy": "grid", "size": 16}], "inputs": {"source": "samples", "names": ["coffee"]},
            "metrics": {"names": ["mse"]}})

    run_experiment(config(2), progress=False)
    with pytest.raises(ResultsError) as err:
        run_experiment(config(3), progress=False)
    text = str(err.value)
    assert "(iterations: 2 -> 3)" in text and "--name NEW_NAME" in text and "--overwrite" in text
    assert "fingerprint" not in text


@pytest.fixture
def no_network(monkeypatch):
    """Networking disabled: every connection and name lookup fails at once."""
    def refuse(*args, **kwargs):
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


def test_an_offline_hub_id_fails_within_seconds_in_one_line(no_network):
    pytest.importorskip("diffusers")
    from ripbench.errors import ModelNotFoundError
    from ripbench.models.diffusers_backend import hub_offline_reason, load_inpainting_pipeline

    assert hub_offline_reason() == "huggingface.co cannot be reached (no network)"
    start = time.perf_counter()
    with pytest.raises(ModelNotFoundError) as err:
        load_inpainting_pipeline("ripbench-tests/never-cached-model")
    assert time.perf_counter() - start < 5  # no retries
    text = str(err.value)
    assert "\n" not in text and "offline" in text and "local_files_only" in text and "--model ./path/to/folder" in text


def test_every_checkpoint_loader_fails_fast_offline(no_network):
    """The VAE control and the semantic backbones ask the same question before loading a Hub id: no
    retries offline, one line."""
    from ripbench.errors import ModelNotFoundError, WeightsError
    from ripbench.metrics.semantic import load_backbone
    from ripbench.models.vae_roundtrip import load_vae

    start = time.perf_counter()
    with pytest.raises(ModelNotFoundError) as err:
        load_vae("ripbench-tests/never-cached-vae")
    assert "\n" not in str(err.value) and "offline" in str(err.value)
    with pytest.raises(WeightsError) as err:
        load_backbone("dinov2", "ripbench-tests/never-cached-dinov2")
    assert "offline" in str(err.value)
    assert time.perf_counter() - start < 8  # two loaders, no retries


def test_hf_hub_offline_is_detected_without_a_probe(monkeypatch):
    pytest.importorskip("diffusers")
    from ripbench.models.diffusers_backend import hub_offline_reason

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("probed although offline"))
    assert hub_offline_reason() == "HF_HUB_OFFLINE is set"


def test_third_party_warnings_keep_their_names():
    import ripbench.config

    assert warning_line("deprecated", FutureWarning,
                        "/venv/lib/python3.11/site-packages/diffusers/utils/deprecation_utils.py") == \
        "FutureWarning from diffusers: deprecated"
    assert warning_line("LPIPS dropped", UserWarning, ripbench.config.__file__) == "ripbench: warning: LPIPS dropped"


def test_a_logger_with_its_own_handler_is_not_printed_twice(capsys):
    from ripbench.cli import _not_printed_already

    own = logging.getLogger("thirdparty_with_handler")
    own.addHandler(logging.NullHandler())
    try:
        record = own.makeRecord(own.name, logging.WARNING, __file__, 1, "Retrying in 1s", None, None)
        assert not _not_printed_already(record)
        plain = logging.getLogger("thirdparty_plain.sub")
        assert _not_printed_already(plain.makeRecord(plain.name, logging.WARNING, __file__, 1, "x", None, None))
    finally:
        own.handlers.clear()


def test_train_shapes_offers_only_labelled_sizes_and_scales_the_warm_up():
    from ripbench.training.config import ShapesTrainingConfig

    res = CliRunner().invoke(main, ["train", "shapes", "--size", "16"])
    assert res.exit_code == 2 and "'16' is not one of '64', '32'" in res.output
    short = ShapesTrainingConfig(steps=40)
    short.validate()  # the default warm-up of 100 no longer refuses a 40-step run
    assert short.warmup == 4 and short.learning_rate_at(3) == pytest.approx(short.learning_rate)
    assert ShapesTrainingConfig().warmup == 100  # the recipe of the bundled weights is unchanged
    assert "--warmup" in CliRunner().invoke(main, ["train", "shapes", "--help"]).output


@pytest.mark.slow
def test_the_printed_next_command_runs_as_printed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ["train", "shapes", "--out", "tiny model", "--size", "32", "--steps", "3",
                                    "--channels", "8,16", "--batch-size", "4", "--eval-samples", "1"])
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if x.startswith("use it: "))
    command = line.removeprefix("use it: ")
    assert command == use_trained_shapes_command(tmp_path / "tiny model", 32).replace(str(tmp_path / "tiny model"),
                                                                                      "tiny model")
    args = shlex.split(command)
    assert args[:2] == ["ripbench", "run"]
    ran = CliRunner().invoke(main, args[1:])
    assert ran.exit_code == 0, ran.output
    assert (tmp_path / "results" / "shapes-ddpm-tiny-model" / "manifest.json").is_file()


class _Counted:
    """How often :class:`Counted` was built (a pipeline that takes minutes to load, in real life)."""

    built = 0


class Counted(Biharmonic):
    name = "counted"

    def __init__(self, **kwargs):
        _Counted.built += 1
        super().__init__(**kwargs)


def test_missing_metric_weights_stop_the_run_before_any_model_loads(tmp_path):
    """A metric without weights (here DINOv2 pointed at a folder that does not exist) is one line, exit 2,
    before the first model is built: a researcher does not wait for a pipeline to load to learn it."""
    _Counted.built = 0
    res = CliRunner().invoke(main, ["run", "--model", f"{__name__}:Counted", "-n", "1", "--size", "32",
                                    "--mask", "grid:16", "--set", "metrics.names=[mse,dinov2]",
                                    "--set", f"metrics.options.dinov2.model={tmp_path / 'nope'}",
                                    "--output-dir", str(tmp_path / "res"), "--no-progress"])
    assert res.exit_code == 2, res.output
    assert "dinov2" in res.output.lower() and "Traceback" not in res.output
    assert _Counted.built == 0
