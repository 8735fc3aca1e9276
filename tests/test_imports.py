"""The light entry points import no deep-learning stack: checked in fresh interpreters.

Loading a results table, analysing it, checking a config and asking for help must not pay for
a torch import (seconds and hundreds of MiB). Each case runs in a new ``python`` process (the
test process itself has imported torch long ago) and reports which of :data:`HEAVY` ended up in
``sys.modules``. CLI commands run through :func:`runpy.run_module` in that process, exactly as
``python -m ripbench ...`` runs them, so the modules can be inspected once the command is done.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "lpips", "diffusers", "transformers", "datasets", "tensorboard")
MARKER = "RIPBENCH-HEAVY-MODULES:"


def _heavy_after(body: str, timeout: float = 120) -> list[str]:
    """Run ``body`` in a fresh interpreter from the checkout; the heavy modules it left imported."""
    probe = (f"{body}\nimport sys\n"
             f"print({MARKER!r} + __import__('json').dumps([m for m in {HEAVY!r} if m in sys.modules]))\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARKER)]
    assert lines, f"no report from the child process; stdout: {done.stdout[-2000:]}"
    return json.loads(lines[-1][len(MARKER):])


def _cli(*args: str) -> str:
    """``python -m ripbench ARGS`` inside the probe; the command must exit with status 0."""
    return (f"import runpy, sys\nsys.argv = ['ripbench', *{list(args)!r}]\n"
            "try:\n    runpy.run_module('ripbench', run_name='__main__', alter_sys=True)\n"
            "except SystemExit as exc:\n    assert exc.code in (0, None), f'exit status {exc.code}'\n")


@pytest.fixture(scope="module")
def clean_interpreter() -> None:
    """Skip when the interpreter imports one of the heavy modules before any ripbench code runs."""
    preloaded = _heavy_after("pass")
    if preloaded:
        pytest.skip(f"this Python imports {preloaded} at start-up (sitecustomize?): nothing to check")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished two-iteration run (one image, MSE only): something for ``ripbench.load`` to load."""
    from ripbench.config import validate_config
    from ripbench.run import run_experiment

    out = tmp_path_factory.mktemp("imports")
    config = validate_config({
        "name": "tiny", "iterations": 2, "size": 32, "seeds": [0],
        "inputs": {"source": "samples", "names": ["coffee"]}, "masks": [{"policy": "grid", "size": 16}],
        "models": [{"name": "biharmonic"}], "metrics": {"names": ["mse"]}, "output_dir": str(out)})
    run_experiment(config, progress=False)
    return out / "tiny"


CASES = {
    "import ripbench": "import ripbench",
    "ripbench.load": "import ripbench\nripbench.load",
    "import ripbench.analysis": "import ripbench.analysis",
    "import ripbench.compare": "import ripbench.compare",
    "import ripbench.findings": "import ripbench.findings",
    "import ripbench.report": "import ripbench.report",
    "hallucination evaluation": ("import ripbench.hallucination, ripbench.hallucination_stats as hs\n"
                                 "from ripbench.hallucination.shapes_truth import generation_table\n"
                                 "import pandas as pd\n"
                                 "t = pd.DataFrame({'trajectory_id': ['a'] * 2, 'iteration': [0, 1],\n"
                                 "    'shapes_layout': ['T|S|', 'T|SS|'], 'shapes_label': ['valid', 'duplicate'],\n"
                                 "    'mask_x0': [None, 21], 'mask_x1': [None, 42], 'mask_y0': [None, 0],\n"
                                 "    'mask_y1': [None, 64]})\n"
                                 "assert generation_table(t)['generation'].tolist() == ['duplicate']\n"
                                 "assert hs.ground_truth(t)[0].tolist()[1] is True\n"),
    "ripbench --help": _cli("--help"),
    "ripbench export --help": _cli("export", "--help"),
    "import ripbench.export, ripbench.trackers": "import ripbench.export, ripbench.trackers",
    "a Hub dataset config": ("from ripbench.config import validate_config\n"
                             "validate_config({'inputs': {'source': 'hf', 'dataset': 'huggan/wikiart', 'sample': 100}})"),
    "ripbench config --preset quick": _cli("config", "--preset", "quick"),
    "registries by name": ("from ripbench.metrics import available_metrics, get_metric_spec, spec_for_column\n"
                           "from ripbench.detectors import available_detectors, get_detector\n"
                           "from ripbench.models import available_inpainters\n"
                           "assert spec_for_column('lpips_orig_never').name == 'lpips'\n"
                           "assert get_metric_spec('ssim').minimum_size() == 11\n"
                           "assert [get_detector(n).label for n in available_detectors()]\n"
                           "assert 'biharmonic' in available_inpainters() and 'lpips' in available_metrics()\n"),
}


@pytest.mark.usefixtures("clean_interpreter")
@pytest.mark.parametrize("case", list(CASES))
def test_light_entry_point_imports_no_deep_learning_stack(case: str) -> None:
    assert _heavy_after(CASES[case]) == []


@pytest.mark.usefixtures("clean_interpreter")
def test_loading_and_analysing_a_run_imports_no_deep_learning_stack(tiny_run: Path) -> None:
    body = (f"import ripbench, ripbench.analysis as analysis\n"
            f"table = ripbench.load({str(tiny_run)!r})\n"
            "assert len(table) and 'mse_orig' in table.columns\n"
            "assert analysis.summary_metrics(table) == ['mse_orig']\n"
            "assert analysis.metric_direction('mse_orig') == 1\n")
    assert _heavy_after(body) == []


@pytest.mark.usefixtures("clean_interpreter")
def test_config_validation_still_refuses_unknown_names_without_torch() -> None:
    """Unknown models, metrics, masks and detectors are refused at config time, by name, still without torch."""
    body = ("from ripbench.config import validate_config\nfrom ripbench.errors import ConfigError\n"
            "for bad in ({'models': ['no-such-model']}, {'metrics': {'names': ['no-such-metric']}},\n"
            "            {'masks': [{'policy': 'no-such-mask'}]}, {'hallucination': {'detectors': ['no-such']}},\n"
            "            {'device': 'no-such-device'}):\n"
            "    try:\n        validate_config(bad)\n    except ConfigError as exc:\n"
            "        assert 'no-such' in str(exc) and '\\n' not in str(exc), exc\n"
            "    else:\n        raise AssertionError(f'{bad} was accepted')\n")
    heavy = _heavy_after(body)
    assert heavy in ([], ["torch"])  # only an unusual device string is handed to torch.device to check
    quick = _heavy_after(body.replace(",\n            {'device': 'no-such-device'}", ""))
    assert quick == []


@pytest.mark.slow
@pytest.mark.usefixtures("clean_interpreter")
def test_writing_a_report_imports_no_deep_learning_stack(tiny_run: Path, tmp_path: Path) -> None:
    """The report reads the table and draws figures: no torch (the Simple Shapes ground truth needs none either)."""
    body = ("from ripbench.report import write_report\n"
            f"paths = write_report([{str(tiny_run)!r}], {str(tmp_path / 'report')!r}, n_boot=50)\n"
            "assert paths['html'].is_file()\n")
    assert _heavy_after(body) == []
