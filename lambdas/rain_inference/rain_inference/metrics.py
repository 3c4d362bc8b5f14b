"""Running model metrics: counts, latency percentiles, rain rate and, with observed rain, scoring.

Memory stays bounded however long the Lambda runs: latency percentiles come from the last
`LATENCY_WINDOW` predictions; ROC-AUC comes from per-class score histograms of `AUC_BINS` bins (scores in
one bin count as ties), which is exact to within 1/AUC_BINS of the pairwise Mann-Whitney value.
"""

from __future__ import annotations

import collections
import math
import threading
from typing import Deque, Dict, List, Optional

LATENCY_WINDOW = 1024
AUC_BINS = 1000


def percentile(sorted_values: List[float], fraction: float) -> Optional[float]:
    """The nearest-rank percentile of already sorted values (None for none)."""
    if not sorted_values:
        return None
    rank = max(1, int(math.ceil(fraction * len(sorted_values))))
    return sorted_values[rank - 1]


def _ratio(numerator: int, denominator: int) -> Optional[float]:
    return numerator / denominator if denominator else None


class Scoring:
    """Confusion matrix at the decision threshold and a histogram ROC-AUC, over scored predictions."""

    def __init__(self, bins: int = AUC_BINS) -> None:
        self.bins = bins
        self.positive = [0] * bins
        self.negative = [0] * bins
        self.tp = self.fp = self.tn = self.fn = 0

    def add(self, p_rain: float, raining: bool, observed_rain: bool) -> None:
        """Score one prediction against what was observed."""
        index = min(self.bins - 1, max(0, int(p_rain * self.bins)))
        if observed_rain:
            self.positive[index] += 1
            if raining:
                self.tp += 1
            else:
                self.fn += 1
        else:
            self.negative[index] += 1
            if raining:
                self.fp += 1
            else:
                self.tn += 1

    def roc_auc(self) -> Optional[float]:
        """P(score of a rainy hour > score of a dry hour), ties half; None until both classes were seen."""
        positives, negatives = sum(self.positive), sum(self.negative)
        if not positives or not negatives:
            return None
        negatives_below = 0
        wins = 0.0
        for positive, negative in zip(self.positive, self.negative):  # noqa: B905 (no strict= on 3.8)
            wins += positive * (negatives_below + 0.5 * negative)
            negatives_below += negative
        return wins / (positives * negatives)

    def snapshot(self) -> Dict[str, object]:
        """Counts, precision, recall, ROC-AUC and the confusion matrix."""
        return {
            "count": self.tp + self.fp + self.tn + self.fn,
            "precision": _ratio(self.tp, self.tp + self.fp),
            "recall": _ratio(self.tp, self.tp + self.fn),
            "roc_auc": self.roc_auc(),
            "confusion": {"tp": self.tp, "fp": self.fp, "tn": self.tn, "fn": self.fn},
        }


class RunningMetrics:
    """Thread-safe counters of everything the inference Lambda did since it started."""

    def __init__(self, latency_window: int = LATENCY_WINDOW) -> None:
        self._lock = threading.Lock()
        self.count = 0
        self.raining = 0
        self.errors = 0
        self.counters: Dict[str, int] = collections.Counter()
        self.last_error: Optional[str] = None
        self._latencies: Deque[int] = collections.deque(maxlen=latency_window)
        self.scoring = Scoring()

    def record_prediction(self, p_rain: float, raining: bool, latency_us: int,
                          observed_rain: Optional[bool]) -> None:
        """Count one prediction; score it when the observed outcome is known."""
        with self._lock:
            self.count += 1
            self.raining += int(raining)
            self._latencies.append(latency_us)
            if observed_rain is not None:
                self.scoring.add(p_rain, raining, observed_rain)

    def record_error(self, kind: str, message: str) -> None:
        """Count one failure of kind `kind` (e.g. `bad_document`, `feature`, `model`, `publish`)."""
        with self._lock:
            self.errors += 1
            self.counters["error." + kind] += 1
            self.last_error = "{}: {}".format(kind, message)

    def note(self, name: str) -> None:
        """Count something that is not an error (a skipped document, an invocation)."""
        with self._lock:
            self.counters[name] += 1

    def snapshot(self) -> Dict[str, object]:
        """Everything, as one JSON-ready object."""
        with self._lock:
            latencies = sorted(self._latencies)
            return {
                "count": self.count,
                "errors": self.errors,
                "last_error": self.last_error,
                "latency_us": {"p50": percentile(latencies, 0.50), "p99": percentile(latencies, 0.99),
                               "window": len(latencies)},
                "rain_rate": _ratio(self.raining, self.count),
                "counters": dict(sorted(self.counters.items())),
                "scored": self.scoring.snapshot(),
            }
