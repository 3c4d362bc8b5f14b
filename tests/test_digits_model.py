"""The committed digits model (resources/digits_model) is what its training script makes, and is good enough.

The retrain runs train.py on the connector runtime (`.venv-mxnet`, Python 3.8 + MXNet) and compares the archive
byte for byte, so the model card's figures and the committed archive cannot drift from the code.
"""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from simcore.connectors.image_classification import connector_runtime

REPO = Path(__file__).resolve().parents[1]
TRAIN = REPO / "resources" / "digits_model" / "train.py"
DIST = REPO / "resources" / "digits_model" / "dist"


def test_the_committed_archive_has_sagemakers_image_classification_layout():
    with tarfile.open(DIST / "digits-model.tar.gz") as archive:
        names = sorted(member.name for member in archive.getmembers() if member.isfile())
        shapes = json.load(archive.extractfile("model-shapes.json"))
    assert names == ["image-classification-0012.params", "image-classification-symbol.json", "model-shapes.json"]
    assert shapes == [{"name": "data", "shape": [1, 3, 32, 32]}]


def test_the_model_beats_its_baselines_on_the_held_out_split():
    metrics = json.loads((DIST / "metrics.json").read_text())
    assert metrics["test_samples"] == 450
    assert metrics["accuracy"] >= 0.95
    assert metrics["accuracy"] > metrics["baselines"]["nearest_centroid"] > metrics["baselines"]["majority_class"]


@pytest.mark.slow
def test_retraining_reproduces_the_committed_model_byte_for_byte(tmp_path):
    runtime = connector_runtime(os.environ)
    assert runtime.exists(), "the connector runtime is missing: make venv-mxnet"
    subprocess.run([str(runtime), str(TRAIN), "--out", str(tmp_path)], check=True, capture_output=True, timeout=600)
    assert (tmp_path / "digits-model.tar.gz").read_bytes() == (DIST / "digits-model.tar.gz").read_bytes()
    assert json.loads((tmp_path / "metrics.json").read_text()) == json.loads((DIST / "metrics.json").read_text())
    for sample in sorted((DIST / "samples").iterdir()):
        assert (tmp_path / "samples" / sample.name).read_bytes() == sample.read_bytes(), sample.name
