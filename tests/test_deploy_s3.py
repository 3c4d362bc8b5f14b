"""simcore.deploy.deployment fetching ML resources from S3 and SageMaker through boto3 (moto's in-process AWS)."""

from __future__ import annotations

import io
import json
import re
import shutil
import tarfile
from pathlib import Path

import boto3
import pytest

from simcore.deploy.deployment import deploy
from simcore.deploy.record import read_status
from simcore.errors import DeployError

FIXTURES = Path(__file__).parent / "fixtures" / "templates"
BUCKET = "greengrass-models"


def _model_tar(version: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = json.dumps({"version": version}).encode()
        info = tarfile.TarInfo("model.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def s3(aws):
    """An S3 client on moto's AWS, with the models bucket created."""
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def template(tmp_path) -> Path:
    work = tmp_path / "work"
    shutil.copytree(FIXTURES, work)
    return work / "sam_group.yaml"


def test_model_is_fetched_from_s3_and_extracted(s3, template, tmp_path):
    s3.put_object(Bucket=BUCKET, Key="rain/model.tar.gz", Body=_model_tar("s3-1"))
    deployment = deploy(template, {"ModelS3Uri": f"s3://{BUCKET}/rain/model.tar.gz"}, tmp_path / "ggc")
    model_json = deployment.resource_dirs["rain-model"] / "model.json"
    assert json.loads(model_json.read_text()) == {"version": "s3-1"}
    assert not (deployment.directory / ".downloads").exists()


def test_missing_s3_object_fails_with_the_aws_code(s3, template, tmp_path):
    with pytest.raises(DeployError, match=re.escape(f"cannot fetch s3://{BUCKET}/absent.tar.gz")) as raised:
        deploy(template, {"ModelS3Uri": f"s3://{BUCKET}/absent.tar.gz"}, tmp_path / "ggc")
    assert raised.value.code == "404"
    assert f"resource rain-model: cannot fetch s3://{BUCKET}/absent.tar.gz" in raised.value.message
    assert read_status(tmp_path / "ggc")["DeploymentStatus"] == "Failure"


def test_s3_object_above_the_limit_is_not_downloaded(s3, template, tmp_path):
    from simcore.deploy.archive import ExtractionLimits

    s3.put_object(Bucket=BUCKET, Key="big.tar.gz", Body=b"\x00" * 2048)
    with pytest.raises(DeployError, match="2048 bytes, above the 1024-byte limit"):
        deploy(
            template,
            {"ModelS3Uri": f"s3://{BUCKET}/big.tar.gz"},
            tmp_path / "ggc",
            limits=ExtractionLimits(max_total_bytes=1024),
        )


def test_s3_endpoint_override_is_used(s3, template, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(DeployError, match=r"http://127\.0\.0\.1:9"):
        deploy(
            template,
            {"ModelS3Uri": f"s3://{BUCKET}/rain/model.tar.gz"},
            tmp_path / "ggc",
            s3_endpoint_url="http://127.0.0.1:9",
        )


def _training_job(name: str) -> str:
    sagemaker = boto3.client("sagemaker", region_name="us-east-1")
    return sagemaker.create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={"TrainingImage": "rain-train", "TrainingInputMode": "File"},
        RoleArn="arn:aws:iam::123456789012:role/sagemaker",
        OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/jobs"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        StoppingCondition={"MaxRuntimeInSeconds": 60},
    )["TrainingJobArn"]


def test_sagemaker_job_model_artifact_is_deployed(s3, template, tmp_path):
    job_arn = _training_job("rain-job")
    artifact = boto3.client("sagemaker", region_name="us-east-1").describe_training_job(TrainingJobName="rain-job")[
        "ModelArtifacts"
    ]["S3ModelArtifacts"]
    key = artifact.split(f"s3://{BUCKET}/", 1)[1]
    s3.put_object(Bucket=BUCKET, Key=key, Body=_model_tar("sagemaker-1"))
    deployment = deploy(template, {"ModelSageMakerJobArn": job_arn}, tmp_path / "ggc")
    assert deployment.group.resource("rain-model").kind == "ml_sagemaker"
    model_json = deployment.resource_dirs["rain-model"] / "model.json"
    assert json.loads(model_json.read_text()) == {"version": "sagemaker-1"}


def test_unknown_sagemaker_job_is_named(s3, template, tmp_path):
    job_arn = "arn:aws:sagemaker:us-east-1:123456789012:training-job/never-ran"
    with pytest.raises(DeployError, match="resource rain-model: cannot describe training job never-ran"):
        deploy(template, {"ModelSageMakerJobArn": job_arn}, tmp_path / "ggc")


def test_bucket_the_v1_service_would_not_read_is_a_warning(s3, template, tmp_path):
    s3.create_bucket(Bucket="plain-models")
    s3.put_object(Bucket="plain-models", Key="model.tar.gz", Body=_model_tar("plain"))
    deployment = deploy(template, {"ModelS3Uri": "s3://plain-models/model.tar.gz"}, tmp_path / "ggc")
    assert any("bucket 'plain-models' has neither 'greengrass' nor 'sagemaker'" in w for w in deployment.warnings)
    s3.put_object(Bucket=BUCKET, Key="model.tar.gz", Body=_model_tar("fine"))
    deployment = deploy(template, {"ModelS3Uri": f"s3://{BUCKET}/model.tar.gz"}, tmp_path / "ggc")
    assert not [warning for warning in deployment.warnings if "bucket" in warning]


def test_s3_endpoint_from_the_environment_is_used(s3, template, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    with pytest.raises(DeployError, match=r"http://127\.0\.0\.1:9"):
        deploy(template, {"ModelS3Uri": f"s3://{BUCKET}/rain/model.tar.gz"}, tmp_path / "ggc")
