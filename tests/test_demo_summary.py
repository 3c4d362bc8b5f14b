"""The demo's summary: scores of the replay, losses, and the comparison with the model card."""

from __future__ import annotations

import datetime
import json
import re

from rich.console import Console

from simcore.demo.records import ReplayPeriod
from simcore.demo.state import FINISHED_STATUS, DemoState
from simcore.demo.summary import build_summary, load_model_card, model_card_figures
from simcore.demo.view_summary import print_summary
from simcore.shadow.engine import ShadowEngine
from simcore.shadow.service import ShadowService

THING = "RainEdgeCore"
PERIOD = ReplayPeriod("JFK", datetime.date(2013, 11, 1), datetime.date(2013, 12, 31))
# (p_rain, observed_rain) per reading; threshold 0.5
CASES = [(0.9, True), (0.8, False), (0.2, True), (0.1, False), (0.6, True), (0.3, False)]


def _state_with_predictions(predicted_seqs: list[int], total_records: int = len(CASES) + 1) -> DemoState:
    state = DemoState(THING, total_records=total_records)
    service = ShadowService(ShadowEngine())
    service.listeners.append(state.on_local_shadow)
    for seq, (_, observed) in enumerate(CASES, start=1):
        reported = {"temperature": 5.0, "humidity": 90.0, "pressure": 1000.0, "pressure_tendency_3h": 0.0,
                    "ts": 1383264000 + 3600 * seq, "seq": seq, "observed_rain": observed}
        service.handle(f"$aws/things/{THING}/shadow/update", json.dumps({"state": {"reported": reported}}).encode())
    service.handle(f"$aws/things/{THING}/shadow/update", json.dumps(
        {"state": {"reported": {"sensor": {"status": FINISHED_STATUS, "invalid_readings": 1}}}}).encode())
    for seq in predicted_seqs:
        p_rain, observed = CASES[seq - 1]
        state.on_cloud_message(state.topics.output, json.dumps({
            "thing": THING, "ts": 1383264000 + 3600 * seq, "seq": seq, "p_rain": p_rain, "raining": p_rain >= 0.5,
            "threshold": 0.5, "observed_rain": observed}).encode())
    return state


def _card(**overrides) -> dict:
    entry = {"rows": 6, "rain_hours": 3, "tp": 2, "fp": 1, "tn": 2, "fn": 1, "precision": 2 / 3, "recall": 2 / 3,
             "roc_auc": 6 / 9, "from": "2013-11-01T00:00:00Z", "to": "2013-12-31T23:00:00Z"}
    entry.update(overrides)
    return {"name": "rain-nyc-mlp", "version": "1.0.0+abc", "threshold": 0.5, "metric_tolerance": 0.005,
            "per_station_test": {"JFK": entry}}


def test_a_complete_replay_agrees_with_matching_model_card_figures() -> None:
    summary = build_summary(_state_with_predictions([1, 2, 3, 4, 5, 6]), PERIOD, "complete", 61.0, _card(), None)
    assert summary.messages_lost == 0
    assert summary.invalid_readings == 1
    assert (summary.score.confusion.tp, summary.score.confusion.fp) == (2, 1)
    assert abs(summary.score.roc_auc - 6 / 9) < 1e-12
    assert summary.agrees_with_model_card is True
    assert {row["figure"] for row in summary.comparison} >= {"tp", "fp", "tn", "fn", "precision", "recall", "roc_auc"}


def test_a_differing_figure_is_flagged() -> None:
    summary = build_summary(_state_with_predictions([1, 2, 3, 4, 5, 6]), PERIOD, "complete", 61.0,
                            _card(roc_auc=0.70), None)
    assert summary.agrees_with_model_card is False
    assert [row["figure"] for row in summary.comparison if not row["agrees"]] == ["roc_auc"]


def test_missing_predictions_are_lost_unless_the_model_declined_them() -> None:
    state = _state_with_predictions([1, 2, 3, 4])
    lost = build_summary(state, PERIOD, "stalled", 10.0, None, None)
    assert lost.messages_lost == 2
    assert lost.unanswered_seqs == [5, 6]
    declined = build_summary(state, PERIOD, "complete", 10.0, None,
                             {"counters": {"skipped.no_tendency": 1, "skipped.unchanged": 50}})
    assert declined.messages_lost == 1
    assert declined.declined_detail == {"skipped.no_tendency": 1}
    assert declined.note == "no model card (model.json) in the deployed ML resource"


def test_model_card_figures_apply_only_to_the_cards_test_period() -> None:
    assert model_card_figures(_card(), PERIOD)["tp"] == 2
    november = ReplayPeriod("JFK", datetime.date(2013, 11, 1), datetime.date(2013, 11, 30))
    assert model_card_figures(_card(), november) is None
    summary = build_summary(_state_with_predictions([1, 2]), november, "complete", 1.0, _card(), None)
    assert summary.comparison == [] and summary.agrees_with_model_card is None
    assert "only over its test period" in summary.note


def test_model_card_is_read_from_the_resource_directory(tmp_path) -> None:
    assert load_model_card(tmp_path) is None
    (tmp_path / "model.json").write_text(json.dumps(_card()))
    assert load_model_card(tmp_path)["per_station_test"]["JFK"]["rows"] == 6


def test_printed_summary_shows_the_matrix_scores_and_losses() -> None:
    summary = build_summary(_state_with_predictions([1, 2, 3, 4, 5, 6]), PERIOD, "complete", 61.0, _card(), None)
    console = Console(record=True, width=110, color_system=None)
    print_summary(summary, console)
    output = console.export_text()
    assert "replay complete: station JFK, 2013-11-01 to 2013-12-31, 61.0 s" in output
    assert re.search(r"messages lost\s+│\s+0", output)
    assert re.search(r"predicted rain\s+│\s+2\s+│\s+1", output)
    assert re.search(r"roc_auc\s+│\s+0\.6667\s+│\s+0\.6667", output)
    assert "agrees with the model card's test figures" in output
    assert json.loads(json.dumps(summary.as_dict()))["score"]["tp"] == 2


def test_an_interrupted_replay_says_how_far_it_got_and_compares_nothing_with_the_model_card() -> None:
    # The period is the card's test period, but only 7 of its 1464 records were replayed before the stop.
    state = _state_with_predictions([1, 2, 3], total_records=1464)
    summary = build_summary(state, PERIOD, "interrupted", 5.0, _card(), None)
    assert summary.comparison == [] and summary.agrees_with_model_card is None
    assert summary.note == "interrupted after 7 of 1464 records: nothing compared with the model card"
    console = Console(record=True, width=110, color_system=None)
    print_summary(summary, console)
    output = console.export_text()
    assert "interrupted after 7 of 1464 records" in output
    assert "✗" not in output and "differs" not in output and "model card (test)" not in output
