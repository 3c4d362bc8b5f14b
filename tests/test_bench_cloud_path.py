"""The cloud path benchmark runs end to end: every reading's prediction reaches the cloud subscriber.

A very short run (no timing assertions: speed is the benchmark's business, not the test's).
"""

from __future__ import annotations

import pytest

from bench import cloud_path

pytestmark = pytest.mark.skipif(not cloud_path.MODEL_ARCHIVE.is_file(), reason="the model resource is not built")


def test_short_run_predicts_every_reading_and_reports_the_table():
    section = cloud_path.run(readings=5, hop_calls=5, warmup=1)

    assert "Predictions received: 5 of 5 readings sent" in section
    assert "| measure | simcore | hop 1 + hop 2 | ratio | goal | |" in section
    assert "| reading → cloud subscriber p50 |" in section
    assert "| reading → cloud subscriber p99 |" in section
    assert "| 1: `update_thing_shadow` | 5 |" in section
    assert "| 2: `publish` → cloud | 5 |" in section
    assert "dropped 0" in section


def test_section_reports_a_missed_goal_and_lost_readings():
    measured = cloud_path.Measured(
        end_to_end=[0.010, 0.012], hop_shadow=[0.001, 0.002], hop_publish=[0.001, 0.001], warmup=0, planned=3,
        readings=3, predicted=2, output_bytes=200, reading_bytes=230, python="Python 3.8", broker="mosquitto",
        link={"sent": 2, "acked": 2, "dropped": 0}, router={"routed": 6, "dropped_queue_full": 0},
        link_nodelay=False,
    )

    section = cloud_path.section(measured)

    assert "Predictions received: 2 of 3 readings sent." in section
    assert "| reading → cloud subscriber p50 | 11.00 ms | 2.50 ms | 4.40× | ≤ 1.5× | **missed** |" in section
    assert "TCP_NODELAY on the core link's MQTT socket: off" in section
