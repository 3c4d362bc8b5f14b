"""Benchmarks rain model inference: per-reading latency of each path and start-up cost of a fresh process.

    .venv/bin/python bench/inference.py      # prints a markdown section; bench/run.py collects it

Per reading at batch 1, on real feature vectors of the test period: LiteRT and NumPy through
`rain_inference.model` (what the Lambda runs), on this interpreter and on the Lambdas' Python 3.8 (where
LiteRT is `tflite-runtime`), TensorFlow `model.predict` and a `tf.function` on the same weights.
Start-up: a fresh Python process that loads the resource and predicts once, LiteRT against TensorFlow.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
ARCHIVE = REPO_ROOT / "resources" / "rain_model" / "dist" / "rain-model.tar.gz"
CODE_ROOTS = [REPO_ROOT / "lambdas" / "rain_inference", REPO_ROOT / "lambdas" / "sensor_to_shadow"]
for _root in CODE_ROOTS:
    if str(_root) not in sys.path:
        sys.path.insert(0, str(_root))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

GOAL_MEDIAN_US = 2.0
GOAL_SPEEDUP = 10_000
GOAL_START_S = 0.2
GOAL_START_MIB = 60.0
STARTUP_RUNS = 3

# Each child prints its prediction and its peak RSS (VmHWM: per process image, so not inherited across exec,
# unlike getrusage's ru_maxrss of a forked child); the parent measures the wall time.
PEAK_RSS = """
with open("/proc/self/status") as status:
    print(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
"""
LITERT_CHILD = """
import sys
sys.path[:0] = {paths!r}
from rain_inference.model import load_model
model = load_model({model_dir!r}, backend="litert")
print(model.predict_proba([8.0, 93.0, 1004.0, -3.2, 1.1]))
""" + PEAK_RSS
# Timed on the Lambdas' Python 3.8 venv, as time_per_call times here: median and p99 seconds per backend.
PY38 = REPO_ROOT / ".venv-py38" / "bin" / "python"
PY38_CHILD = """
import json, statistics, sys, time
sys.path[:0] = {paths!r}
from rain_inference.model import load_model
features = json.load(sys.stdin)
clock = time.perf_counter_ns
overhead = []
for _ in range(2000):
    start = clock()
    overhead.append(clock() - start)
timer_cost = statistics.median(overhead)
result = {{}}
for backend in ("litert", "numpy"):
    model = load_model({model_dir!r}, backend=backend)
    for row in features[:50]:
        model.predict_proba(row)
    samples = []
    for index in range({count}):
        row = features[index % len(features)]
        start = clock()
        model.predict_proba(row)
        samples.append(max(clock() - start - timer_cost, 0) / 1e9)
    samples.sort()
    result[backend] = {{"runtime": model.runtime, "median": statistics.median(samples),
                        "p99": samples[min(len(samples) - 1, int(0.99 * len(samples)))]}}
print(json.dumps(result))
"""
TENSORFLOW_CHILD = """
import tensorflow as tf
serve = tf.saved_model.load({saved_model!r}).signatures["serving_default"]
print(float(serve(features=tf.constant([[8.0, 93.0, 1004.0, -3.2, 1.1]]))["p_rain"][0, 0]))
""" + PEAK_RSS


def sample_features(limit: int = 2000) -> list[list[float]]:
    """Real feature vectors: the test period of every station, through the Lambdas' own feature code."""
    sys.path.insert(0, str(REPO_ROOT / "resources" / "rain_model"))
    import train

    table = train.feature_table(train.load_weather(train.weather_csv_path()))
    test = train.split_by_time(table)["test"]
    return test.x.astype(float).tolist()[:limit]


def time_per_call(call: Callable[[list[float]], object], inputs: Sequence, count: int) -> list[float]:
    """Seconds per call, each call timed alone (the timer's own cost subtracted), cycling through inputs."""
    clock = time.perf_counter_ns
    overhead = []
    for _ in range(2000):
        start = clock()
        overhead.append(clock() - start)
    timer_cost = statistics.median(overhead)
    for value in inputs[:50]:  # warm-up: first calls build caches and traces
        call(value)
    samples = []
    size = len(inputs)
    for index in range(count):
        value = inputs[index % size]
        start = clock()
        call(value)
        samples.append(max(clock() - start - timer_cost, 0) / 1e9)
    return samples


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The value below which `fraction` of the samples lie (nearest rank)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def keras_model(model_dir: Path):
    """The trained network as a Keras model, rebuilt from weights.npz (normalisation inside the graph)."""
    import keras
    import numpy as np

    with np.load(model_dir / "weights.npz") as archive:
        weights = {key: archive[key] for key in archive.files}
    inputs = keras.Input(shape=(weights["normalization_mean"].shape[0],), dtype="float32")
    hidden = keras.layers.Normalization(mean=weights["normalization_mean"],
                                        variance=np.square(weights["normalization_std"]))(inputs)
    layer = 0
    while f"dense_{layer}_kernel" in weights:
        kernel, bias = weights[f"dense_{layer}_kernel"], weights[f"dense_{layer}_bias"]
        last = f"dense_{layer + 1}_kernel" not in weights
        dense = keras.layers.Dense(kernel.shape[1], activation="sigmoid" if last else "relu")
        hidden = dense(hidden)
        dense.set_weights([kernel, bias])
        layer += 1
    return keras.Model(inputs, hidden)


def startup(script: str) -> tuple[float, float, str, float]:
    """Wall seconds, peak RSS (MiB), the prediction printed and CPU seconds of a fresh interpreter running `script`.

    CPU seconds (user + system) say what the start costs on a machine busy with other work; wall time includes
    waiting for a CPU.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False,
                               env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    wall = time.perf_counter() - start
    if completed.returncode != 0:
        raise RuntimeError(f"start-up child failed ({completed.returncode}): {completed.stderr[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    prediction, peak_kib = completed.stdout.split()[-2:]
    return wall, int(peak_kib) / 1024.0, prediction, cpu


def median_startup(script: str) -> tuple[float, float, str, float]:
    """The median wall time, RSS and CPU time over a few fresh processes."""
    runs = [startup(script) for _ in range(STARTUP_RUNS)]
    return (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs), runs[-1][2],
            statistics.median(r[3] for r in runs))


def python38_latencies(model_dir: Path, features: list[list[float]], count: int = 20000) -> dict | None:
    """LiteRT (tflite-runtime) and NumPy per reading on the Lambdas' Python 3.8, or None without that venv."""
    import json

    if not PY38.exists():
        return None
    script = PY38_CHILD.format(paths=[str(p) for p in CODE_ROOTS], model_dir=str(model_dir), count=count)
    completed = subprocess.run([str(PY38), "-c", script], input=json.dumps(features), capture_output=True,
                               text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"the Python 3.8 child failed: {completed.stderr[-2000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def run() -> str:
    """Runs every measurement and returns the markdown section."""
    import numpy as np
    from rain_inference.model import load_model

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as scratch:
        model_dir = Path(scratch)
        with tarfile.open(ARCHIVE, "r:gz") as archive:
            archive.extractall(model_dir, filter="data")
        # Start-up first, while this process is still small and quiet.
        litert_start = median_startup(LITERT_CHILD.format(paths=[str(p) for p in CODE_ROOTS],
                                                          model_dir=str(model_dir)))
        tf_start = median_startup(TENSORFLOW_CHILD.format(saved_model=str(model_dir / "saved_model")))
        if abs(float(litert_start[2]) - float(tf_start[2])) > 1e-5:
            raise RuntimeError(f"LiteRT child predicts {litert_start[2]}, TensorFlow child {tf_start[2]}")
        features = sample_features()
        litert = load_model(str(model_dir), backend="litert")
        numpy_model = load_model(str(model_dir), backend="numpy")

        import tensorflow as tf

        model = keras_model(model_dir)
        arrays = [np.array([row], dtype=np.float32) for row in features]
        graph_call = tf.function(lambda x: model(x, training=False))
        expected = litert.predict_proba(features[0])
        for name, value in (("numpy", numpy_model.predict_proba(features[0])),
                            ("model.predict", float(model.predict(arrays[0], verbose=0)[0, 0])),
                            ("tf.function", float(graph_call(arrays[0])[0, 0]))):
            if abs(value - expected) > 1e-5:
                raise RuntimeError(f"{name} gives {value}, LiteRT {expected}: not the same model")

        latencies = {
            "LiteRT (`rain_inference.model`, ai-edge-litert)": time_per_call(litert.predict_proba, features, 20000),
            "NumPy (`rain_inference.model`, no LiteRT)": time_per_call(numpy_model.predict_proba, features, 20000),
            "TensorFlow `tf.function` (same weights)": time_per_call(graph_call, arrays, 2000),
            "TensorFlow Keras `model.predict` (same weights)": time_per_call(
                lambda x: model.predict(x, verbose=0), arrays, 100),
        }
        on_python38 = python38_latencies(model_dir, features)

    predict_median = statistics.median(latencies["TensorFlow Keras `model.predict` (same weights)"])
    ours = statistics.median(latencies["LiteRT (`rain_inference.model`, ai-edge-litert)"])
    lines = [
        "## Rain model inference",
        "",
        "Command: `.venv/bin/python bench/inference.py` (also run by `make bench`). "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs ({platform.machine()}), shared machine "
        f"(load average {load_before:.1f} at start). "
        f"Inputs: {len(features)} real feature vectors of the test period, batch 1, each call timed alone.",
        "",
        "| path | median µs / reading | p99 µs | model.predict ÷ path |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, samples in latencies.items():
        median = statistics.median(samples)
        lines.append(f"| {name} | {median * 1e6:,.2f} | {percentile(samples, 0.99) * 1e6:,.2f} "
                     f"| {predict_median / median:,.0f}× |")
    names38 = {"litert": "LiteRT on Python 3.8 (`rain_inference.model`, {})", "numpy": "NumPy on Python 3.8"}
    for backend, figures in (on_python38 or {}).items():
        lines.append(f"| {names38[backend].format(figures['runtime'].replace('_', '-'))} "
                     f"| {figures['median'] * 1e6:,.2f} | {figures['p99'] * 1e6:,.2f} "
                     f"| {predict_median / figures['median']:,.0f}× |")
    lines += [
        "",
        f"Fresh process that loads the resource and predicts once (median of {STARTUP_RUNS}):",
        "",
        "| runtime | wall s | CPU s | peak RSS MiB |",
        "| --- | ---: | ---: | ---: |",
        f"| LiteRT (`load_model` + `predict_proba`) | {litert_start[0]:.2f} | {litert_start[3]:.2f} "
        f"| {litert_start[1]:.0f} |",
        f"| TensorFlow (`tf.saved_model.load` + serve) | {tf_start[0]:.2f} | {tf_start[3]:.2f} | {tf_start[1]:.0f} |",
        "",
        "| goal | measured | |",
        "| --- | --- | --- |",
        f"| LiteRT median ≤ {GOAL_MEDIAN_US} µs per reading | {ours * 1e6:.2f} µs "
        f"| {verdict(ours * 1e6 <= GOAL_MEDIAN_US)} |",
        f"| ≥ {GOAL_SPEEDUP:,}× faster than `model.predict` | {predict_median / ours:,.0f}× "
        f"| {verdict(predict_median / ours >= GOAL_SPEEDUP)} |",
        f"| start ≤ {GOAL_START_S} s | {litert_start[0]:.2f} s (TensorFlow {tf_start[0]:.2f} s) "
        f"| {verdict(litert_start[0] <= GOAL_START_S)} |",
        f"| start ≤ {GOAL_START_MIB:.0f} MiB | {litert_start[1]:.0f} MiB (TensorFlow {tf_start[1]:.0f} MiB) "
        f"| {verdict(litert_start[1] <= GOAL_START_MIB)} |",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
