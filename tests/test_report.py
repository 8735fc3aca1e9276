"""The HTML report: self-contained, complete, and rendering in a real headless browser."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from ripbench.config import validate_config
from ripbench.errors import ResultsError
from ripbench.harness import run_experiment
from ripbench.report import write_report

pytestmark = pytest.mark.slow  # a real run plus report: ~15-25 s on a loaded 2-core machine

REQUIRE_BROWSER = os.environ.get("RIPBENCH_REQUIRE_BROWSER") == "1"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _tiny(output_dir: Path, name: str, **changes: object) -> dict:
    data = {"name": name, "iterations": 3, "size": 32, "seeds": [0, 1],
            "inputs": {"source": "samples", "names": ["astronaut", "coffee"]},
            "masks": [{"policy": "grid", "size": 8}, {"policy": "grid", "size": 16}],
            "models": [{"name": "biharmonic"}], "metrics": {"names": ["ssim", "mse"]},
            "batch_size": 4, "output_dir": str(output_dir)}
    return {**data, **changes}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("report")
    run = run_experiment(validate_config(_tiny(out, "tiny")), progress=False)
    return write_report([run.run_dir], n_boot=200)


class _Refs(HTMLParser):
    """Collects every src/href and the tags of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "srcset", "poster", "data"):
                self.refs.append((tag, name, value or ""))


def test_report_files_and_self_contained_html(report):
    html_path = report["html"]
    assert html_path.name == "report.html" and html_path.parent.name == "report"
    for key in ("markdown", "summary_csv", "collapse_curves", "survival", "model_comparison", "image_strips",
                "drift_heatmap"):
        assert report[key].is_file() and report[key].stat().st_size > 0, key
        if report[key].suffix == ".png":
            assert report[key].with_suffix(".svg").is_file()
    text = html_path.read_text()
    parser = _Refs()
    parser.feed(text)
    images = [v for tag, name, v in parser.refs if tag == "img"]
    assert len(images) == sum(k in report for k in ("collapse_curves", "survival", "model_comparison",
                                                    "categories", "image_strips", "drift_heatmap"))
    for tag, name, value in parser.refs:  # nothing outside the file: data URIs and in-page anchors only
        assert value.startswith(("data:", "#")), (tag, name, value[:80])
    for uri in images:
        assert base64.b64decode(uri.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "script" not in parser.tags and "@import" not in text and "url(" not in text
    for words in ("How to read this", "ssim_orig &lt;= 0.5", "Kaplan-Meier", "Full manifest.json", "biharmonic",
                  "grid-16", "fingerprint"):
        assert words in text, words
    summary = pd.read_csv(report["summary_csv"])
    assert summary["trajectories"].tolist() == [4, 4] and "median_collapse" in summary.columns
    md = report["markdown"].read_text()
    assert md.startswith("# ripbench report: tiny") and "| model | mask_label |" in md
    assert "(figures/collapse_curves.png)" in md


def test_report_compares_runs_and_refuses_incompatible(tmp_path, report):
    first = report["html"].parents[1]
    second = run_experiment(validate_config(_tiny(tmp_path, "tiny-b", seeds=[3])), progress=False).run_dir
    paths = write_report([first, second], tmp_path / "cmp", threshold="ssim_orig<=0.9", n_boot=50, max_strips=2)
    text = paths["html"].read_text()
    assert "ssim_orig &lt;= 0.9" in text and "Run tiny-b" in text
    assert "image_strips_tiny-b" in paths and "drift_heatmap_tiny" in paths
    assert pd.read_csv(paths["summary_csv"])["run"].tolist() == ["tiny", "tiny", "tiny-b", "tiny-b"]
    other = run_experiment(validate_config(_tiny(tmp_path, "long", iterations=4)), progress=False).run_dir
    with pytest.raises(ResultsError, match="iterations differ"):
        write_report([first, other], tmp_path / "bad")


# -- the browser check ----------------------------------------------------------------------------------

def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _need(reason: str) -> None:
    if REQUIRE_BROWSER:
        pytest.fail(f"RIPBENCH_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


class DevTools:
    """A minimal Chrome DevTools protocol client over one page's websocket."""

    def __init__(self, ws_url: str, timeout: float) -> None:
        import websocket

        self.ws = websocket.create_connection(ws_url, timeout=timeout, suppress_origin=True)
        self.events: list[dict] = []
        self.next_id = 0

    def call(self, method: str, **params: object) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, method: str) -> None:
        while not any(e.get("method") == method for e in self.events):
            self.events.append(json.loads(self.ws.recv()))

    def close(self) -> None:
        self.ws.close()


def browse(binary: str, page: Path, screenshot: Path, timeout: float = 60.0) -> dict:
    """Load ``page`` in headless chromium; return image sizes, errors and requests; save a screenshot."""
    profile = tempfile.mkdtemp(prefix="ripbench-chromium-")
    proc = subprocess.Popen([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                             "--window-size=1280,900", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        port_file = Path(profile) / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (port_file.is_file() and port_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"chromium did not start: {proc.stderr.read().decode(errors='replace')[-2000:]}")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            targets = json.loads(resp.read())
        tools = DevTools(next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page"), timeout)
        for domain in ("Page", "Runtime", "Log", "Network"):
            tools.call(f"{domain}.enable")
        tools.call("Page.navigate", url=page.resolve().as_uri())
        tools.wait_for("Page.loadEventFired")
        found = tools.call("Runtime.evaluate", returnByValue=True, expression=(
            "JSON.stringify({title: document.title, h1: document.querySelector('h1').textContent,"
            " images: Array.from(document.images).map(i => ({alt: i.alt, complete: i.complete,"
            " width: i.naturalWidth, height: i.naturalHeight})), tables: document.querySelectorAll('table').length})"))
        info = json.loads(found["result"]["value"])
        shot = tools.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        events = tools.events
        tools.close()
        info["errors"] = [e["params"] for e in events if e.get("method") == "Runtime.exceptionThrown"
                          or (e.get("method") == "Runtime.consoleAPICalled" and e["params"].get("type") == "error")
                          or (e.get("method") == "Log.entryAdded" and e["params"]["entry"].get("level") == "error")]
        info["requests"] = [e["params"]["request"]["url"] for e in events
                            if e.get("method") == "Network.requestWillBeSent"]
        return info
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


def test_report_renders_in_headless_chromium(report, tmp_path):
    binary = _chromium()
    if binary is None:
        _need("chromium is not installed (Debian: apt-get install chromium)")
    try:
        import websocket  # noqa: F401
    except ImportError:
        _need("the websocket-client package is not installed (pip install websocket-client)")
    screenshot = tmp_path / "report.png"
    info = browse(binary, report["html"], screenshot)
    assert info["title"].startswith("ripbench report") and info["h1"] == info["title"]
    assert len(info["images"]) >= 5
    for img in info["images"]:
        assert img["complete"] and img["width"] > 0 and img["height"] > 0, img
    assert info["tables"] >= 3
    assert info["errors"] == []
    page_url = report["html"].resolve().as_uri()
    assert [u for u in info["requests"] if u != page_url and not u.startswith("data:")] == []
    from PIL import Image

    with Image.open(screenshot) as shot:
        assert shot.width >= 1000 and shot.height > 2000
