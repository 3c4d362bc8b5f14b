"""load_model / RainModel: both backends agree, the committed metrics reproduce, and bad resources fail clearly."""

import hashlib
import io
import json
import math
import shutil

import numpy as np
import pytest
from rain_inference.features import FEATURE_NAMES, FeatureError, build_features
from rain_inference.model import ModelError, litert_available, load_model

TEST_FROM = "2013-11-01T00:00:00Z"
READING = {"temperature": 8.0, "humidity": 93.0, "pressure": 1004.0, "pressure_tendency_3h": -3.2}

needs_litert = pytest.mark.skipif(not litert_available(), reason="ai_edge_litert is not installed here")


@pytest.fixture(scope="module")
def test_split(lambda_path_features):
    """Features and labels of the test period (Nov-Dec 2013 UTC), every station, as the Lambdas compute them."""
    rows = [row for row in lambda_path_features if row["time_hour"] >= TEST_FROM and row["features"] is not None]
    return [row["features"] for row in rows], [row["raining"] for row in rows]


@pytest.fixture
def resource_copy(model_dir, tmp_path):
    """A writable copy of the resource, to damage."""
    target = tmp_path / "model"
    shutil.copytree(str(model_dir), str(target))
    return target


def rewrite_metadata(directory, change):
    path = directory / "model.json"
    metadata = json.loads(path.read_text())
    change(metadata)
    path.write_text(json.dumps(metadata))


def replace_file(directory, name, content):
    """Replaces a model file and records its sha256 in model.json, so only the content itself is wrong."""
    (directory / name).write_bytes(content)
    rewrite_metadata(directory, lambda m: m["files"].__setitem__(name, hashlib.sha256(content).hexdigest()))


def test_default_backend_is_litert_when_importable(model_dir):
    model = load_model(str(model_dir))
    assert model.backend == ("litert" if litert_available() else "numpy")
    assert model.version == model.metadata["version"] and model.version.startswith("1.0.0+")
    assert 0.0 < model.threshold < 1.0
    assert model.feature_names == FEATURE_NAMES


@pytest.mark.parametrize("backend", ["numpy", pytest.param("litert", marks=needs_litert)])
def test_probability_is_a_float_in_unit_interval_and_rain_favours_falling_pressure(model_dir, backend):
    model = load_model(str(model_dir), backend=backend)
    wet = model.predict_proba(build_features(READING))
    dry = model.predict_proba(build_features(dict(READING, humidity=40.0, pressure_tendency_3h=2.0)))
    assert isinstance(wet, float) and 0.0 <= dry < wet <= 1.0
    assert model.is_rain(wet) and not model.is_rain(dry)


@needs_litert
def test_litert_and_numpy_agree_within_1e_5_on_the_whole_test_split(model_dir, test_split):
    features, _labels = test_split
    litert = np.array(load_model(str(model_dir), backend="litert").predict_many(features))
    numpy_path = np.array(load_model(str(model_dir), backend="numpy").predict_many(features))
    assert len(features) > 3000
    assert np.max(np.abs(litert - numpy_path)) <= 1e-5


def test_test_split_confusion_counts_match_model_json(model_dir, test_split):
    # The Lambda path (stdlib replay + NumPy) reproduces what training recorded; a probability within
    # float32 rounding of the threshold may flip, hence the tolerance of one.
    model = load_model(str(model_dir), backend="numpy")
    features, labels = test_split
    predicted = [model.is_rain(p) for p in model.predict_many(features)]
    recorded = model.metadata["metrics"]["test"]
    assert len(labels) == recorded["rows"] and sum(labels) == recorded["rain_hours"]
    pairs = list(zip(predicted, labels))  # noqa: B905 (runs on Python 3.8 too; lengths are equal by construction)
    tp = sum(1 for p, y in pairs if p and y)
    fp = sum(1 for p, y in pairs if p and not y)
    assert abs(tp - recorded["tp"]) <= 1 and abs(fp - recorded["fp"]) <= 1


def test_loaded_model_repeats_its_prediction_exactly(model_dir):
    model = load_model(str(model_dir))
    features = build_features(READING)
    first = model.predict_proba(features)
    model.predict_proba(build_features(dict(READING, humidity=30.0)))
    assert model.predict_proba(features) == first


@pytest.mark.parametrize("features, field, message", [
    ([1.0, 2.0, 3.0], "features", "expected 5 values"),
    ([20.0, "50", 1013.0, -1.0, 3.0], "humidity", "must be a number"),
    ([20.0, 50.0, float("nan"), -1.0, 3.0], "pressure", "must be finite"),
    ([20.0, 50.0, 1013.0, math.inf, 3.0], "pressure_tendency_3h", "must be finite"),
    ([20.0, 50.0, 1013.0, -1.0, None], "dewpoint_depression", "must be a number"),
])
@pytest.mark.parametrize("backend", ["numpy", pytest.param("litert", marks=needs_litert)])
def test_bad_feature_vectors_raise_feature_error_naming_the_feature(model_dir, backend, features, field, message):
    model = load_model(str(model_dir), backend=backend)
    with pytest.raises(FeatureError, match=message) as caught:
        model.predict_proba(features)
    assert caught.value.field == field


def test_missing_directory_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="model directory does not exist"):
        load_model(str(tmp_path / "nowhere"))


def test_missing_metadata_is_named(resource_copy):
    (resource_copy / "model.json").unlink()
    with pytest.raises(ModelError, match="model.json: missing"):
        load_model(str(resource_copy))


def test_corrupt_metadata_is_named(resource_copy):
    (resource_copy / "model.json").write_text('{"version": ')
    with pytest.raises(ModelError, match="model.json: unreadable or not JSON"):
        load_model(str(resource_copy))


@pytest.mark.parametrize("backend, name", [("numpy", "weights.npz"),
                                           pytest.param("litert", "model.tflite", marks=needs_litert)])
def test_missing_model_file_is_named(resource_copy, backend, name):
    (resource_copy / name).unlink()
    with pytest.raises(ModelError, match=f"{name}: missing"):
        load_model(str(resource_copy), backend=backend)


@pytest.mark.parametrize("backend, name", [("numpy", "weights.npz"),
                                           pytest.param("litert", "model.tflite", marks=needs_litert)])
def test_file_that_differs_from_metadata_checksum_is_refused(resource_copy, backend, name):
    data = bytearray((resource_copy / name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (resource_copy / name).write_bytes(bytes(data))
    with pytest.raises(ModelError, match=f"{name}: sha256 .* does not match model.json"):
        load_model(str(resource_copy), backend=backend)


@needs_litert
def test_unloadable_tflite_is_named(resource_copy):
    replace_file(resource_copy, "model.tflite", b"not a flatbuffer at all" * 10)
    with pytest.raises(ModelError, match="model.tflite: not a loadable TFLite model"):
        load_model(str(resource_copy), backend="litert")


def test_unreadable_npz_is_named(resource_copy):
    replace_file(resource_copy, "weights.npz", b"PK\x03\x04 truncated")
    with pytest.raises(ModelError, match="weights.npz: not a readable .npz"):
        load_model(str(resource_copy), backend="numpy")


def test_weights_not_matching_architecture_are_named(resource_copy):
    with np.load(str(resource_copy / "weights.npz")) as archive:
        weights = {key: archive[key] for key in archive.files}
    weights["dense_1_kernel"] = weights["dense_1_kernel"][:, :8]
    buffer = io.BytesIO()
    np.savez(buffer, **weights)
    replace_file(resource_copy, "weights.npz", buffer.getvalue())
    with pytest.raises(ModelError, match="'dense_1_kernel' has shape"):
        load_model(str(resource_copy), backend="numpy")


def test_feature_names_not_matching_code_are_refused(resource_copy):
    rewrite_metadata(resource_copy, lambda m: m.__setitem__("feature_names", list(reversed(FEATURE_NAMES))))
    with pytest.raises(ModelError, match="feature_names .* do not match"):
        load_model(str(resource_copy))


@pytest.mark.parametrize("threshold", [1.5, "0.3", None])
def test_invalid_threshold_is_refused(resource_copy, threshold):
    rewrite_metadata(resource_copy, lambda m: m.__setitem__("threshold", threshold))
    with pytest.raises(ModelError, match="threshold must be a number in"):
        load_model(str(resource_copy))


def test_unknown_or_unavailable_backend_is_refused(model_dir):
    with pytest.raises(ModelError, match="backend must be one of"):
        load_model(str(model_dir), backend="tensorflow")
    if not litert_available():
        with pytest.raises(ModelError, match="neither ai_edge_litert nor tflite_runtime is importable"):
            load_model(str(model_dir), backend="litert")
