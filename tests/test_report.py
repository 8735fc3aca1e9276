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
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from ripbench.config import validate_config
from ripbench.report import write_report
from ripbench.run import run_experiment

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


#: The shipped diffusion model on a few Simple Shapes images: hallucination scores and ground truth. Six
#: steps put four in the noise band [0, 0.5] (levels 0, 1/6, 2/6, 3/6), enough for a score.
SHAPES = {"name": "shapes-ddpm", "options": {"steps": 6}, "inputs": {"source": "shapes", "count": 4}, "size": 64,
          "masks": [{"policy": "columns", "count": 3}]}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("report")
    config = _tiny(out, "tiny", models=[{"name": "biharmonic"}, SHAPES], hallucination={"band": 0.5, "unit": "t/T"})
    run = run_experiment(validate_config(config), progress=False)
    return write_report([run.run_dir], n_boot=200)


@pytest.fixture(scope="module")
def two_models(report: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny run and the same images, masks and seeds with another model: a paired comparison."""
    out = tmp_path_factory.mktemp("telea")
    first = report["html"].parents[1]
    second = run_experiment(validate_config(_tiny(out, "tiny-telea", models=[{"name": "telea"}])),
                            progress=False).run_dir
    return write_report([first, second], out / "cmp", n_boot=200, max_strips=4)


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


FIGURES = ("collapse_curves", "model_comparison", "survival", "regions", "hallucination_bands", "roc",
           "image_strips", "drift_heatmap")


def test_report_files_and_self_contained_html(report):
    html_path = report["html"]
    assert html_path.name == "report.html" and html_path.parent.name == "report"
    for key in ("markdown", "summary_csv", "collapse_curves", "survival", "model_comparison", "regions",
                "hallucination_bands", "image_strips", "drift_heatmap"):
        assert report[key].is_file() and report[key].stat().st_size > 0, key
        if report[key].suffix == ".png":
            assert report[key].with_suffix(".pdf").read_bytes()[:5] == b"%PDF-", key
    text = html_path.read_text()
    parser = _Refs()
    parser.feed(text)
    images = [v for tag, name, v in parser.refs if tag == "img"]
    assert len(images) == sum(k in report for k in FIGURES)
    for tag, name, value in parser.refs:  # nothing outside the file: data URIs and in-page anchors only
        assert value.startswith(("data:", "#")), (tag, name, value[:80])
    for uri in images:
        head, data = uri.split(",", 1)
        magic = base64.b64decode(data)[:8]
        assert (head == "data:image/png;base64" and magic == b"\x89PNG\r\n\x1a\n") or \
            (head == "data:image/jpeg;base64" and magic[:3] == b"\xff\xd8\xff")
        assert len(data) < 300_000  # thumbnails, not the full-resolution files
    assert parser.tags.count("script") == 2  # the viewer's data (JSON) and its few lines of script, inline
    assert "@import" not in text and "url(" not in text and "Trajectory viewer" in text
    for words in ("How to read this", "ssim_orig &lt;= 0.5", "Kaplan-Meier", "Full manifest.json", "biharmonic",
                  "grid-16", "fingerprint", "Drift by region", "VAE / pipeline drift", "Hallucination",
                  "Ground truth: Simple Shapes labeller", "Failures", "No failed model call",
                  "Scores use the denoising steps whose noise level t/T lies in the band: shapes-ddpm [0, 0.5]",
                  "SSIM to original (higher is better)", "MSE to original (lower is better)",
                  "LPIPS is not in this run"):
        assert words in text, words
    assert html_path.stat().st_size < 1_000_000
    summary = pd.read_csv(report["summary_csv"])
    assert summary["trajectories"].tolist() == [4, 4, 8] and "median_collapse" in summary.columns
    assert {"ssim_orig_half_life_lo", "ssim_orig_fit", "collapsed_share_lo", "ssim_orig@3_lo"} <= set(summary.columns)
    md = report["markdown"].read_text()
    assert md.startswith("# ripbench report: tiny") and "| model | mask_label |" in md
    assert "(figures/collapse_curves.png)" in md and "## Drift by region" in md
    assert "- Trajectory viewer: in report.html (For each model and mask, a typical, the best" in md


def test_report_pairs_models_across_runs(two_models):
    text = two_models["html"].read_text()
    assert "Runs compared" in text and "Paired comparisons" in text
    assert "Left out of run &#x27;tiny&#x27;: 8 trajectories" in text  # the shapes trajectories: not in both runs
    comparisons = pd.read_csv(two_models["comparisons_csv"])
    assert set(comparisons["a"]) == {"tiny / biharmonic"} and set(comparisons["b"]) == {"tiny-telea / telea"}
    assert comparisons["n"].tolist() == [4, 4, 4, 4]  # 2 images x 2 seeds per mask
    assert comparisons["p"].between(0, 1).all() and (comparisons["p_holm"] >= comparisons["p"]).all()
    assert "\\toprule" in two_models["comparisons_tex"].read_text()
    assert "no two-sided test can reach p &lt; 0.05" in text  # 4 pairs: stated plainly
    assert "image_strips_tiny-telea" in two_models and "drift_heatmap_tiny" in two_models


def test_report_compares_runs_of_different_lengths_on_what_they_share(tmp_path, report):
    first = report["html"].parents[1]
    other = run_experiment(validate_config(_tiny(tmp_path, "long", iterations=4, seeds=[3])), progress=False).run_dir
    paths = write_report([first, other], tmp_path / "cmp", threshold="ssim_orig<=0.9", n_boot=50, max_strips=2)
    text = paths["html"].read_text()
    assert "ssim_orig &lt;= 0.9" in text and "Run long" in text
    assert "Iterations differ (&#x27;tiny&#x27; 0-3, &#x27;long&#x27; 0-4): everything is compared on iterations 0-3" \
        in text
    summary = pd.read_csv(paths["summary_csv"])
    assert summary["run"].tolist() == ["long", "long", "tiny", "tiny"] and "ssim_orig@3" in summary.columns
    assert "comparisons_csv" not in paths  # other seeds: nothing to pair


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


#: What the page looks like to a reader: title, images (loaded? shown how wide?), and every element that
#: sticks out to the right of the viewport or scrolls sideways inside its box.
OVERFLOW_PROBE = """JSON.stringify((() => {
  const vw = document.documentElement.clientWidth;
  const name = e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className ? '.' + e.className : '');
  const all = Array.from(document.querySelectorAll('body *'));
  return {title: document.title, h1: document.querySelector('h1').textContent, viewport: vw,
    pageWidth: document.documentElement.scrollWidth, tables: document.querySelectorAll('table').length,
    images: Array.from(document.images).filter(i => !i.closest('.viewer')).map(i => ({alt: i.alt, complete: i.complete, width: i.naturalWidth,
      height: i.naturalHeight, shown: Math.round(i.getBoundingClientRect().width)})),
    outside: all.filter(e => e.getBoundingClientRect().right > vw + 1).map(name).slice(0, 10),
    scrolling: all.filter(e => e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== 'visible')
      .map(name).slice(0, 10),
    brokenWords: brokenWords()};
  function brokenWords() {  // plain words in table cells split across lines ('match' / 'es'); td.l may break ids
    const out = [];
    for (const cell of document.querySelectorAll('td:not(.l), th')) {
      const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
      for (let node; (node = walker.nextNode());) {
        for (const m of node.textContent.matchAll(/[A-Za-z]+/g)) {
          const r = document.createRange(); r.setStart(node, m.index); r.setEnd(node, m.index + m[0].length);
          if (new Set(Array.from(r.getClientRects()).map(x => Math.round(x.top))).size > 1) out.push(m[0]);
        }
      }
    }
    return out.slice(0, 10);
  }
})())"""


def browse(binary: str, page: Path, screenshot: Path, timeout: float = 60.0,
           interact: Callable[[DevTools], dict] | None = None) -> dict:
    """Load ``page`` in headless chromium; return image sizes, errors and requests; save a screenshot.

    ``interact(tools)``, when given, runs after the page has loaded; what it returns is ``info["interact"]``."""
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
        found = tools.call("Runtime.evaluate", returnByValue=True, expression=OVERFLOW_PROBE)
        info = json.loads(found["result"]["value"])
        if interact is not None:
            info["interact"] = interact(tools)
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


@pytest.mark.parametrize("which", ["one_run", "two_runs"])
def test_report_renders_in_headless_chromium(which, report, two_models, tmp_path):
    """Every image loads, nothing sticks out or scrolls sideways at 1280 px, no console error, no request.

    Set RIPBENCH_SCREENSHOT_DIR to keep the full-page screenshots (to look at them)."""
    binary = _chromium()
    if binary is None:
        _need("chromium is not installed (Debian: apt-get install chromium)")
    try:
        import websocket  # noqa: F401
    except ImportError:
        _need("the websocket-client package is not installed (pip install websocket-client)")
    paths = report if which == "one_run" else two_models
    keep = os.environ.get("RIPBENCH_SCREENSHOT_DIR")
    screenshot = (Path(keep) if keep else tmp_path) / f"report-{which}.png"
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    info = browse(binary, paths["html"], screenshot)
    assert info["title"].startswith("ripbench report") and info["h1"] == info["title"]
    assert len(info["images"]) == sum(k in paths for k in FIGURES if k in paths) + sum(
        1 for k in paths if k.startswith(("image_strips_", "drift_heatmap_")))
    for img in info["images"]:
        assert img["complete"] and img["width"] > 0 and img["height"] > 0, img
        assert 0 < img["shown"] <= info["viewport"], img
    assert info["viewport"] >= 1200 and info["pageWidth"] <= info["viewport"], info
    assert info["outside"] == [] and info["scrolling"] == [], info
    assert info["brokenWords"] == [], info["brokenWords"]  # e.g. the baseline table's verdict read 'match/es'
    assert info["tables"] >= 4
    assert info["errors"] == []
    page_url = paths["html"].resolve().as_uri()
    assert [u for u in info["requests"] if u != page_url and not u.startswith("data:")] == []
    from PIL import Image

    with Image.open(screenshot) as shot:
        assert shot.width >= 1200 and shot.height > 3000


#: The viewer's state as the reader sees it: the shown image (and whether it loaded), the outline, the numbers.
VIEWER_STATE = """JSON.stringify((() => {
  const $ = id => document.getElementById(id), img = $('v-img'), box = $('v-box'), orig = $('v-orig');
  return {src: img.src, loaded: img.complete && img.naturalWidth > 0, orig: orig.complete && orig.naturalWidth > 0,
    box: !box.hidden && box.complete && box.naturalWidth > 0, caption: $('v-cap').textContent,
    numbers: Array.from($('v-nums').rows).map(r => [r.cells[0].textContent, r.cells[1].textContent]),
    which: $('v-which').textContent, value: +$('v-slider').value, max: +$('v-slider').max,
    group: $('v-group').value, groups: $('v-group').options.length, picks: Array.from($('v-pick').options).map(o => o.value),
    shown: Math.round(img.getBoundingClientRect().width)};
})())"""


def _drive_viewer(tools: DevTools) -> dict:
    """Move the viewer's slider with the mouse, then with the arrow keys, then pick another trajectory."""
    def state() -> dict:
        return json.loads(tools.call("Runtime.evaluate", returnByValue=True, expression=VIEWER_STATE)["result"]["value"])

    def key(name: str, code: int) -> None:
        for kind in ("keyDown", "keyUp"):
            tools.call("Input.dispatchKeyEvent", type=kind, key=name, code=name, windowsVirtualKeyCode=code)

    tools.call("Runtime.evaluate", expression="document.getElementById('viewer').scrollIntoView({block: 'center'})")
    steps = {"start": state()}
    rect = json.loads(tools.call("Runtime.evaluate", returnByValue=True, expression=(
        "JSON.stringify(document.getElementById('v-slider').getBoundingClientRect())"))["result"]["value"])
    x, y = rect["left"] + 3, rect["top"] + rect["height"] / 2  # the slider's left end: the first saved iteration
    for kind in ("mousePressed", "mouseReleased"):
        tools.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)
    steps["mouse"] = state()
    key("ArrowRight", 39)  # the focused slider moves one saved iteration
    steps["slider_key"] = state()
    tools.call("Runtime.evaluate", expression="document.activeElement.blur()")
    key("ArrowLeft", 37)  # nothing focused: the page's key handler moves the slider
    steps["page_key"] = state()
    tools.call("Runtime.evaluate", expression=(
        "(() => { const p = document.getElementById('v-pick'); p.value = 'worst'; "
        "p.dispatchEvent(new Event('change')); })()"))
    steps["worst"] = state()
    tools.call("Runtime.evaluate", expression=(
        "(() => { const g = document.getElementById('v-group'); g.value = g.options.length - 1; "
        "g.dispatchEvent(new Event('change')); })()"))
    steps["last_group"] = state()
    return steps


def test_trajectory_viewer_in_headless_chromium(report, tmp_path):
    """Moving the slider (mouse, arrow keys) changes the image and the numbers; picks and groups switch the
    trajectory; every viewer image loads; no console error; nothing scrolls sideways at 1280 px."""
    binary = _chromium()
    if binary is None:
        _need("chromium is not installed (Debian: apt-get install chromium)")
    try:
        import websocket  # noqa: F401
    except ImportError:
        _need("the websocket-client package is not installed (pip install websocket-client)")
    info = browse(binary, report["html"], tmp_path / "viewer.png", interact=_drive_viewer)
    steps = info["interact"]
    start, mouse, slider_key, page_key = steps["start"], steps["mouse"], steps["slider_key"], steps["page_key"]
    assert info["errors"] == [] and info["outside"] == [] and info["scrolling"] == [], info
    assert start["groups"] == 3 and start["picks"] == ["typical", "best", "worst"]  # 2 grid masks + shapes columns
    assert start["max"] >= 1 and start["value"] == start["max"]  # opens on the last saved iteration
    for step in steps.values():
        assert step["loaded"] and step["orig"] and step["box"] and step["shown"] == 256, step
        assert step["caption"].startswith("iteration ") and step["numbers"], step
    assert mouse["value"] == 0 and mouse["src"] != start["src"] and mouse["numbers"] != start["numbers"]
    assert mouse["caption"] != start["caption"]
    assert slider_key["value"] == 1 and slider_key["src"] != mouse["src"] and slider_key["numbers"] != mouse["numbers"]
    assert page_key["value"] == 0 and page_key["src"] == mouse["src"] and page_key["numbers"] == mouse["numbers"]
    names = [name for name, _ in start["numbers"]]
    assert names[:2] == ["SSIM to original (higher is better)", "MSE to original (lower is better)"]
    assert any(name.startswith("collapsed (ssim_orig <= 0.5)") for name in names) and "repainted box" in names
    assert steps["worst"]["which"].startswith("worst: the most drift by final SSIM to original")
    last = steps["last_group"]  # the shapes model: hallucination score and ground truth at every iteration
    assert last["picks"] == ["typical", "best", "worst"] and last["which"].startswith("worst")
    last_names = [name for name, _ in last["numbers"]]
    assert "ground truth" in last_names and any(n.startswith("hallucination score") for n in last_names)
    assert "ground truth" not in names  # photos have none: no row, rather than 'unknown'


def test_trajectory_viewer_picks_and_keeps_to_its_byte_budget(report):
    """Typical, best and worst by the final value in the metric's direction; over the byte budget, fewer saved
    iterations are embedded (the last kept) and the caption says so."""
    from ripbench import analysis
    from ripbench.report.tables import trajectory_picks
    from ripbench.report.viewer import build_viewer

    table = analysis.load_runs(report["html"].parents[1])
    rule = analysis.collapse_rule(table)
    assert rule.metric == "ssim_orig"  # higher is better: the best trajectory ends with the highest SSIM
    final = table[table["iteration"] == table["iteration"].max()].set_index("trajectory_id")["ssim_orig"]
    for key, picks in trajectory_picks(table, rule.metric, ["model", "mask_label"]):
        group = final[[t for t in final.index if t.startswith(f"{key[0]}__") and f"__{key[1]}__" in t]]
        assert final[picks["best"]] == group.max() and final[picks["worst"]] == group.min(), key
    full = build_viewer(table, rule)
    assert full is not None and not full.thinned and "At most" not in full.caption()
    frames = [len(t["frames"]) for t in full.trajectories]
    small = build_viewer(table, rule, budget=len(full.html()) // 2)
    assert small is not None and small.thinned and "At most" in small.caption()
    thinned = [len(t["frames"]) for t in small.trajectories]
    assert all(a <= b for a, b in zip(thinned, frames, strict=True)) and sum(thinned) < sum(frames)
    assert len(small.html()) < len(full.html())
    assert all(t["frames"][-1]["cap"] == f["frames"][-1]["cap"] for t, f in zip(small.trajectories, full.trajectories))


def test_report_of_a_synthetic_run_with_failures_and_ground_truth(tmp_path):
    """Every section from a synthetic run folder (no model runs): pairs, regions, ROC, a failed trajectory."""
    from ripbench.store import RunStore
    from tests.test_plots import synthetic_run

    folder = tmp_path / "synthetic"
    table = synthetic_run(folder)
    failed = (table["trajectory_id"] == "beta__dog__grid-16__s1") & (table["iteration"] >= 5)
    table.loc[failed, "failed"] = True
    table["failure"] = table["failed"].map({True: "nan: 3 NaN values", False: ""})
    for part in RunStore(folder).part_files():
        part.unlink()
    RunStore(folder).write_part(table.drop(columns="run"))
    paths = write_report(folder, tmp_path / "out", n_boot=100)
    text = paths["html"].read_text()
    for words in ("Fastest drift: beta / grid-128", "LPIPS to original (lower is better)", "Paired comparisons",
                  "Detecting hallucinated outputs by x0 variance", "1 of 24 trajectories had a failed model "
                  "call", "nan: 3 NaN values",
                  # synthetic models declare no space: the finding names no VAE it cannot know of
                  "never-masked pixels", "does not declare whether it has a VAE"):
        assert words in text, words
    failures = pd.read_csv(paths["failures_csv"])
    assert failures[["model", "image_id", "mask_label", "seed", "iteration", "last_good"]].values.tolist() == [
        ["beta", "dog", "grid-16", 1, 5, 4]]
    comparisons = pd.read_csv(paths["comparisons_csv"])
    assert comparisons["mask_label"].tolist() == ["grid-8"] * 2 + ["grid-16"] * 2 + ["grid-128"] * 2  # by area
    assert comparisons.loc[comparisons["mask_label"] == "grid-16", "n"].tolist() == [3, 3]  # the failed pair left out
    assert (comparisons["worse"][:4] == "beta").all()  # beta drifts 1.5 times as fast...
    assert comparisons["worse"][4:].tolist() == ["neither", "beta"]  # ...but both end at LPIPS 1 on grid-128
    assert paths["html"].stat().st_size < 1_000_000


def test_page_template_and_style_are_package_files():
    """The page's frame and CSS ship as package data (pyproject's package-data) and are read from there."""
    from importlib import resources

    from ripbench.report.html import page_css

    files = resources.files("ripbench.report")
    assert page_css() == files.joinpath("report.css").read_text(encoding="utf-8")
    assert "box-sizing" in page_css()
    page = files.joinpath("page.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "$title" in page and "$body" in page and "$css" in page


def test_table_cells_do_not_split_plain_words_in_chromium(tmp_path):
    """The quick report's 'Scores against the best content baseline' table squeezed its verdict column until
    'matches' read 'match' / 'es' (main's overflow-wrap:anywhere let any word break to save width)."""
    binary = _chromium()
    if binary is None:
        _need("chromium is not installed (Debian: apt-get install chromium)")
    try:
        import websocket  # noqa: F401
    except ImportError:
        _need("the websocket-client package is not installed (pip install websocket-client)")
    from ripbench.report.html import _html_table, page_css

    rows = [{"score": f"{name} (control of x0 variance ({name}))", "kind": kind, "AUROC [CI]": "1.00 [1.00, 1.00]",
             "minus best baseline [CI]": "+0.00 [+0.00, +0.00]", "content-matched AUROC [CI]": "n/a",
             "n": "3 / 99 (6 traj.)", "verdict": verdict}
            for name, kind, verdict in [("foreground pixels in region", "best content baseline (no model)", ""),
                                        ("x0 variance (repainted region)", "detector", "matches"),
                                        ("x0 variance (whole image)", "detector", "loses to")] * 3]
    page = tmp_path / "table.html"
    page.write_text(f"<!doctype html><html><head><title>t</title><style>{page_css()}</style></head><body><main>"
                    f"<h1>t</h1>{_html_table(pd.DataFrame(rows))}</main></body></html>")
    info = browse(binary, page, tmp_path / "table.png")
    assert info["brokenWords"] == [] and info["outside"] == [] and info["scrolling"] == [], info
