"""Loads the rain model ML resource from a directory and predicts P(rain), with LiteRT or, without it, NumPy.

The resource (`rain-model.tar.gz`, extracted to the ML resource's destination path) holds `model.tflite`,
`weights.npz`, `saved_model/` and `model.json`. No TensorFlow here: LiteRT runs `model.tflite` when its
interpreter is importable, from `ai_edge_litert` (Python 3.9+) or, on Python 3.8, from `tflite_runtime`
(LiteRT's earlier package, which has cp38 wheels); NumPy evaluates the same weights from `weights.npz` as
the last resort. Both interpreters are the same TFLite runtime with the same `Interpreter` API.
"""

import hashlib
import importlib
import io
import json
import math
import os
import zipfile
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from .features import FEATURE_NAMES, FeatureError

METADATA_FILE = "model.json"
TFLITE_FILE = "model.tflite"
WEIGHTS_FILE = "weights.npz"
BACKENDS = ("litert", "numpy")
# Where the LiteRT interpreter is taken from, in this order.
LITERT_PACKAGES = ("ai_edge_litert", "tflite_runtime")


class ModelError(Exception):
    """The model resource cannot be loaded or used; the message names the file or field at fault."""


def litert_package() -> Optional[str]:
    """The first of `LITERT_PACKAGES` whose interpreter imports here, or None."""
    for package in LITERT_PACKAGES:
        try:
            importlib.import_module(package + ".interpreter")
        except ImportError:
            continue
        return package
    return None


def litert_available() -> bool:
    """Whether a LiteRT interpreter (`ai_edge_litert` or `tflite_runtime`) can be imported here."""
    return litert_package() is not None


class RainModel:
    """A loaded rain model: `predict_proba(features)` -> P(rain), with `threshold`, `version`, `backend`.

    Not thread-safe: predictions reuse one set of buffers, so callers on several threads hold a lock.
    """

    def __init__(self, metadata: Dict[str, Any], backend: str, evaluator: Any) -> None:
        self.metadata = metadata
        self.version: str = metadata["version"]
        self.threshold: float = float(metadata["threshold"])
        self.backend = backend
        # The package that runs it: `ai_edge_litert` or `tflite_runtime` for LiteRT, else `numpy`.
        self.runtime: str = getattr(evaluator, "package", "numpy")
        self.feature_names = tuple(metadata["feature_names"])
        self._evaluator = evaluator
        self._feature_count = len(self.feature_names)
        # Bound once: predict_proba is the hot path, one attribute lookup less per call.
        self._evaluate = evaluator.evaluate

    def __repr__(self) -> str:
        return "RainModel(version={!r}, backend={!r}, threshold={})".format(self.version, self.backend, self.threshold)

    def predict_proba(self, features: Sequence[float]) -> float:
        """P(rain) for one feature vector (`build_features` output, in `FEATURE_NAMES` order).

        Raises FeatureError for the wrong number of features, a non-number, or NaN/inf.
        """
        if len(features) != self._feature_count:
            raise FeatureError(
                "features", "expected {} values ({}), got {}".format(
                    self._feature_count, ", ".join(self.feature_names), len(features)))
        try:
            total = sum(features)
        except TypeError:
            raise _first_bad_feature(features, self.feature_names) from None
        # NaN and ±inf make the sum non-finite; finding which one is only needed then.
        if not math.isfinite(total):
            raise _first_bad_feature(features, self.feature_names)
        return self._evaluate(features)

    def predict_many(self, rows: Sequence[Sequence[float]]) -> List[float]:
        """P(rain) for each feature vector in `rows` (a convenience for evaluation; same checks per row)."""
        return [self.predict_proba(row) for row in rows]

    def is_rain(self, probability: float) -> bool:
        """Whether a probability counts as rain at the current threshold."""
        return probability >= self.threshold


def _first_bad_feature(features: Sequence[Any], names: Sequence[str]) -> FeatureError:
    for name, value in zip(names, features):  # noqa: B905 (zip(strict=) is Python 3.10+; lengths checked)
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            return FeatureError(name, "must be a number, got {} {!r}".format(type(value).__name__, value))
        if not math.isfinite(value):
            return FeatureError(name, "must be finite, got {!r}".format(value))
    return FeatureError("features", "sum is not finite: values too large")


class _LiteRTEvaluator:
    """Runs model.tflite at batch 1, writing into and reading from the interpreter's own tensor buffers."""

    def __init__(self, path: str, model_bytes: bytes, feature_count: int, package: str) -> None:
        Interpreter = importlib.import_module(package + ".interpreter").Interpreter  # noqa: N806
        self.package = package

        try:
            interpreter = Interpreter(model_content=model_bytes, num_threads=1)
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise ModelError("{}: not a loadable TFLite model: {}".format(path, error)) from None
        inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
        if len(inputs) != 1 or list(inputs[0]["shape"]) != [1, feature_count] or inputs[0]["dtype"] != np.float32:
            raise ModelError("{}: input is {}, model.json describes float32 [1, {}]".format(
                path, [(d["shape"].tolist(), d["dtype"].__name__) for d in inputs], feature_count))
        if len(outputs) != 1 or list(outputs[0]["shape"]) != [1, 1]:
            raise ModelError("{}: output is {}, expected one [1, 1] probability".format(
                path, [d["shape"].tolist() for d in outputs]))
        self._interpreter = interpreter
        # Views on the interpreter's buffers, kept for the model's life: the tensors are never resized, so
        # the buffers never move. Interpreter.invoke() refuses to run while such views exist, so the hot
        # path calls the wrapped C++ Invoke directly; that saves a copy in and out and ~3 µs per call.
        self._input_row = interpreter.tensor(inputs[0]["index"])()[0]
        self._output = interpreter.tensor(outputs[0]["index"])()
        self._invoke = interpreter._interpreter.Invoke

    def evaluate(self, features: Sequence[float]) -> float:
        self._input_row[:] = features
        self._invoke()
        return self._output.item()


class _NumpyEvaluator:
    """Evaluates the same network from weights.npz: normalisation folded into the first layer, buffers reused."""

    def __init__(self, path: str, weights: Mapping[str, np.ndarray], architecture: Mapping[str, Any],
                 feature_count: int) -> None:
        layers = architecture.get("layers") if isinstance(architecture, Mapping) else None
        if not isinstance(layers, list) or not layers:
            raise ModelError("{}: architecture.layers is missing or empty".format(METADATA_FILE))
        mean = _array(weights, "normalization_mean", (feature_count,), path)
        std = _array(weights, "normalization_std", (feature_count,), path)
        if np.any(std <= 0):
            raise ModelError("{}: normalization_std has values <= 0".format(path))
        kernels, biases, activations = [], [], []
        width = feature_count
        for position, layer in enumerate(layers):
            try:
                name, units, activation = layer["weights"], int(layer["units"]), layer["activation"]
            except (KeyError, TypeError, ValueError):
                raise ModelError("{}: architecture.layers[{}] needs weights, units, activation".format(
                    METADATA_FILE, position)) from None
            expected_activation = "sigmoid" if position == len(layers) - 1 else "relu"
            if activation != expected_activation:
                raise ModelError("{}: architecture.layers[{}].activation is {!r}, this code evaluates {!r}".format(
                    METADATA_FILE, position, activation, expected_activation))
            kernels.append(_array(weights, name + "_kernel", (width, units), path))
            biases.append(_array(weights, name + "_bias", (units,), path))
            activations.append(activation)
            width = units
        if width != 1:
            raise ModelError("{}: the last layer has {} units, expected 1 probability".format(METADATA_FILE, width))
        # x_norm @ W + b == x @ (W / std[:, None]) + (b - (mean / std) @ W): normalisation costs nothing.
        biases[0] = biases[0] - (mean / std) @ kernels[0]
        kernels[0] = kernels[0] / std[:, None]
        # Each layer's input buffer ends in a constant 1 and its kernel in the bias row, so a layer is one
        # dot (bias included) and one in-place ReLU into the next buffer: no allocation per call.
        self._input_buffer = np.ones(feature_count + 1)
        self._input = self._input_buffer[:feature_count]
        self._hidden = []
        buffer = self._input_buffer
        for kernel, bias in zip(kernels[:-1], biases[:-1]):  # noqa: B905 (Python 3.8: no strict=)
            next_buffer = np.ones(bias.shape[0] + 1)
            self._hidden.append((buffer, np.vstack([kernel, bias]), np.empty(bias.shape[0]),
                                 next_buffer[:bias.shape[0]]))
            buffer = next_buffer
        self._last_input = buffer
        self._last_kernel = np.concatenate([kernels[-1][:, 0], biases[-1]])
        self._dot, self._maximum = np.dot, np.maximum

    def evaluate(self, features: Sequence[float]) -> float:
        self._input[:] = features
        dot, maximum = self._dot, self._maximum
        for layer_input, kernel, pre_activation, layer_output in self._hidden:
            dot(layer_input, kernel, out=pre_activation)
            maximum(pre_activation, 0.0, out=layer_output)
        logit = float(dot(self._last_input, self._last_kernel))
        # Written so that exp never overflows for large |logit|.
        if logit >= 0:
            return 1.0 / (1.0 + math.exp(-logit))
        exp_logit = math.exp(logit)
        return exp_logit / (1.0 + exp_logit)


def _array(weights: Mapping[str, np.ndarray], key: str, shape: tuple, path: str) -> np.ndarray:
    if key not in weights:
        raise ModelError("{}: no array {!r} (model.json expects it)".format(path, key))
    array = np.asarray(weights[key], dtype=np.float64)
    if array.shape != shape:
        raise ModelError("{}: {!r} has shape {}, model.json implies {}".format(path, key, array.shape, shape))
    if not np.all(np.isfinite(array)):
        raise ModelError("{}: {!r} holds NaN or inf".format(path, key))
    return array


def _read_metadata(model_dir: str) -> Dict[str, Any]:
    path = os.path.join(model_dir, METADATA_FILE)
    try:
        with open(path, "rb") as handle:
            metadata = json.loads(handle.read().decode("utf-8"))
    except FileNotFoundError:
        raise ModelError("{}: missing (the model resource has no metadata)".format(path)) from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ModelError("{}: unreadable or not JSON: {}".format(path, error)) from None
    if not isinstance(metadata, dict):
        raise ModelError("{}: expected a JSON object".format(path))
    names = metadata.get("feature_names")
    if names != list(FEATURE_NAMES):
        raise ModelError("{}: feature_names {!r} do not match this code's features {!r}".format(
            path, names, list(FEATURE_NAMES)))
    threshold = metadata.get("threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise ModelError("{}: threshold must be a number in [0, 1], got {!r}".format(path, threshold))
    if not isinstance(metadata.get("version"), str) or not metadata["version"]:
        raise ModelError("{}: version must be a non-empty string".format(path))
    if not isinstance(metadata.get("files"), dict):
        raise ModelError("{}: files (sha256 of each model file) is missing".format(path))
    return metadata


def _read_checked(model_dir: str, name: str, metadata: Mapping[str, Any]) -> bytes:
    """The file's bytes, after checking them against the sha256 that model.json records for it."""
    path = os.path.join(model_dir, name)
    expected = metadata["files"].get(name)
    if not isinstance(expected, str):
        raise ModelError("{}: files.{} (its sha256) is missing".format(METADATA_FILE, name))
    try:
        with open(path, "rb") as handle:
            content = handle.read()
    except FileNotFoundError:
        raise ModelError("{}: missing from the model resource".format(path)) from None
    except OSError as error:
        raise ModelError("{}: unreadable: {}".format(path, error)) from None
    actual = hashlib.sha256(content).hexdigest()
    if actual != expected:
        raise ModelError("{}: sha256 {} does not match model.json's {} (corrupt, or from another build)".format(
            path, actual[:12], expected[:12]))
    return content


def load_model(model_dir: str, backend: Optional[str] = None) -> RainModel:
    """Loads the resource in `model_dir`; `backend` is "litert", "numpy" or None (LiteRT when importable).

    Raises ModelError naming the file or field: a missing directory, a missing, corrupt or mismatched file,
    metadata that does not describe the model, or a backend that is not available.
    """
    if backend not in (None,) + BACKENDS:
        raise ModelError("backend must be one of {} or None, got {!r}".format(BACKENDS, backend))
    if not os.path.isdir(model_dir):
        raise ModelError("{}: model directory does not exist".format(model_dir))
    metadata = _read_metadata(model_dir)
    feature_count = len(FEATURE_NAMES)
    if backend is None:
        backend = "litert" if litert_available() else "numpy"
    if backend == "litert":
        package = litert_package()
        if package is None:
            raise ModelError("backend 'litert' asked for, but neither {} is importable here".format(
                " nor ".join(LITERT_PACKAGES)))
        content = _read_checked(model_dir, TFLITE_FILE, metadata)
        evaluator: Any = _LiteRTEvaluator(os.path.join(model_dir, TFLITE_FILE), content, feature_count, package)
    else:
        path = os.path.join(model_dir, WEIGHTS_FILE)
        content = _read_checked(model_dir, WEIGHTS_FILE, metadata)
        try:
            with np.load(io.BytesIO(content), allow_pickle=False) as archive:
                weights = {key: archive[key] for key in archive.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            raise ModelError("{}: not a readable .npz: {}".format(path, error)) from None
        evaluator = _NumpyEvaluator(path, weights, metadata.get("architecture"), feature_count)
    return RainModel(metadata, backend, evaluator)
