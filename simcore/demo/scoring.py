"""Scores predictions against observed rain: confusion matrix, precision, recall and ROC-AUC.

The definitions are the model card's (resources/rain_model/train.py `scores`): a prediction is "rain" when
`p_rain >= threshold`; precision and recall are 0.0 when their denominator is empty; ROC-AUC is the
Mann-Whitney probability that a rainy hour scores above a dry one (ties count half), None until both
classes have been seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Confusion:
    """Counts at the decision threshold: true/false positives, true/false negatives."""

    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0

    @property
    def total(self) -> int:
        """How many predictions were scored."""
        return self.tp + self.fp + self.tn + self.fn


@dataclass(frozen=True)
class Score:
    """The figures the demo's summary prints, for one set of scored predictions."""

    confusion: Confusion
    precision: float
    recall: float
    roc_auc: float | None
    rows: int
    rain_hours: int

    def as_dict(self) -> dict:
        """JSON-ready: the confusion counts flattened beside the rates (the model card's shape)."""
        values = asdict(self)
        values.update(values.pop("confusion"))
        return values


def confusion(observed: Sequence[bool], predicted: Sequence[bool]) -> Confusion:
    """The confusion matrix of boolean predictions against boolean observations."""
    truth = np.asarray(observed, dtype=bool)
    guess = np.asarray(predicted, dtype=bool)
    if truth.shape != guess.shape:
        raise ValueError(f"{truth.size} observations but {guess.size} predictions")
    return Confusion(
        tp=int(np.sum(guess & truth)),
        fp=int(np.sum(guess & ~truth)),
        tn=int(np.sum(~guess & ~truth)),
        fn=int(np.sum(~guess & truth)),
    )


def precision(counts: Confusion) -> float:
    """tp / (tp + fp); 0.0 when nothing was predicted as rain."""
    return counts.tp / (counts.tp + counts.fp) if counts.tp + counts.fp else 0.0


def recall(counts: Confusion) -> float:
    """tp / (tp + fn); 0.0 when it never rained."""
    return counts.tp / (counts.tp + counts.fn) if counts.tp + counts.fn else 0.0


def roc_auc(observed: Sequence[bool], p_rain: Sequence[float]) -> float | None:
    """P(score of a rainy hour > score of a dry hour), ties half; None unless both classes occur.

    Computed from average ranks (the Mann-Whitney U statistic), which handles ties exactly.
    """
    truth = np.asarray(observed, dtype=bool)
    scores = np.asarray(p_rain, dtype=float)
    if truth.shape != scores.shape:
        raise ValueError(f"{truth.size} observations but {scores.size} scores")
    positives = int(truth.sum())
    negatives = truth.size - positives
    if positives == 0 or negatives == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(scores.size, dtype=float)
    # Tied scores share the average of the ranks they span.
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], scores.size]
    for start, end in zip(starts, ends, strict=True):
        ranks[order[start:end]] = (start + end + 1) / 2.0
    rank_sum = ranks[truth].sum()
    return float((rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives))


def score(observed: Sequence[bool], p_rain: Sequence[float], threshold: float) -> Score:
    """Every figure at once, predictions being `p_rain >= threshold`."""
    scores = np.asarray(p_rain, dtype=float)
    counts = confusion(observed, scores >= threshold)
    return Score(counts, precision(counts), recall(counts), roc_auc(observed, scores),
                 rows=counts.total, rain_hours=counts.tp + counts.fn)
