"""The demo's scoring maths agrees with scikit-learn on the same arrays."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import confusion_matrix, precision_score, recall_score, roc_auc_score

from simcore.demo.scoring import confusion, precision, recall, roc_auc, score


def _arrays(seed: int, size: int, rounding: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    observed = rng.random(size) < 0.15
    p_rain = np.clip(rng.normal(0.3 + 0.3 * observed, 0.2), 0.0, 1.0)
    if rounding is not None:
        p_rain = np.round(p_rain, rounding)  # many ties
    return observed, p_rain


@pytest.mark.parametrize("seed,size,rounding", [(1, 1432, None), (2, 200, 1), (3, 50, 2), (4, 1000, 0)])
def test_figures_match_scikit_learn(seed: int, size: int, rounding: int | None) -> None:
    observed, p_rain = _arrays(seed, size, rounding)
    threshold = 0.45
    result = score(observed, p_rain, threshold)
    predicted = p_rain >= threshold
    tn, fp, fn, tp = confusion_matrix(observed, predicted, labels=[False, True]).ravel()
    assert (result.confusion.tp, result.confusion.fp, result.confusion.tn, result.confusion.fn) == (tp, fp, tn, fn)
    assert result.precision == pytest.approx(precision_score(observed, predicted, zero_division=0.0))
    assert result.recall == pytest.approx(recall_score(observed, predicted, zero_division=0.0))
    assert result.roc_auc == pytest.approx(roc_auc_score(observed, p_rain), abs=1e-12)
    assert result.rows == size
    assert result.rain_hours == int(observed.sum())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 10)), min_size=2, max_size=60))
def test_roc_auc_matches_scikit_learn_with_ties(pairs: list[tuple[bool, int]]) -> None:
    observed = [flag for flag, _ in pairs]
    scores = [value / 10 for _, value in pairs]
    if len(set(observed)) < 2:
        assert roc_auc(observed, scores) is None
    else:
        assert roc_auc(observed, scores) == pytest.approx(roc_auc_score(observed, scores), abs=1e-12)


def test_rates_are_zero_when_their_denominator_is_empty() -> None:
    counts = confusion([False, False, True], [False, False, False])
    assert (counts.tp, counts.fp, counts.tn, counts.fn) == (0, 0, 2, 1)
    assert precision(counts) == 0.0
    assert recall(confusion([False, False], [True, False])) == 0.0


def test_roc_auc_needs_both_classes() -> None:
    assert roc_auc([True, True], [0.2, 0.9]) is None
    assert roc_auc([False, False], [0.2, 0.9]) is None


def test_arrays_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="3 observations but 2"):
        confusion([True, False, True], [True, False])
    with pytest.raises(ValueError, match="2 observations but 1"):
        roc_auc([True, False], [0.5])
