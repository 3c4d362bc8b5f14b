"""The ML Feedback connector's sampling strategies: which samples are worth uploading for labelling.

As the connector guide defines them, on a prediction given as a list of probabilities:
- RANDOM_SAMPLING: upload when a random draw in [0, 1) is below `rate` (the prediction is not looked at);
- LEAST_CONFIDENCE: upload when the highest probability is <= `threshold`;
- MARGIN: upload when the difference between the two highest probabilities is <= `threshold`;
- ENTROPY: upload when the entropy (natural log) of the prediction, normalised to sum to 1, is > `threshold`
  (the guide's example: [.5, .25, .25] has entropy 1.03972).
No strategy: every sample is uploaded.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

RANDOM_SAMPLING = "RANDOM_SAMPLING"
LEAST_CONFIDENCE = "LEAST_CONFIDENCE"
MARGIN = "MARGIN"
ENTROPY = "ENTROPY"
STRATEGY_NAMES = (RANDOM_SAMPLING, LEAST_CONFIDENCE, MARGIN, ENTROPY)


@dataclass(frozen=True)
class SamplingStrategy:
    """A configuration's `sampling-strategy`: its name and its `rate` or `threshold`."""

    name: str
    rate: float | None = None
    threshold: float | None = None

    @property
    def needs_probabilities(self) -> bool:
        """Whether the strategy reads the prediction (all but RANDOM_SAMPLING do)."""
        return self.name != RANDOM_SAMPLING

    def keeps(self, prediction: Sequence[float], draw: random.Random) -> bool:
        """Whether a sample with `prediction` (probabilities) is uploaded."""
        if self.name == RANDOM_SAMPLING:
            return draw.random() < float(self.rate or 0.0)
        threshold = float(self.threshold or 0.0)
        if self.name == LEAST_CONFIDENCE:
            return max(prediction) <= threshold
        if self.name == MARGIN:
            return margin(prediction) <= threshold
        if self.name == ENTROPY:
            return entropy(prediction) > threshold
        raise ValueError(f"unknown sampling strategy {self.name!r}")


def margin(prediction: Sequence[float]) -> float:
    """The difference between the two highest probabilities (the highest itself when there is only one)."""
    ranked = sorted(prediction, reverse=True)
    return ranked[0] - (ranked[1] if len(ranked) > 1 else 0.0)


def entropy(prediction: Sequence[float]) -> float:
    """Shannon entropy in nats of the prediction normalised to sum to 1 (0 for an all-zero prediction)."""
    total = float(sum(prediction))
    if total <= 0:
        return 0.0
    return -sum((p / total) * math.log(p / total) for p in prediction if p > 0)
