"""The loaded model and the serving state around it: threshold, pause, and a retry when loading failed.

The model is loaded once at import (`load`). When that fails (no ML resource yet, a corrupt archive), the
reason is kept and reported, and loading is retried at most every `reload_interval_s` when work arrives.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Callable, Dict, List, NamedTuple, Optional

from rain_inference.features import FEATURE_NAMES, build_features

log = logging.getLogger(__name__)

RELOAD_INTERVAL_S = 60.0


class ModelUnavailable(Exception):
    """No model is loaded; the message says why."""


class PredictionError(Exception):
    """The model failed on a valid feature vector, or answered something that is not a probability."""


class Prediction(NamedTuple):
    """One prediction."""

    p_rain: float
    raining: bool
    threshold: float
    latency_us: int
    features: List[float]


def _load_with_model_module(model_dir: str):
    from rain_inference.model import load_model  # imported late: a broken model module must not stop import

    return load_model(model_dir)


class Predictor:
    """Predicts P(rain) for readings; thread-safe."""

    def __init__(self, model_dir: str, loader: Callable[[str], object] = _load_with_model_module,
                 clock: Callable[[], float] = time.monotonic,
                 reload_interval_s: float = RELOAD_INTERVAL_S) -> None:
        self.model_dir = model_dir
        self._loader = loader
        self._clock = clock
        self._reload_interval_s = reload_interval_s
        self._lock = threading.RLock()
        self.model = None
        self.load_error: Optional[str] = None
        self._last_attempt: Optional[float] = None
        self.threshold_override: Optional[float] = None
        self.paused = False

    def load(self) -> bool:
        """Load the model from `model_dir`; on failure keep the reason. True when a model is loaded."""
        with self._lock:
            self._last_attempt = self._clock()
            try:
                self.model = self._loader(self.model_dir)
            except Exception as error:  # ModelError, a missing file, a broken runtime: all mean "no model"
                self.model = None
                self.load_error = "cannot load the model from {}: {}: {}".format(
                    self.model_dir, type(error).__name__, error)
                log.error("%s", self.load_error)
                return False
            self.load_error = None
            log.info("model %s loaded from %s (backend %s, threshold %s)", self.model.version, self.model_dir,
                     self.model.backend, self.model.threshold)
            return True

    def ensure_model(self):
        """The model, retrying a failed load once the retry interval has passed; else ModelUnavailable."""
        with self._lock:
            if self.model is None:
                last = self._last_attempt
                due = last is None or self._clock() - last >= self._reload_interval_s
                if not (due and self.load()):
                    raise ModelUnavailable(self.load_error or "no model loaded")
            return self.model

    @property
    def threshold(self) -> Optional[float]:
        """The decision threshold: set by command, else the model's own."""
        with self._lock:
            if self.threshold_override is not None:
                return self.threshold_override
            return float(self.model.threshold) if self.model is not None else None

    def set_threshold(self, value: float) -> Optional[float]:
        """Use `value` from now on; returns the previous threshold."""
        with self._lock:
            previous = self.threshold
            self.threshold_override = value
            return previous

    def predict(self, reading: Dict[str, object]) -> Prediction:
        """P(rain) for a reading: FeatureError for a bad reading, ModelUnavailable, or PredictionError.

        The reading is checked first, so a bad input is named even while no model is loaded.
        `latency_us` is the model call alone (features are microseconds of arithmetic).
        """
        features = build_features(reading)
        # One prediction at a time: a LiteRT interpreter is not safe to share between threads.
        with self._lock:
            model = self.ensure_model()
            threshold = self.threshold
            started = time.perf_counter()
            try:
                p_rain = float(model.predict_proba(features))
            except Exception as error:  # the model's runtime (LiteRT/NumPy) may raise anything
                raise PredictionError("model {} failed: {}: {}".format(
                    model.version, type(error).__name__, error)) from error
            latency_us = int(round((time.perf_counter() - started) * 1e6))
        if not (math.isfinite(p_rain) and 0.0 <= p_rain <= 1.0):
            raise PredictionError("model {} answered {!r}, not a probability".format(model.version, p_rain))
        return Prediction(p_rain, p_rain >= threshold, threshold, latency_us, features)

    def info(self) -> Dict[str, object]:
        """What get-model-info answers."""
        with self._lock:
            model = self.model
            return {
                "loaded": model is not None,
                "load_error": self.load_error,
                "model_dir": self.model_dir,
                "version": getattr(model, "version", None),
                "backend": getattr(model, "backend", None),
                "threshold": self.threshold,
                "model_threshold": getattr(model, "threshold", None),
                "feature_names": list(FEATURE_NAMES),
                "paused": self.paused,
                "metadata": getattr(model, "metadata", None),
            }
