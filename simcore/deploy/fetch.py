"""Fetches an ML resource's data: a local path, a `file://` URI, an `s3://` URI, or a SageMaker training job.

S3 goes through boto3 with the usual credential chain. The endpoint is the caller's `s3_endpoint_url`,
else `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` (boto3 reads them itself), else AWS. A SageMaker job
is looked up with `describe_training_job` (endpoint from `AWS_ENDPOINT_URL_SAGEMAKER` the same way), and
its `ModelArtifacts.S3ModelArtifacts` is fetched from S3. Errors name the resource and carry AWS's code.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from urllib.parse import unquote, urlparse

from simcore.deploy import aws
from simcore.errors import DeployError
from simcore.group import Resource

SAGEMAKER_JOB_ARN = re.compile(
    r"arn:aws[a-z-]*:sagemaker:([a-z0-9-]+):(\d{12}):training-job/([a-zA-Z0-9-]{1,63})"
)


def local_source(uri: str, template_dir: Path) -> Path | None:
    """The local path a model source names (`file://` or a path, relative to the template), else None."""
    if uri.startswith("file://"):
        parsed = urlparse(uri)
        if parsed.netloc not in ("", "localhost"):
            raise DeployError(f"file URI {uri!r} names host {parsed.netloc!r}; only local files are read")
        return Path(unquote(parsed.path))
    if "://" in uri:
        return None
    return (template_dir / uri).resolve()


def fetch_model(
    resource: Resource,
    work_dir: Path,
    *,
    template_dir: Path,
    region: str,
    s3_endpoint_url: str | None = None,
    max_bytes: int,
) -> Path:
    """A local file or folder holding `resource`'s model data (downloads land in `work_dir`)."""
    uri = sagemaker_model_uri(resource, region) if resource.kind == "ml_sagemaker" else resource.source
    local = local_source(uri, template_dir)
    if local is not None:
        return _checked_local(resource, uri, local)
    if uri.startswith("s3://"):
        return download_s3(
            uri,
            work_dir / f"{resource.id}.download",
            resource_id=resource.id,
            region=region,
            endpoint_url=s3_endpoint_url,
            max_bytes=max_bytes,
        )
    scheme = uri.split("://", 1)[0]
    raise DeployError(
        f"resource {resource.id}: unsupported model URI scheme {scheme!r} in {uri!r} (s3, file or a path)"
    )


def _checked_local(resource: Resource, uri: str, local: Path) -> Path:
    """`local` when it is a folder or a regular file; refused up front when it is a FIFO, a device or a socket
    (`file:///dev/zero` would be read forever, a FIFO waits for a writer), before anything opens it."""
    try:
        mode = os.stat(local).st_mode
    except FileNotFoundError:
        raise DeployError(f"resource {resource.id}: model source {uri!r} does not exist ({local})") from None
    except OSError as error:
        raise DeployError(f"resource {resource.id}: cannot read model source {uri!r}: {error.strerror}") from None
    if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        kind = next((name for test, name in _SPECIAL_KINDS if test(mode)), "special file")
        raise DeployError(
            f"resource {resource.id}: model source {uri!r} is a {kind}, not a regular file or folder; "
            "a model is a tar or zip archive, or a folder",
            location=str(local),
        )
    return local


_SPECIAL_KINDS = (
    (stat.S_ISFIFO, "FIFO"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
    (stat.S_ISSOCK, "socket"),
)


def download_s3(
    uri: str,
    target: Path,
    *,
    resource_id: str,
    region: str,
    endpoint_url: str | None,
    max_bytes: int,
) -> Path:
    """Download `s3://bucket/key` to `target`, refusing objects above `max_bytes`."""
    parsed = urlparse(uri)
    bucket, key = parsed.netloc, unquote(parsed.path.lstrip("/"))
    if not bucket or not key:
        raise DeployError(f"resource {resource_id}: {uri!r} is not an s3://bucket/key URI")
    s3 = aws.client("s3", region, endpoint_url)
    with aws.aws_call(f"resource {resource_id}: cannot fetch {uri}", permission="s3:GetObject"):
        head = s3.head_object(Bucket=bucket, Key=key)
        if head["ContentLength"] > max_bytes:
            raise DeployError(
                f"resource {resource_id}: {uri} is {head['ContentLength']} bytes, "
                f"above the {max_bytes}-byte limit"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
        written = 0
        # Counted as it arrives: the object may have been replaced by a bigger one since the HEAD.
        with open(target, "wb") as output:
            while chunk := body.read(_DOWNLOAD_CHUNK):
                written += len(chunk)
                if written > max_bytes:
                    raise DeployError(f"resource {resource_id}: {uri} is above the {max_bytes}-byte limit")
                output.write(chunk)
    return target


_DOWNLOAD_CHUNK = 1024 * 1024


def sagemaker_model_uri(resource: Resource, default_region: str) -> str:
    """The S3 URI of the model a completed SageMaker training job produced."""
    match = SAGEMAKER_JOB_ARN.fullmatch(resource.source)
    if not match:
        raise DeployError(
            f"resource {resource.id}: {resource.source!r} is not a SageMaker training job ARN "
            "(arn:aws:sagemaker:<region>:<account>:training-job/<name>)"
        )
    region, _, job_name = match.groups()
    sagemaker = aws.client("sagemaker", region or default_region)
    with aws.aws_call(f"resource {resource.id}: cannot describe training job {job_name}",
                      permission="sagemaker:DescribeTrainingJob"):
        job = sagemaker.describe_training_job(TrainingJobName=job_name)
    status = job.get("TrainingJobStatus")
    artifact = (job.get("ModelArtifacts") or {}).get("S3ModelArtifacts")
    if status != "Completed" or not artifact:
        raise DeployError(
            f"resource {resource.id}: training job {job_name} is {status}, "
            "not Completed with a model artifact"
        )
    return artifact
