"""`simcore demo` end to end: stand-in cloud, the group deployed from its template with a replay, the core
with shadow sync, the observer; every written reading gets its prediction in the cloud, none is lost.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from simcore.demo.flags import add_demo_flags
from simcore.demo.run import DemoRun
from simcore.demo.summary import load_model_card


def demo_args(root: Path, *flags: str) -> argparse.Namespace:
    """The demo's flags parsed as the CLI parses them."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=Path)
    add_demo_flags(parser)
    return parser.parse_args(["--root", str(root), "--no-web", *flags])


def test_short_replay_completes_with_every_reading_predicted_and_nothing_lost(tmp_path: Path) -> None:
    args = demo_args(tmp_path / "demo", "--from", "2013-11-01", "--to", "2013-11-03", "--speed", "48",
                     "--metrics-interval", "1", "--stall-timeout", "60")
    summary = DemoRun(args, Console(file=io.StringIO())).run()
    assert summary.outcome == "complete"
    assert summary.messages_lost == 0
    assert summary.readings_written + summary.invalid_readings == summary.total_records
    assert summary.predictions_received + summary.declined_by_model == summary.readings_written
    assert summary.predictions_received > 0
    assert summary.score is not None and summary.score.rows == summary.predictions_received
    written = json.loads((tmp_path / "demo" / "demo-summary.json").read_text())
    assert written["messages_lost"] == 0 and written["outcome"] == "complete"
    # Every finished hour's readings went through the stream manager into the local S3.
    landed = written["readings_in_s3"]
    # Only this run's (each run has a readings folder of its own), and not the last hour, still open at the end.
    assert landed["objects"] > 0 and 0 < landed["records"] < summary.predictions_received
    # The connectors' metrics and feedback, read back from the stand-in's local AWS (CloudWatch, S3).
    local_aws = summary.local_aws
    assert local_aws is not None and "error" not in local_aws, local_aws
    assert local_aws["metrics"] and all(metric["count"] > 0 for metric in local_aws["metrics"]), local_aws
    assert list(local_aws["feedback"]) and written["local_aws"] == local_aws
    # Shadows and the spool stay on disk after the stop.
    assert (tmp_path / "demo" / "core" / "var" / "shadows.sqlite").exists()
    assert (tmp_path / "demo" / "cloud" / "cloud-shadows.sqlite").exists()


@pytest.mark.slow
def test_replaying_the_test_period_agrees_with_the_model_card(tmp_path: Path) -> None:
    # 60 data hours a second: twice the demo's pace, with room for a loaded machine (the pipeline's own rate is
    # a benchmark's business, not this test's).
    args = demo_args(tmp_path / "demo", "--station", "JFK", "--speed", "60", "--stall-timeout", "120")
    summary = DemoRun(args, Console(file=io.StringIO())).run()
    assert summary.outcome == "complete"
    assert summary.messages_lost == 0
    card_dir = next((tmp_path / "demo" / "core").rglob("model.json")).parent
    assert load_model_card(card_dir) is not None
    failed = [row for row in summary.comparison if not row["agrees"]]
    assert summary.comparison and not failed, failed
    assert summary.agrees_with_model_card is True
