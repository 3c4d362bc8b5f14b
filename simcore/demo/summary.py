"""The demo's closing summary: how good the predictions were, against the model card, and what was lost.

Scoring uses the Lambda's own decision (`raining` in each prediction) for the confusion matrix, precision
and recall, and `p_rain` for ROC-AUC. The model card (`model.json` in the deployed ML resource) holds
`per_station_test[<station>]`: the same figures for each station's test period as training computed
them; a replay of exactly that period is compared with it figure by figure.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field
from pathlib import Path

from simcore.demo.records import ReplayPeriod
from simcore.demo.scoring import Score, confusion, precision, recall, roc_auc
from simcore.demo.state import DemoState, Prediction

MODEL_CARD_FILE = "model.json"
MAX_SEQS_LISTED = 20
DEFAULT_TOLERANCE = 0.005  # the model card's `metric_tolerance` when it has none
# The inference Lambda's metric counters for readings it saw but did not predict on (not losses).
DECLINED_COUNTERS = ("skipped.no_tendency", "skipped.paused", "error.feature", "error.model", "error.bad_document")


@dataclass
class Summary:
    """Everything the demo reports at the end; `as_dict()` is what demo-summary.json holds."""

    station: str
    date_from: str
    date_to: str
    outcome: str  # "complete", "stalled" or "interrupted"
    duration_s: float
    total_records: int
    readings_written: int
    invalid_readings: int
    predictions_received: int
    declined_by_model: int
    declined_detail: dict
    duplicate_predictions: int
    messages_lost: int
    score: Score | None
    unanswered_seqs: list[int] = field(default_factory=list)  # the first readings with no prediction
    model_card: dict | None = None
    comparison: list[dict] = field(default_factory=list)
    agrees_with_model_card: bool | None = None
    note: str = ""
    local_aws: dict | None = None  # the metrics and feedback objects read back from the stand-in's local AWS

    def as_dict(self) -> dict:
        """JSON-ready."""
        values = dict(self.__dict__)
        values["score"] = self.score.as_dict() if self.score else None
        return values


def score_predictions(predictions: list[Prediction]) -> Score | None:
    """The figures over predictions that carry an observed outcome; None when there are none."""
    scored = [p for p in predictions if p.observed_rain is not None]
    if not scored:
        return None
    observed = [bool(p.observed_rain) for p in scored]
    counts = confusion(observed, [p.raining for p in scored])
    return Score(counts, precision(counts), recall(counts), roc_auc(observed, [p.p_rain for p in scored]),
                 rows=counts.total, rain_hours=counts.tp + counts.fn)


def load_model_card(model_dir: Path | None) -> dict | None:
    """model.json from the deployed ML resource, or None when there is none."""
    if model_dir is None:
        return None
    path = Path(model_dir) / MODEL_CARD_FILE
    try:
        card = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return card if isinstance(card, dict) else None


def model_card_figures(card: dict | None, period: ReplayPeriod) -> dict | None:
    """The card's test figures for this station, when the replay covers exactly its test period.

    A replay covers it when it starts on the period's first day and ends on or after its last record.
    """
    if not card:
        return None
    entry = (card.get("per_station_test") or {}).get(period.station)
    if not isinstance(entry, dict):
        return None
    try:
        card_from = datetime.datetime.fromisoformat(str(entry["from"]).replace("Z", "+00:00")).date()
        card_to = datetime.datetime.fromisoformat(str(entry["to"]).replace("Z", "+00:00")).date()
    except (KeyError, ValueError):
        return None
    # The test period runs from `from` to the end of the data; `to` is the station's last test record.
    if period.date_from != card_from or period.date_to < card_to:
        return None
    return entry


def compare(score: Score, card_entry: dict, tolerance: float) -> tuple[list[dict], bool]:
    """Rows of (figure, replay, model card, agrees); counts must match exactly, rates within `tolerance`."""
    replay = score.as_dict()
    rows = []
    for name in ("rows", "rain_hours", "tp", "fp", "tn", "fn"):
        if name in card_entry:
            rows.append({"figure": name, "replay": replay[name], "model_card": card_entry[name],
                         "agrees": replay[name] == card_entry[name]})
    for name in ("precision", "recall", "roc_auc"):
        card_value = card_entry.get(name)
        if card_value is None:
            continue
        value = replay[name]
        rows.append({"figure": name, "replay": value, "model_card": card_value,
                     "agrees": value is not None and abs(value - card_value) <= tolerance})
    return rows, all(row["agrees"] for row in rows) if rows else False


def build_summary(state: DemoState, period: ReplayPeriod, outcome: str, duration_s: float,
                  model_card: dict | None, lambda_metrics: dict | None) -> Summary:
    """The summary of a finished (or stopped) demo run."""
    progress = state.progress()
    predictions = state.received_predictions()
    counters = (lambda_metrics or {}).get("counters") or {}
    declined_detail = {name: int(counters[name]) for name in DECLINED_COUNTERS if counters.get(name)}
    declined = sum(declined_detail.values())
    written = progress["readings_written"]
    score = score_predictions(predictions)
    summary = Summary(
        station=period.station, date_from=period.date_from.isoformat(), date_to=period.date_to.isoformat(),
        outcome=outcome, duration_s=round(duration_s, 1), total_records=progress["total_records"],
        readings_written=written, invalid_readings=progress["invalid_readings"],
        predictions_received=len(predictions), declined_by_model=declined, declined_detail=declined_detail,
        duplicate_predictions=progress["duplicate_predictions"],
        messages_lost=written - len(predictions) - declined, score=score,
        unanswered_seqs=state.missing_predictions()[:MAX_SEQS_LISTED],
        model_card={key: model_card.get(key) for key in ("name", "version", "threshold")} if model_card else None,
    )
    card_entry = model_card_figures(model_card, period)
    if outcome == "interrupted":
        # A partial replay's figures are not the period's: comparing them with the card would only mislead.
        summary.note = (f"interrupted after {written + progress['invalid_readings']} of {progress['total_records']} "
                        "records: nothing compared with the model card")
    elif score is not None and card_entry is not None:
        tolerance = float(model_card.get("metric_tolerance") or DEFAULT_TOLERANCE)
        summary.comparison, summary.agrees_with_model_card = compare(score, card_entry, tolerance)
    elif model_card is None:
        summary.note = "no model card (model.json) in the deployed ML resource"
    elif card_entry is None:
        summary.note = (f"the model card has test figures for {period.station} only over its test period; "
                        "this replay covers another period")
    return summary
