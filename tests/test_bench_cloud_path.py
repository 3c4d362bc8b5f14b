"""The cloud path benchmark runs end to end: every reading's prediction reaches the cloud subscriber.

A very short run (no timing assertions: speed is the benchmark's business, not the test's).
"""

from __future__ import annotations

import pytest

from bench import cloud_path

pytestmark = pytest.mark.skipif(not cloud_path.MODEL_ARCHIVE.is_file(), reason="the model resource is not built")


def test_short_run_predicts_every_reading_and_measures_every_leg_of_the_floor():
    section = cloud_path.run(readings=5, hop_calls=5, warmup=1)

    assert "Predictions received: 5 of 5 readings sent" in section
    assert "| measure | simcore | floor (sum of the legs) | ratio | goal | |" in section
    assert "| reading → cloud subscriber p50 |" in section
    assert "| reading → cloud subscriber p99 |" in section
    for label, _ in cloud_path.LEGS:
        assert f"| {label} | 5 |" in section  # each leg measured as many times as asked
    for stage, _ in cloud_path.STAGES:
        assert f"| {stage} |" in section
    assert "dropped 0" in section
    # The core link's socket is found once the link says it is connected.
    assert "TCP_NODELAY on the core link's MQTT socket: on" in section


def test_section_sums_the_legs_into_the_floor_and_reports_a_missed_goal():
    measured = cloud_path.Measured(
        end_to_end=[0.010, 0.012], hop_shadow=[0.001, 0.002], hop_publish=[0.001, 0.001], warmup=0, planned=3,
        readings=3, predicted=2, output_bytes=200, reading_bytes=230, python="Python 3.8", broker="mosquitto",
        link={"sent": 2, "acked": 2, "dropped": 0}, router={"routed": 6, "dropped_queue_full": 0},
        link_nodelay=False, hop_handoff=[0.0005, 0.0005], hop_mqtt=[0.001, 0.002],
    )

    section = cloud_path.section(measured)

    assert "Predictions received: 2 of 3 readings sent." in section
    # Floor p50 = 1.5 + 0.5 + 1.0 + 1.5 ms = 4.5 ms; path p50 = 11 ms.
    assert "| reading → cloud subscriber p50 | 11.00 ms | 4.50 ms | 2.44× | ≤ 1.5× | **missed** |" in section
    assert "| reading → cloud subscriber p99 | 12.00 ms | 5.50 ms | 2.18× | ≤ 2.0× | **missed** |" in section
    assert "| what the path adds beyond its legs | | 6.50 ms | | | 59% |" in section
    assert "TCP_NODELAY on the core link's MQTT socket: off" in section
