"""The stand-in cloud's IoT Jobs put together: the model, its MQTT data plane, its HTTP control plane, and the
local AWS (moto, server mode) that holds the bundles (S3) and the things and thing groups (IoT).

`start_jobs(cloud, aws_endpoint)` starts them beside a running stand-in and writes `<state_dir>/jobs.json` (0600:
it holds the control plane's access key) naming the endpoints, the bucket and the credentials, which
`simcore group ...` and `simcore fleet ...` read with `--standin <state_dir>`.

Why not moto's own IoT jobs: moto keeps one QUEUED execution per target ARN without expanding thing groups,
fixes every execution's number and version at 123 and has no device-side update, so the data plane could not
keep AWS's versions on it; the model here owns the jobs, and moto keeps what it does model (things, groups, S3).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from simcore.cloud.jobs_api import JobsControlPlane
from simcore.cloud.jobs_model import JobsModel
from simcore.cloud.jobs_service import JobsDataPlane
from simcore.cloud.standin import RunningCloud
from simcore.defaults import DEFAULT_PRESIGNED_URL_EXPIRY_S, DEFAULT_REGION
from simcore.private import private_file

JOBS_FILE = "jobs.json"
BUNDLE_BUCKET = "simcore-greengrass-bundles"


@dataclass
class StandinJobs:
    """The running jobs service; `stop()` ends it."""

    model: JobsModel
    data_plane: JobsDataPlane
    control_plane: JobsControlPlane
    settings: dict[str, Any]
    path: Path

    def stop(self) -> None:
        """Stop the control plane, then the data plane."""
        self.control_plane.stop()
        self.data_plane.stop()
        self.path.unlink(missing_ok=True)


def _aws_client(service: str, endpoint: str, key_id: str, secret: str) -> Any:
    import boto3

    return boto3.client(service, region_name=DEFAULT_REGION, endpoint_url=endpoint,
                        aws_access_key_id=key_id, aws_secret_access_key=secret)


def start_jobs(cloud: RunningCloud, aws_endpoint: str) -> StandinJobs:
    """Start the jobs service of `cloud`, with bundles and thing groups in the local AWS at `aws_endpoint`."""
    key_id = "AKIA" + secrets.token_hex(8).upper()
    secret = secrets.token_urlsafe(30)
    s3 = _aws_client("s3", aws_endpoint, key_id, secret)
    iot = _aws_client("iot", aws_endpoint, key_id, secret)
    from botocore.exceptions import ClientError

    try:
        s3.create_bucket(Bucket=BUNDLE_BUCKET)
    except ClientError as error:  # a local AWS that outlived an earlier stand-in still has it
        if error.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise

    def presign(bucket: str, key: str) -> str:
        return s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key},
                                         ExpiresIn=DEFAULT_PRESIGNED_URL_EXPIRY_S)

    def expand_group(name: str) -> list[str]:
        things: list[str] = []
        for page in iot.get_paginator("list_things_in_thing_group").paginate(thingGroupName=name, recursive=True):
            things.extend(page["things"])
        return things

    model = JobsModel()
    issued = cloud.ca.issue_thing("simcore-cloud-jobs-service", file_stem="jobs-service")
    data_plane = JobsDataPlane(model, replace(
        cloud.core_settings(), client_id="simcore-cloud-jobs-service", cert_path=issued.cert_path,
        key_path=issued.key_path, backoff_base_s=0.5, backoff_max_s=4.0), presign)
    data_plane.start()
    control_plane = JobsControlPlane(model, key_id, relay_endpoint=aws_endpoint, expand_group=expand_group)
    control_plane.start()
    settings = {"iot_endpoint": control_plane.endpoint, "aws_endpoint": aws_endpoint, "bucket": BUNDLE_BUCKET,
                "region": DEFAULT_REGION, "access_key_id": key_id, "secret_access_key": secret}
    path = private_file(cloud.state_dir / JOBS_FILE)
    path.write_text(json.dumps(settings, indent=2) + "\n")
    return StandinJobs(model, data_plane, control_plane, settings, path)


def read_jobs_settings(state_dir: Path) -> dict[str, Any]:
    """The jobs.json a running stand-in wrote in `state_dir` (FileNotFoundError when it has none)."""
    return json.loads((Path(state_dir) / JOBS_FILE).read_text())
