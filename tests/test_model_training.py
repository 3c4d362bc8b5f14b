"""Training: the same records give the same features through training and the Lambdas; a retrain reproduces."""

import json
import subprocess
import sys
import tarfile

import pytest
from conftest import REPO_ROOT

if sys.version_info < (3, 11):  # noqa: UP036 (tests also run under the Lambdas' Python 3.8)
    pytest.skip("training runs on the tools' Python 3.11", allow_module_level=True)
pd = pytest.importorskip("pandas")
sys.path.insert(0, str(REPO_ROOT / "resources" / "rain_model"))
import train  # noqa: E402


def test_training_features_equal_the_lambda_path_record_by_record(lambda_path_features):
    table = train.feature_table(train.load_weather(train.weather_csv_path()))
    assert len(table) == len(lambda_path_features) > 26000
    usable = 0
    for record, row in zip(table.itertuples(index=False), lambda_path_features, strict=True):
        assert (record.station, record.time_hour.strftime("%Y-%m-%dT%H:%M:%SZ")) == (row["station"], row["time_hour"])
        assert bool(record.raining) == row["raining"]
        if row["features"] is None:
            assert record.reason != ""
            continue
        usable += 1
        assert [getattr(record, name) for name in train.FEATURE_NAMES] == row["features"]
    assert usable == int((table["reason"] == "").sum()) > 23000


def test_sagemaker_arguments_are_accepted(monkeypatch, tmp_path):
    called = {}
    monkeypatch.setattr(train, "train", lambda out, **kwargs: called.update(out=out, **kwargs))
    monkeypatch.setenv("SM_MODEL_DIR", str(tmp_path))
    assert train.main(["--model_dir", "s3://bucket/job/model", "--epochs", "3"]) == 0
    assert called["out"] == tmp_path and called["unpacked"] is True and called["epochs"] == 3


def test_sagemaker_channel_is_the_data_source(monkeypatch, tmp_path):
    monkeypatch.setenv("SM_CHANNEL_TRAIN", str(tmp_path))
    assert train.weather_csv_path() == tmp_path / "weather.csv"
    assert train.weather_csv_path("elsewhere.csv").name == "elsewhere.csv"


@pytest.mark.slow
def test_retraining_reproduces_the_committed_metrics(tmp_path, model_dir):
    # A fresh process, exactly as `make model` runs it: TensorFlow's settings are made before it initialises.
    pytest.importorskip("tensorflow")
    committed = json.loads((model_dir / "model.json").read_text())
    script = REPO_ROOT / "resources" / "rain_model" / "train.py"
    completed = subprocess.run([sys.executable, str(script), "--out", str(tmp_path), "--quiet"],
                               capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    with tarfile.open(str(tmp_path / train.ARCHIVE_NAME), "r:gz") as archive:
        assert {"model.tflite", "weights.npz", "model.json"} <= set(archive.getnames())
        retrained = json.load(archive.extractfile("model.json"))
    tolerance = train.METRIC_TOLERANCE
    for split in ("validation", "test"):
        for metric in ("roc_auc", "pr_auc"):
            assert retrained["metrics"][split][metric] == pytest.approx(
                committed["metrics"][split][metric], abs=tolerance), (split, metric)
            assert retrained["baseline"]["metrics"][split][metric] == pytest.approx(
                committed["baseline"]["metrics"][split][metric], abs=tolerance), (split, metric)
    assert retrained["threshold"] == pytest.approx(committed["threshold"], abs=0.02)
    assert retrained["training"]["data_sha256"] == committed["training"]["data_sha256"]
