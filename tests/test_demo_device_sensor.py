"""`simcore demo --sensor device`: the sensor as a Greengrass device (AWSIoTPythonSDK, discovery at the
core), its readings written to the shadow by the ReadingToShadow Lambda; the same scored summary as the
default pinned sensor Lambda over the same records."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

from rich.console import Console
from test_demo_end_to_end import demo_args

from simcore.demo.run import DemoRun

PERIOD = ("--from", "2013-11-20", "--to", "2013-11-22", "--speed", "48", "--metrics-interval", "1",
          "--stall-timeout", "60")


def test_the_device_sensor_demo_ends_with_the_same_scored_summary_as_the_lambda_one(tmp_path: Path) -> None:
    by_device = DemoRun(demo_args(tmp_path / "device", *PERIOD, "--sensor", "device"),
                        Console(file=io.StringIO())).run()
    by_lambda = DemoRun(demo_args(tmp_path / "lambda", *PERIOD), Console(file=io.StringIO())).run()
    assert by_device.outcome == by_lambda.outcome == "complete"
    assert by_device.messages_lost == by_lambda.messages_lost == 0
    assert by_device.predictions_received > 0
    for figure in ("total_records", "readings_written", "invalid_readings", "predictions_received",
                   "declined_by_model"):
        assert getattr(by_device, figure) == getattr(by_lambda, figure), figure
    assert dataclasses.asdict(by_device.score) == dataclasses.asdict(by_lambda.score)
    # The device really was the sensor: it connected to the core and published every reading.
    log = (tmp_path / "device" / "sensor-device.log").read_text()
    assert "connected to the core at 127.0.0.1:" in log
