"""The committed ML resource: what it holds, that it is reproducible and small, and that its card holds up."""

import hashlib
import json
import sys
import tarfile

import pytest
from conftest import MODEL_ARCHIVE, REPO_ROOT, weather_csv

EXPECTED_FILES = {
    "model.json", "model.tflite", "weights.npz",
    "saved_model/saved_model.pb", "saved_model/variables/variables.index",
    "saved_model/variables/variables.data-00000-of-00001",
}


def train_module():
    if sys.version_info < (3, 11):  # noqa: UP036 (tests also run under the Lambdas' Python 3.8)
        pytest.skip("training runs on the tools' Python 3.11")
    pytest.importorskip("pandas")
    sys.path.insert(0, str(REPO_ROOT / "resources" / "rain_model"))
    import train

    return train


def test_archive_holds_the_contract_files_with_fixed_metadata():
    with tarfile.open(str(MODEL_ARCHIVE), "r:gz") as archive:
        members = archive.getmembers()
    names = [member.name for member in members]
    assert names == sorted(names)
    assert {m.name for m in members if m.isfile()} == EXPECTED_FILES
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(946684800, 0, 0, "", "")}
    assert MODEL_ARCHIVE.read_bytes()[4:8] == b"\x00\x00\x00\x00"  # gzip header mtime 0


def test_model_is_small(model_dir):
    assert (model_dir / "model.tflite").stat().st_size <= 16 * 1024
    assert MODEL_ARCHIVE.stat().st_size <= 64 * 1024


def test_metadata_describes_features_checksums_and_meets_the_goals(model_dir):
    metadata = json.loads((model_dir / "model.json").read_text())
    assert [f["name"] for f in metadata["features"]] == metadata["feature_names"]
    assert all(f["unit"] for f in metadata["features"])
    assert metadata["training"]["data_sha256"] == hashlib.sha256(weather_csv().read_bytes()).hexdigest()
    for name in ("model.tflite", "weights.npz"):
        assert metadata["files"][name] == hashlib.sha256((model_dir / name).read_bytes()).hexdigest()
    test = metadata["metrics"]["test"]
    assert test["roc_auc"] >= 0.935 and test["pr_auc"] >= 0.52
    assert set(metadata["baseline"]["metrics"]) == {"train", "validation", "test"}
    assert set(metadata["per_station_test"]) == {"EWR", "JFK", "LGA"}
    stations = metadata["per_station_test"].values()
    for figure in ("rows", "rain_hours", "tp", "fp", "fn", "tn"):
        assert sum(station[figure] for station in stations) == test[figure], figure


def test_saved_model_gives_the_same_probabilities(model_dir):
    tf = pytest.importorskip("tensorflow")
    import numpy as np
    from rain_inference.model import load_model

    rows = np.array([[8.0, 93.0, 1004.0, -3.2, 1.1], [25.0, 40.0, 1020.0, 1.0, 11.0]], dtype=np.float32)
    serve = tf.saved_model.load(str(model_dir / "saved_model")).signatures["serving_default"]
    saved = serve(features=tf.constant(rows))["p_rain"].numpy().reshape(-1)
    numpy_path = load_model(str(model_dir), backend="numpy").predict_many(rows.tolist())
    assert np.max(np.abs(saved - np.array(numpy_path))) <= 1e-5


def test_archive_writer_is_byte_reproducible(tmp_path):
    train = train_module()
    source = tmp_path / "resource"
    (source / "saved_model").mkdir(parents=True)
    (source / "model.json").write_text("{}")
    (source / "saved_model" / "saved_model.pb").write_bytes(b"\x00pb")
    train.write_archive(source, tmp_path / "a.tar.gz")
    (source / "model.json").touch()  # a new mtime must not change the archive
    train.write_archive(source, tmp_path / "b.tar.gz")
    assert (tmp_path / "a.tar.gz").read_bytes() == (tmp_path / "b.tar.gz").read_bytes()


def test_npz_writer_is_byte_reproducible_and_readable():
    train = train_module()
    import io

    import numpy as np

    arrays = {"b": np.arange(3, dtype=np.float32), "a": np.eye(2, dtype=np.float32)}
    first, second = train.npz_bytes(arrays), train.npz_bytes(dict(reversed(list(arrays.items()))))
    assert first == second
    with np.load(io.BytesIO(first)) as loaded:
        assert np.array_equal(loaded["a"], arrays["a"]) and np.array_equal(loaded["b"], arrays["b"])
