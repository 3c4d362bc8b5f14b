"""The footprint and start-time benchmarks' reports: ratios against the floors of the same run, goal verdicts.

Figures are made up here (no timing or memory assertion: measuring is the benchmarks' business).
"""

from __future__ import annotations

from bench import footprint, start_time
from bench.group_core import Memory

SENSOR, INFERENCE = footprint.SENSOR, footprint.INFERENCE


def phase(name: str, core: float, sensor: float, inference: float) -> footprint.Phase:
    return footprint.Phase(name, Memory(core, core * 0.7), {SENSOR: Memory(sensor, sensor * 0.7),
                                                           INFERENCE: Memory(inference, inference * 0.8)},
                           predictions_per_s=9.5, first_prediction_s=0.6)


def test_footprint_goals_use_the_largest_phase_and_the_floors_of_the_same_run():
    measured = footprint.Measured(
        floor_311=Memory(8.0, 4.0), floor_38=Memory(8.0, 5.0),
        phases=[phase("idle", 30.0, 14.0, 30.0), phase("load", 50.0, 19.0, 61.0)],
    )

    section = footprint.section(measured)

    assert "| load (9.5 predictions/s) | core (`simcore run`) | 50.0 MiB | 35.0 MiB | 6.25× | |" in section
    assert "| idle | **group** (core + workers) | 74.0 MiB |" in section
    assert "| core process ≤ 48 MiB RSS | 50.0 MiB (6.25× bare 3.11) | **missed** |" in section
    assert "| group ≤ 128 MiB RSS | 130.0 MiB | **missed** |" in section
    assert "| sensor worker ≤ 2.5× bare 3.8 RSS | 19.0 MiB = 2.38× | met |" in section
    assert "| inference worker ≤ 2.5× bare 3.8 RSS | 61.0 MiB = 7.62× | **missed** |" in section


def test_start_time_reports_medians_and_the_goal():
    measured = start_time.Measured(ipc_listening=[0.3, 0.2, 0.4], first_prediction=[1.4, 1.7, 1.6], bare_311=0.02,
                                   bare_38=0.02, core_imports=0.3, model_load=0.2)

    section = start_time.section(measured)

    assert "| IPC port listening | 0.30 s | 0.30, 0.20, 0.40 | | |" in section
    assert "| first prediction at the cloud subscriber | 1.60 s | 1.40, 1.70, 1.60 | ≤ 1.5 s | **missed** |" in section
