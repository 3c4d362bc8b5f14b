"""Train the digits image classifier with MXNet and pack it as SageMaker's image-classification algorithm does.

Data: scikit-learn's handwritten digits (1,797 8x8 grey images, 10 classes, shipped inside the package), each
upscaled 4x (nearest neighbour) to 32x32 and repeated over 3 channels, pixel values 0-255 like a decoded JPEG.
Split: 25 % held out, stratified, fixed seed. Network: a small CNN whose first op scales the raw pixels to 0-1,
so the service feeds decoded RGB pixels as SageMaker's serving does; its last op is a `SoftmaxOutput` named
`softmax`, as in SageMaker's symbols.

Output (`--out`), the layout of SageMaker's model archive (`model.tar.gz`):
  image-classification-symbol.json, image-classification-<epoch:04d>.params, model-shapes.json
packed as `digits-model.tar.gz` (the loose files are not kept), plus `metrics.json` (held-out accuracy
against the baselines) and `samples/` (a few held-out images as PNG and JPEG, with their labels, for the tests).

Reproducible: fixed seeds, one thread and MXNet's NaiveEngine (set before mxnet is imported), and the same
kernels on every x86-64 CPU: oneDNN off (it picks its kernels by the CPU's instruction set: an Intel Xeon and
an AMD EPYC trained different weights) and OpenBLAS's Haswell kernels (AVX2) whatever the CPU. So the same
packages give the same parameters byte for byte. Runs on the connector's runtime: `.venv-mxnet/bin/python`
(`make digits-model`).
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile
import tempfile
from pathlib import Path

# Determinism first: these are read when mxnet loads.
os.environ.setdefault("MXNET_ENGINE_TYPE", "NaiveEngine")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MXNET_CPU_WORKER_NTHREADS", "1")
os.environ["MXNET_MKLDNN_ENABLED"] = "0"
os.environ["OPENBLAS_CORETYPE"] = "Haswell"

import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

SEED = 20261202
SCALE = 4
SIDE = 8 * SCALE
EPOCHS = 12
BATCH = 32
PREFIX = "image-classification"
ARCHIVE = "digits-model.tar.gz"
SAMPLES_PER_FORMAT = 5


def images(digits_data):
    """(n, 64) values 0-16 -> (n, 3, 32, 32) float32 pixels 0-255 (nearest-neighbour upscaling)."""
    grey = np.round(digits_data.reshape(-1, 8, 8) * (255.0 / 16.0))
    big = grey.repeat(SCALE, axis=1).repeat(SCALE, axis=2)
    return np.repeat(big[:, None, :, :], 3, axis=1).astype(np.float32)


def network(classes):
    """The CNN: raw pixels in, class probabilities out (`softmax`)."""
    data = mx.sym.var("data")
    x = data * (1.0 / 255.0)
    x = mx.sym.Convolution(x, kernel=(3, 3), num_filter=16, pad=(1, 1), name="conv1")
    x = mx.sym.Activation(x, act_type="relu")
    x = mx.sym.Pooling(x, kernel=(2, 2), stride=(2, 2), pool_type="max")
    x = mx.sym.Convolution(x, kernel=(3, 3), num_filter=32, pad=(1, 1), name="conv2")
    x = mx.sym.Activation(x, act_type="relu")
    x = mx.sym.Pooling(x, kernel=(2, 2), stride=(2, 2), pool_type="max")
    x = mx.sym.Flatten(x)
    x = mx.sym.FullyConnected(x, num_hidden=classes, name="fc")
    return mx.sym.SoftmaxOutput(x, name="softmax")


def split():
    """The digits as images, and the fixed stratified split: (x_train, x_test, y_train, y_test, images_8x8 test)."""
    digits = load_digits()
    x = images(digits.data)
    indices = np.arange(len(x))
    train_idx, test_idx = train_test_split(
        indices, test_size=0.25, random_state=SEED, stratify=digits.target
    )
    y = digits.target.astype(np.float32)
    return x[train_idx], x[test_idx], y[train_idx], y[test_idx], digits.data[train_idx], digits.data[test_idx]


def baselines(train_flat, y_train, test_flat, y_test):
    """Majority class, and nearest centroid on the 8x8 pixels: what the CNN must beat."""
    majority = np.bincount(y_train.astype(int)).argmax()
    centroids = np.stack([train_flat[y_train == label].mean(axis=0) for label in range(10)])
    distances = ((test_flat[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
    return {
        "majority_class": float(np.mean(y_test == majority)),
        "nearest_centroid": float(np.mean(distances.argmin(axis=1) == y_test)),
    }


def train(x_train, y_train):
    """Fit the network; returns the trained Module."""
    mx.random.seed(SEED)
    np.random.seed(SEED)
    order = np.random.RandomState(SEED).permutation(len(x_train))
    iterator = mx.io.NDArrayIter(x_train[order], y_train[order], batch_size=BATCH, shuffle=False,
                                 label_name="softmax_label")
    module = mx.mod.Module(network(10), data_names=["data"], label_names=["softmax_label"], context=mx.cpu())
    module.fit(
        iterator,
        num_epoch=EPOCHS,
        optimizer="adam",
        optimizer_params={"learning_rate": 0.002},
        initializer=mx.init.Xavier(rnd_type="uniform", magnitude=2.0),
        eval_metric="acc",
    )
    return module


def predict(module, x):
    """Class probabilities for `x`, with the trained module rebound for inference."""
    iterator = mx.io.NDArrayIter(x, batch_size=BATCH)
    return module.predict(iterator).asnumpy()


def write_samples(folder, x_test, y_test):
    """A few held-out images as PNG and JPEG, and `labels.json` naming each file's digit."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    labels = {}
    for index in range(SAMPLES_PER_FORMAT * 2):
        pixels = x_test[index].transpose(1, 2, 0).astype(np.uint8)
        kind = "png" if index % 2 == 0 else "jpg"
        name = f"digit-{index:02d}.{kind}"
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG" if kind == "png" else "JPEG", quality=95)
        (folder / name).write_bytes(buffer.getvalue())
        labels[name] = int(y_test[index])
    (folder / "labels.json").write_text(json.dumps(labels, indent=2, sort_keys=True) + "\n")


def pack(out, files):
    """`digits-model.tar.gz` with fixed metadata, so the same files give the same archive bytes."""
    archive = out / ARCHIVE
    with open(archive, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as zipped, \
            tarfile.open(fileobj=zipped, mode="w") as tar:
        for path in files:
            info = tarfile.TarInfo(path.name)
            info.size = path.stat().st_size
            info.mode = 0o644
            info.mtime = 0
            with open(path, "rb") as data:
                tar.addfile(info, data)
    return archive


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the model files and archive")
    args = parser.parse_args(argv)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        return build(out, Path(scratch))


def build(out, model_dir):
    """Train, pack the archive into `out` (the loose model files go to `model_dir`), write metrics and samples."""

    x_train, x_test, y_train, y_test, flat_train, flat_test = split()
    module = train(x_train, y_train)
    probabilities = predict(module, x_test)
    accuracy = float(np.mean(probabilities.argmax(axis=1) == y_test))

    module.save_checkpoint(str(model_dir / PREFIX), EPOCHS)
    shapes = [{"name": "data", "shape": [1, 3, SIDE, SIDE]}]
    (model_dir / "model-shapes.json").write_text(json.dumps(shapes) + "\n")
    files = [
        model_dir / f"{PREFIX}-symbol.json",
        model_dir / f"{PREFIX}-{EPOCHS:04d}.params",
        model_dir / "model-shapes.json",
    ]
    archive = pack(out, files)
    write_samples(out / "samples", x_test, y_test)

    metrics = {
        "data": "sklearn.datasets.load_digits, upscaled 4x to 3x32x32",
        "train_samples": int(len(x_train)),
        "test_samples": int(len(x_test)),
        "seed": SEED,
        "epochs": EPOCHS,
        "accuracy": accuracy,
        "baselines": baselines(flat_train, y_train, flat_test, y_test),
        "params_sha256": hashlib.sha256(files[1].read_bytes()).hexdigest(),
        "versions": {"mxnet": mx.__version__, "numpy": np.__version__, "python": sys.version.split()[0]},
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    print(json.dumps({"accuracy": accuracy, "baselines": metrics["baselines"], "archive": str(archive)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
