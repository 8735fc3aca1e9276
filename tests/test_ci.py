"""`.ci/run` cannot go green by skipping what matters: no chromium is an error, shared LPIPS weights are required."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _tool(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _ci(tmp_path: Path, *, chromium: bool, installable: bool, weights: bool) -> tuple[subprocess.CompletedProcess, str]:
    """Run a copy of .ci/run in a checkout-like folder with stub tools only (apt-get, make, chromium)."""
    repo = tmp_path / "checkout"
    (repo / ".ci").mkdir(parents=True)
    shutil.copy(REPO / ".ci" / "run", repo / ".ci" / "run")
    if weights:
        (tmp_path / "shared" / "lpips-weights").mkdir(parents=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("dirname",):
        os.symlink(shutil.which(name), bin_dir / name)
    log = tmp_path / "make.log"
    _tool(bin_dir, "make", f'echo "make $1 browser=${{RIPBENCH_REQUIRE_BROWSER:-}} lpips=${{RIPBENCH_REQUIRE_LPIPS:-}}" >> {log}')
    if chromium:
        _tool(bin_dir, "chromium", "exit 0")
    if installable:
        _tool(bin_dir, "apt-get", f'[ "$1" = install ] && printf "#!/bin/sh\\n" > {bin_dir}/chromium && '
                                  f"chmod +x {bin_dir}/chromium; exit 0")
    else:
        _tool(bin_dir, "apt-get", 'echo "E: Unable to locate package chromium" >&2; exit 100')
    bash = shutil.which("bash")
    assert bash is not None
    res = subprocess.run([bash, str(repo / ".ci" / "run")], capture_output=True, text=True, timeout=60,
                         env={"PATH": str(bin_dir), "HOME": str(tmp_path)})
    return res, log.read_text() if log.exists() else ""


def test_ci_fails_when_chromium_cannot_be_installed(tmp_path: Path) -> None:
    res, made = _ci(tmp_path, chromium=False, installable=False, weights=False)
    assert res.returncode == 1 and "could not install chromium" in res.stderr, res.stderr
    assert made == ""  # no test ran: the browser tests cannot quietly skip


@pytest.mark.parametrize("chromium, installable", [(True, False), (False, True)])
def test_ci_requires_the_browser_and_the_shared_lpips_weights(tmp_path: Path, chromium: bool,
                                                               installable: bool) -> None:
    res, made = _ci(tmp_path, chromium=chromium, installable=installable, weights=True)
    assert res.returncode == 0, res.stderr
    assert made.splitlines() == ["make lint browser=1 lpips=1", "make test browser=1 lpips=1"]


def test_ci_without_shared_weights_does_not_require_lpips(tmp_path: Path) -> None:
    res, made = _ci(tmp_path, chromium=True, installable=False, weights=False)
    assert res.returncode == 0, res.stderr
    assert made.splitlines() == ["make lint browser=1 lpips=", "make test browser=1 lpips="]
