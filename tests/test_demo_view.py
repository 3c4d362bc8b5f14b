"""The demo's terminal view shows the latest reading, P(rain) vs observed, shadow versions and core counters."""

from __future__ import annotations

import io
import json
import re

from rich.console import Console

from simcore.demo.state import DemoState
from simcore.demo.view_terminal import TerminalView, rain_bar
from simcore.shadow.engine import ShadowEngine
from simcore.shadow.service import ShadowService

THING = "RainEdgeCore"


def _state() -> DemoState:
    state = DemoState(THING, total_records=10)
    service = ShadowService(ShadowEngine())
    service.listeners.append(state.on_local_shadow)
    reported = {"seq": 1, "ts": 1383264000, "temperature": 7.25, "humidity": 93.0, "pressure": 1008.4,
                "pressure_tendency_3h": -1.6, "observed_rain": True, "sensor": {"status": "ok"}}
    service.handle(f"$aws/things/{THING}/shadow/update", json.dumps({"state": {"reported": reported}}).encode())
    state.on_cloud_message(state.topics.output, json.dumps({
        "thing": THING, "ts": 1383264000, "seq": 1, "p_rain": 0.83, "raining": True, "threshold": 0.42,
        "observed_rain": True, "latency_us": 310}).encode())
    state.on_cloud_message(state.topics.shadow_documents, json.dumps({"current": {"version": 5}}).encode())
    state.set_core_status({"router": {"routed": 57, "dropped_unmatched": 0, "unrouted_no_subscription": 31,
                                      "dropped_queue_full": 0},
                           "cloud": {"state": "connected", "spooled": 2}})
    return state


def test_frame_shows_reading_prediction_versions_and_counters() -> None:
    console = Console(record=True, width=120, color_system=None, file=io.StringIO())
    view = TerminalView(_state(), "simcore demo", console)
    console.print(view.render())
    frame = console.export_text()
    for expected in (r"2013-11-01 00:00Z", r"7\.2 °C", r"93\.0 %RH", r"1008\.4 hPa", r"-1\.6 hPa",
                     r"P\(rain\)\s+0\.830 █+░+", r"threshold\s+0\.420", r"predicted\s+rain", r"observed\s+rain",
                     r"local 1 · cloud 5", r"routed\s+57", r"unrouted: no subscription\s+31",
                     r"dropped: unmatched\s+0", r"dropped: queue full\s+0",
                     r"spooler depth\s+2", r"1/10 records",
                     r"pred\. rain\s+│\s+1\s+│\s+0"):
        assert re.search(expected, frame), expected


def test_without_a_terminal_it_prints_plain_progress_lines() -> None:
    output = io.StringIO()
    console = Console(file=output, force_terminal=False, width=200)
    view = TerminalView(_state(), "simcore demo", console, web_url="http://127.0.0.1:8080/")
    view.open()
    view.update()
    view.close()
    text = output.getvalue()
    assert "simcore demo; web view on http://127.0.0.1:8080/" in text
    assert ("replay 1/10 records; 1 readings written, 1 predictions received; routed 57, "
            "unrouted (no subscription) 31, dropped 0, spooled 2") in text


def test_rain_bar_fills_in_proportion() -> None:
    assert rain_bar(0.5, width=10) == "█████░░░░░"
    assert rain_bar(1.7, width=4) == "████"
