"""A group template with the ML Image Classification connector, deployed and run as `simcore run` runs it:
template → deploy (the model archive fetched and extracted as an ML resource) → RunningCore → a Lambda whose
ML SDK calls reach the connector's MXNet model server, logging under the service name.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from lambdas_fixtures.harness import PY38, IPCClient, function_arn

from simcore.connectors.registry import build_registry
from simcore.deploy.deployment import deploy
from simcore.service.running import RunningCore, RunOptions

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = Path(__file__).parent / "fixtures" / "ml_connector" / "ml_connector_group.yaml"
SAMPLES = REPO / "resources" / "digits_model" / "dist" / "samples"
CLIENT = function_arn("ml-client")
TESTER = function_arn("ml-test-harness")


@pytest.fixture(scope="module")
def running(tmp_path_factory) -> Iterator[RunningCore]:
    root = tmp_path_factory.mktemp("ml-group") / "ggc"
    deployment = deploy(TEMPLATE, None, root)
    interpreters = {"python3.8": str(PY38)} if PY38.exists() else {}
    running = RunningCore(deployment, RunOptions(isolation="off", interpreters=interpreters))
    running.start()
    try:
        yield running
    finally:
        running.stop()


def classify(running: RunningCore, name: str) -> dict:
    client = IPCClient(port=running.core.ipc_port)
    client.auth_token = running.core.issue_token(TESTER)
    content_type = "image/png" if name.endswith(".png") else "image/jpeg"
    event = {"call": "infer", "service_name": "digits", "content_type": content_type,
             "image_b64": base64.b64encode((SAMPLES / name).read_bytes()).decode()}
    invocation_id = client.post_work(CLIENT, json.dumps(event).encode(), b"", "RequestResponse")
    result = client.get_work_result(CLIENT, invocation_id)
    assert result.func_err == "", result.payload
    return json.loads(result.payload)


def test_the_deployed_connector_classifies_and_logs_under_its_service_name(running):
    labels = json.loads((SAMPLES / "labels.json").read_text())
    for name in ("digit-04.png", "digit-05.jpg"):
        predictions = classify(running, name)["predictions"]
        assert max(range(10), key=predictions.__getitem__) == labels[name]
    status = running.status()["connectors"]["connectors"]
    [ic] = [stats for arn, stats in status.items() if "ImageClassification" in arn]
    assert ic["succeeded"] == 2 and ic["function"] == "GG-ML-INF-image-classification-digits"
    log = running.deployment.root / "var" / "log" / "user" / "us-east-1" / "aws" / "digits.log"
    assert "model loaded: 10 classes" in log.read_text()  # written before the first answer
    assert all(line.split("-", 1)[1].split(",", 1)[1].startswith("[digits]")
               for line in log.read_text().splitlines() if line)
    feedback = [stats for arn, stats in status.items() if "MLFeedback" in arn][0]
    assert feedback["received"] == 2


def test_deploying_object_detection_exits_3_saying_what_is_missing_and_keeps_the_current_deployment(tmp_path):
    root = tmp_path / "ggc"
    template = Path(__file__).parent / "fixtures" / "ml_connector" / "object_detection_group.yaml"
    completed = subprocess.run([sys.executable, "-m", "simcore", "deploy", str(template), "--root", str(root)],
                               capture_output=True, text=True, timeout=120, cwd=REPO)
    assert completed.returncode == 3, completed.stderr
    [line] = completed.stderr.strip().splitlines()  # one line, no traceback
    assert "ObjectDetectionx86-64" in line and "Neo-compiled model" in line and "libdlr.so" in line
    assert "Connectors[DigitsClassifier].ConnectorArn" in line
    assert not (root / "current").exists()
    assert json.loads((root / "deployments" / "status.json").read_text())["DeploymentStatus"] == "Failure"


def test_a_sagemaker_training_job_model_is_deployed_and_served(aws, tmp_path):
    """The model as a SageMaker training job's artifact (moto's SageMaker and S3), as the v1 connector took it."""
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="digits-jobs")
    sagemaker = boto3.client("sagemaker", region_name="us-east-1")
    job_arn = sagemaker.create_training_job(
        TrainingJobName="digits-job",
        AlgorithmSpecification={"TrainingImage": "image-classification", "TrainingInputMode": "File"},
        RoleArn="arn:aws:iam::123456789012:role/sagemaker",
        OutputDataConfig={"S3OutputPath": "s3://digits-jobs/output"},
        ResourceConfig={"InstanceType": "ml.p2.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 1},
        StoppingCondition={"MaxRuntimeInSeconds": 60},
    )["TrainingJobArn"]
    artifact = sagemaker.describe_training_job(TrainingJobName="digits-job")["ModelArtifacts"]["S3ModelArtifacts"]
    s3.put_object(Bucket="digits-jobs", Key=artifact.split("s3://digits-jobs/", 1)[1],
                  Body=(REPO / "resources" / "digits_model" / "dist" / "digits-model.tar.gz").read_bytes())
    deployment = deploy(TEMPLATE, {"ModelSageMakerJobArn": job_arn}, tmp_path / "ggc")
    assert deployment.group.resource("digits-model").kind == "ml_sagemaker"
    registry = build_registry(deployment.group, deployment.root, publish=lambda *args, **kwargs: None,
                              cloud_available=False, resource_dirs=deployment.resource_dirs)
    try:
        address = "arn:aws:lambda:us-east-1:aws:function:GG-ML-INF-image-classification-digits"
        context = base64.b64encode(json.dumps({"custom": {"Content-Type": "image/jpeg"}}).encode())
        payload, function_error = registry.invoke(address, (SAMPLES / "digit-03.jpg").read_bytes(), context)
        assert function_error == "", payload
        body = json.loads(payload)["Body"]
        predictions = [float(value) for value in body[1:-1].split(",")]
        labels = json.loads((SAMPLES / "labels.json").read_text())
        assert max(range(10), key=predictions.__getitem__) == labels["digit-03.jpg"]
    finally:
        registry.stop()
