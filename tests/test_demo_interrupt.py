"""Ctrl-C during `simcore demo`: the Lambda workers stop, the shadows stay on disk, the summary says so."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

from support.procs import alive, children
from support.waiting import wait_until

from simcore.shadow.engine import ShadowEngine

REPO = Path(__file__).resolve().parents[1]
THING = "RainEdgeCore"


def test_ctrl_c_stops_workers_and_keeps_the_shadows(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    # Slow enough (2 data hours per second) that the replay is still running when Ctrl-C comes.
    demo = subprocess.Popen(
        [sys.executable, "-m", "simcore", "demo", "--no-web", "--root", str(root), "--from", "2013-11-01",
         "--to", "2013-11-10", "--speed", "2", "--metrics-interval", "1"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "COLUMNS": "200"})
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(demo.stdout), daemon=True)
    reader.start()
    try:
        wait_until(lambda: any(re.search(r"[1-9]\d* predictions received", line) for line in lines), timeout_s=120,
                   message=lambda: "the demo to report a prediction; its output:\n" + "".join(lines), interval_s=0.2)
        workers = children(demo.pid)
        assert workers, "the core runs its pinned Lambdas as child processes"
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=120) == 130, "".join(lines)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    reader.join(timeout=10)
    output = "".join(lines)
    assert "replay interrupted" in output
    assert not [pid for pid in workers if alive(pid)], "Lambda workers outlived the demo"
    summary = json.loads((root / "demo-summary.json").read_text())
    assert summary["outcome"] == "interrupted"
    assert 0 < summary["readings_written"] < summary["total_records"]
    with ShadowEngine(root / "core" / "var" / "shadows.sqlite") as shadows:
        reported = shadows.get(THING)["state"]["reported"]
    # The last reading written before the stop is the one the local shadow kept.
    assert reported["seq"] == summary["readings_written"]
    assert (root / "core" / "var" / "spool.sqlite").exists()


def test_sighup_stops_the_demo_like_sigterm_and_leaves_no_broker_or_worker_running(tmp_path: Path) -> None:
    """A closed terminal (SIGHUP) must not orphan mosquitto or the workers; the summary says how far it got."""
    root = tmp_path / "demo"
    demo = subprocess.Popen(
        [sys.executable, "-m", "simcore", "demo", "--no-web", "--root", str(root), "--from", "2013-11-01",
         "--to", "2013-11-10", "--speed", "2", "--metrics-interval", "1"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "COLUMNS": "200"})
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(demo.stdout), daemon=True)
    reader.start()
    try:
        wait_until(lambda: any(re.search(r"[1-9]\d* predictions received", line) for line in lines), timeout_s=120,
                   message=lambda: "the demo to report a prediction; its output:\n" + "".join(lines), interval_s=0.2)
        spawned = children(demo.pid)  # the Lambda workers and, with mosquitto installed, the broker
        assert spawned, "the core runs its pinned Lambdas as child processes"
        demo.send_signal(signal.SIGHUP)
        assert demo.wait(timeout=120) == 130, "".join(lines)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    reader.join(timeout=10)
    output = "".join(lines)
    assert not [pid for pid in spawned if alive(pid)], "the broker or Lambda workers outlived the demo"
    summary = json.loads((root / "demo-summary.json").read_text())
    assert summary["outcome"] == "interrupted"
    read = summary["readings_written"] + summary["invalid_readings"]
    assert f"interrupted after {read} of {summary['total_records']} records" in output
    assert "✗" not in output and "differs" not in output
