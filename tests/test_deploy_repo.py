"""Deploying the project's own group template: the real Lambda code and the real model archive
(resources/rain_model/dist/rain-model.tar.gz, or a stand-in built here when it has not been built yet)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from simcore.deploy.deployment import deploy
from simcore.deploy.record import load_deployment, read_status

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "cloudformation" / "greengrass-group.yaml"
MODEL = REPO / "resources" / "rain_model" / "dist" / "rain-model.tar.gz"


def _model_uri(tmp_path: Path) -> tuple[str, bool]:
    """The model archive to deploy, and whether it is the project's real one."""
    if MODEL.is_file():
        return "../resources/rain_model/dist/rain-model.tar.gz", True
    stand_in = tmp_path / "rain-model.tar.gz"
    with tarfile.open(stand_in, "w:gz") as tar:
        data = json.dumps({"version": "stand-in"}).encode()
        info = tarfile.TarInfo("model.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return stand_in.as_uri(), False


def test_repo_template_deploys_with_code_and_model(tmp_path):
    uri, is_real_model = _model_uri(tmp_path)
    root = tmp_path / "ggc"
    deployment = deploy(TEMPLATE, {"ModelS3Uri": uri, "SensorSource": "replay:JFK"}, root)

    assert read_status(root)["DeploymentStatus"] == "Success"
    for function in deployment.group.functions:
        package = function.handler.split(".", 1)[0]
        assert (function.code_dir / package / "handler.py").is_file()
        assert function.code_dir.is_relative_to(deployment.directory)
        assert not list(function.code_dir.rglob("__pycache__"))

    (model_id,) = [resource.id for resource in deployment.group.resources if resource.kind == "ml_s3"]
    model_dir = deployment.resource_dirs[model_id]
    assert (model_dir / "model.json").is_file()
    if is_real_model:
        for name in ("model.tflite", "weights.npz", "saved_model"):
            assert (model_dir / name).exists(), name

    reloaded = load_deployment(root)
    assert reloaded.group == deployment.group
    sensor = [function for function in reloaded.group.functions if function.handler.startswith("sensor_to_shadow.")]
    assert sensor[0].environment["SENSOR_SOURCE"] == "replay:JFK"
