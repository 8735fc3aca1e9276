"""What entering ripbench costs: whole-process wall time and peak memory of light commands.

Each measurement is a fresh Python process started from the checkout (``cwd`` and
``PYTHONPATH`` = the tree, so its ``ripbench`` is imported), timed from start to exit:

* ``config``: ``python -m ripbench config --preset quick`` (validate and print a config);
* ``analysis + load``: ``python -c "import ripbench, ripbench.analysis; ripbench.load(RUN_DIR)"``
  (load a quick run's results table, the first step of any analysis in a notebook);
* ``--help``: ``python -m ripbench --help``;
* ``pandas alone``: ``python -c "import pandas"`` (the floor for anything that reads a table);
* ``python alone``: ``python -c pass`` (interpreter start-up).

Peak RSS is the child's ``ru_maxrss`` from :func:`os.wait4` (the ``resource.getrusage`` record
of that one child; ``RUSAGE_CHILDREN`` would give the maximum over all children so far). Every
command runs ``--repeat`` times; the table shows medians. One more, untimed run per command
reports which of ``torch``, ``torchvision``, ``lpips``, ``diffusers`` the process imported.

With ``--ref COMMIT`` the older commit is checked out into a temporary git worktree and both
trees are measured alternately (old, new, new, old, ...) so that a busy machine slows both alike.

RUN_DIR is ``--run-dir``, or a quick run made first with ``python -m ripbench run --output-dir TMP``
(about a minute on two CPU cores). ``--out FILE`` writes the numbers as JSON.

    python benchmarks/bench_imports.py --ref 3722c48 --repeat 7 --out results/benchmarks/imports-cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
HEAVY = ("torch", "torchvision", "lpips", "diffusers")


def commands(run_dir: Path) -> dict[str, list[str]]:
    """Label -> the Python arguments of each measured process."""
    return {
        "config": ["-m", "ripbench", "config", "--preset", "quick"],
        "analysis + load": ["-c", f"import ripbench, ripbench.analysis; ripbench.load({str(run_dir)!r})"],
        "--help": ["-m", "ripbench", "--help"],
        "pandas alone": ["-c", "import pandas"],
        "python alone": ["-c", "pass"],
    }


def _env(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree)}


def measure(args: Sequence[str], tree: Path) -> tuple[float, float]:
    """One fresh process: (wall seconds, peak RSS in MiB)."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, *args], cwd=tree, env=_env(tree),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"failed ({proc.returncode}) in {tree}: python {' '.join(args)}\n{err[-3000:]}")
    return wall, usage.ru_maxrss / 1024  # KiB on Linux


def heavy_modules(args: Sequence[str], tree: Path) -> list[str]:
    """Which of :data:`HEAVY` the process imported (the same command, run through ``runpy``)."""
    if args[0] == "-m":
        body = (f"import sys, runpy; sys.argv = {[args[1], *args[2:]]!r}\n"
                f"try:\n    runpy.run_module({args[1]!r}, run_name='__main__', alter_sys=True)\n"
                "except SystemExit:\n    pass\n")
    else:
        body = args[1] + "\n"
    marker = "HEAVY-MODULES:"
    probe = body + f"import sys; print({marker!r} + ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=tree, env=_env(tree), capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"probe failed in {tree}: {done.stderr[-2000:]}")
    last = [line for line in done.stdout.splitlines() if line.startswith(marker)][-1]
    return [m for m in last[len(marker):].split(",") if m]


def machine() -> dict[str, Any]:
    """CPU model, cores, load average and versions (read without importing torch)."""
    if str(HERE) not in sys.path:  # the scripts here share helpers; before_after imports no torch
        sys.path.insert(0, str(HERE))
    from before_after import cpu_model

    model = cpu_model()
    versions = {}
    for dist in ("torch", "pandas", "pydantic", "click"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(), **versions}


def load_average() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"


def quick_run(out: Path) -> Path:
    """A quick-preset run made with this checkout; its run folder."""
    print(f"making a quick run in {out} (about a minute) ...", flush=True)
    done = subprocess.run([sys.executable, "-m", "ripbench", "run", "--output-dir", str(out), "--no-progress"],
                          cwd=REPO, env=_env(REPO), capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"quick run failed:\n{done.stderr[-3000:]}")
    found = [p.parent for p in out.glob("*/manifest.json")]
    if len(found) != 1:
        raise SystemExit(f"expected one run folder in {out}, found {found}")
    return found[0]


def bench(trees: dict[str, Path], run_dir: Path, repeat: int) -> dict[str, Any]:
    cmds = commands(run_dir)
    samples: dict[tuple[str, str], list[tuple[float, float]]] = {(t, c): [] for t in trees for c in cmds}
    for tree in trees.values():  # warm the file cache (and byte-compile) before timing
        for args in cmds.values():
            measure(args, tree)
    order = list(trees)
    for round_ in range(repeat):
        for name in (order if round_ % 2 == 0 else order[::-1]):
            for label, args in cmds.items():
                samples[(name, label)].append(measure(args, trees[name]))
        print(f"round {round_ + 1}/{repeat} done (load {load_average()})", flush=True)
    rows = []
    for label, args in cmds.items():
        for name, tree in trees.items():
            walls = [w for w, _ in samples[(name, label)]]
            rss = [r for _, r in samples[(name, label)]]
            rows.append({"tree": name, "command": label, "argv": ["python", *args],
                         "wall_s": statistics.median(walls), "wall_s_min": min(walls), "wall_s_max": max(walls),
                         "peak_rss_mib": statistics.median(rss), "runs": len(walls),
                         "heavy_imported": heavy_modules(args, tree)})
    return {"rows": rows}


def table(rows: list[dict[str, Any]]) -> str:
    trees = list(dict.fromkeys(r["tree"] for r in rows))
    head = "| command | " + " | ".join(f"{t} s | {t} MiB" for t in trees) + " | heavy modules imported |"
    lines = [head, "| --- |" + " ---: | ---: |" * len(trees) + " --- |"]
    for command in dict.fromkeys(r["command"] for r in rows):
        cells, heavy = [], []
        for t in trees:
            row = next(r for r in rows if r["tree"] == t and r["command"] == command)
            cells.append(f"{row['wall_s']:.2f} | {row['peak_rss_mib']:.0f}")
            heavy.append(f"{t}: {', '.join(row['heavy_imported']) or 'none'}")
        lines.append(f"| {command} | " + " | ".join(cells) + " | " + "; ".join(heavy) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ref", help="an older commit to measure beside this checkout (before / after)")
    p.add_argument("--run-dir", type=Path, help="a quick run's folder to load (default: make one first)")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--out", type=Path, help="write the numbers as JSON here")
    args = p.parse_args(argv)
    started = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S%z")
    load_start = load_average()
    with tempfile.TemporaryDirectory(prefix="ripbench-imports-") as tmp:
        run_dir = args.run_dir.resolve() if args.run_dir else quick_run(Path(tmp) / "runs")
        trees = {"this checkout": REPO}
        if args.ref:
            old = Path(tmp) / "before"
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(old), args.ref],
                           check=True, capture_output=True)
            trees = {f"before ({args.ref})": old, "after": REPO}
        try:
            data = bench(trees, run_dir, args.repeat)
        finally:
            if args.ref:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old)], capture_output=True)
    data = {
        "device": "CPU", "machine": machine(), "started": started, "load_average_start": load_start,
        "load_average_end": load_average(), "repeat": args.repeat,
        "command": "bench_imports.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "what": "whole-process wall time (s) and peak RSS (MiB, the child's ru_maxrss from os.wait4) of fresh "
                "processes started from each tree, medians over `repeat` runs interleaved between trees; "
                "heavy_imported: which of torch, torchvision, lpips, diffusers the process imported",
        **data,
    }
    print(f"\nmachine: {data['machine']}; load average {load_start} at start, {data['load_average_end']} at end\n")
    print(table(data["rows"]))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(data, indent=2) + "\n")
        print(f"\nwrote {args.out}")
    return data


if __name__ == "__main__":
    main()
