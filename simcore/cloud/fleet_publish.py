"""Publishing a group deployment to a fleet: the bundle to S3, an IoT job naming it; its status; its cancel.

The same boto3 calls against AWS and against the stand-in (`FleetAccess.from_standin`), which serves the jobs
calls on its own control plane and relays the rest to its local AWS. The job document stays far below IoT Jobs'
32 KB: it names the bundle through `${aws:iot:s3-presigned-url:https://s3.<region>.amazonaws.com/<bucket>/<key>}`
(IoT Jobs signs the URL with `presignedUrlConfig.roleArn` when the core fetches the document) with the bundle's
SHA-256 and size, and the group version id.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simcore.checksums import file_sha256
from simcore.defaults import DEFAULT_PRESIGNED_URL_EXPIRY_S, JOB_DOCUMENT_MAX_BYTES
from simcore.errors import InputError, SimcoreError

OPERATION = "simcore-group-deploy"
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "REJECTED", "CANCELED", "TIMED_OUT", "REMOVED"})


class FleetError(SimcoreError):
    """An IoT or S3 call of a fleet command failed (AWS's code and message), or its input is wrong."""

    code = "FleetError"


class RolloutError(InputError):
    """A `--rollout` or `--abort-on-failure-rate` value that is not what the flag takes."""

    code = "RolloutError"


@dataclass
class FleetAccess:
    """Where the fleet's IoT control plane and S3 are, and the bucket bundles go to."""

    region: str
    bucket: str
    iot_endpoint: str | None = None
    s3_endpoint: str | None = None
    role_arn: str | None = None
    credentials: tuple[str, str] | None = None

    @classmethod
    def from_standin(cls, settings: dict[str, Any]) -> FleetAccess:
        """The stand-in's, from its jobs.json."""
        return cls(settings["region"], settings["bucket"], settings["iot_endpoint"], settings["aws_endpoint"],
                   "arn:aws:iam::123456789012:role/simcore-standin-jobs",
                   (settings["access_key_id"], settings["secret_access_key"]))

    def client(self, service: str) -> Any:
        """A boto3 client for `service` (iot or s3)."""
        import boto3

        keys = {} if self.credentials is None else {"aws_access_key_id": self.credentials[0],
                                                    "aws_secret_access_key": self.credentials[1]}
        endpoint = self.iot_endpoint if service == "iot" else self.s3_endpoint
        return boto3.client(service, region_name=self.region, endpoint_url=endpoint, **keys)


def _call(what: str, function: Any, **kwargs: Any) -> Any:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return function(**kwargs)
    except ClientError as error:
        details = error.response.get("Error", {})
        raise FleetError(f"{what}: {details.get('Code')}: {details.get('Message')}",
                         code=str(details.get("Code"))) from None
    except BotoCoreError as error:
        raise FleetError(f"{what}: {error}") from None


def target_arns(iot: Any, names: Sequence[str]) -> list[str]:
    """Thing or thing group ARNs for `names` (ARNs kept; a name is looked up as a group, then as a thing)."""
    from botocore.exceptions import ClientError

    arns = []
    for name in names:
        if name.startswith("arn:"):
            arns.append(name)
            continue
        try:
            arns.append(iot.describe_thing_group(thingGroupName=name)["thingGroupArn"])
            continue
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise FleetError(f"describe thing group {name}: {error}") from None
        arns.append(_call(f"no thing or thing group named {name}", iot.describe_thing, thingName=name)["thingArn"])
    return arns


def _target_count(iot: Any, arns: Sequence[str]) -> int:
    count = 0
    for arn in arns:
        kind, _, name = arn.rpartition(":")[2].partition("/")
        if kind == "thinggroup":
            pages = iot.get_paginator("list_things_in_thing_group").paginate(thingGroupName=name, recursive=True)
            count += sum(len(page["things"]) for page in pages)
        else:
            count += 1
    return count


def rollout_per_minute(rollout: str, target_count: int) -> int:
    """`N/min` (things per minute) or `P%/min` (percent of the targets per minute, at least 1) → maximumPerMinute."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(%?)/min", rollout.strip())
    if match is None:
        raise RolloutError(f"--rollout {rollout!r}: give N/min (things per minute) or P%/min (percent of the "
                           "targets per minute)")
    value = float(match.group(1))
    per_minute = math.ceil(value * target_count / 100) if match.group(2) else int(value)
    if not 1 <= per_minute <= 1000:
        raise RolloutError(f"--rollout {rollout!r} gives {per_minute} things per minute; IoT Jobs takes 1-1000")
    return per_minute


def job_document(manifest: dict[str, Any], region: str, bucket: str, key: str, sha256: str, size: int) -> str:
    """The job document for a bundle (JSON text), checked against IoT Jobs' 32 KB."""
    url = f"https://s3.{region}.amazonaws.com/{bucket}/{key}"
    document = json.dumps({"operation": OPERATION, "groupVersionId": manifest["groupVersionId"],
                           "bundle": {"url": f"${{aws:iot:s3-presigned-url:{url}}}", "sha256": sha256, "size": size}},
                          sort_keys=True)
    if len(document.encode()) > JOB_DOCUMENT_MAX_BYTES:
        raise FleetError(f"the job document holds {len(document.encode())} bytes; IoT Jobs takes at most "
                         f"{JOB_DOCUMENT_MAX_BYTES}")
    return document


def publish(access: FleetAccess, bundle_path: Path, targets: Sequence[str], *, job_id: str | None = None,
            rollout: str | None = None, abort_failure_rate: float | None = None) -> dict[str, Any]:
    """Upload the bundle and create the job; `{"jobId", "groupVersionId", "targets", "document"}`."""
    import zipfile

    if access.role_arn is None:
        raise FleetError("IoT Jobs signs the bundle's URL with a role: give --role-arn (docs/fleet.md, IAM)")
    try:
        with zipfile.ZipFile(bundle_path) as archive:
            manifest = json.loads(archive.read("manifest.json"))  # simcore.deploy.bundle's layout
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise FleetError(f"{bundle_path} is not a simcore bundle ({error}); make one with `simcore bundle`") from None
    version = manifest["groupVersionId"]
    key = f"bundles/{version}.zip"
    s3, iot = access.client("s3"), access.client("iot")
    arns = target_arns(iot, targets)
    sha256, size = file_sha256(bundle_path), bundle_path.stat().st_size
    document = job_document(manifest, access.region, access.bucket, key, sha256, size)
    with open(bundle_path, "rb") as body:
        _call(f"upload the bundle to s3://{access.bucket}/{key}", s3.put_object, Bucket=access.bucket, Key=key,
              Body=body)
    job_id = job_id or f"simcore-{version[:12]}-{int(time.time())}"
    request: dict[str, Any] = {
        "jobId": job_id, "targets": arns, "document": document, "targetSelection": "SNAPSHOT",
        "description": f"simcore group version {version}",
        "presignedUrlConfig": {"roleArn": access.role_arn, "expiresInSec": DEFAULT_PRESIGNED_URL_EXPIRY_S},
    }
    if rollout:
        request["jobExecutionsRolloutConfig"] = {"maximumPerMinute": rollout_per_minute(rollout,
                                                                                         _target_count(iot, arns))}
    if abort_failure_rate is not None:
        if not 0 < abort_failure_rate <= 100:
            raise RolloutError("--abort-on-failure-rate takes a percentage above 0, at most 100")
        request["abortConfig"] = {"criteriaList": [{"failureType": "FAILED", "action": "CANCEL",
                                                    "thresholdPercentage": abort_failure_rate,
                                                    "minNumberOfExecutedThings": 1}]}
    _call(f"create job {job_id}", iot.create_job, **request)
    return {"jobId": job_id, "groupVersionId": version, "targets": arns, "document": document}


def job_status(access: FleetAccess, job_id: str) -> dict[str, Any]:
    """The job's status and every core's: `{"status", "counts", "things": [{thing, status, details}]}`."""
    iot = access.client("iot")
    things = []
    for summary in _executions(iot, job_id):
        thing = summary["thingArn"].rsplit("/", 1)[1]
        execution = _call(f"describe job execution {job_id} of {thing}", iot.describe_job_execution,
                          jobId=job_id, thingName=thing)["execution"]
        things.append({"thing": thing, "status": execution["status"],
                       "details": (execution.get("statusDetails") or {}).get("detailsMap", {})})
    # Read after the executions: the job completes when its last execution ends, so a job read first could
    # still say IN_PROGRESS beside executions that have all ended.
    job = _call(f"describe job {job_id}", iot.describe_job, jobId=job_id)["job"]
    return {"jobId": job_id, "status": job["status"], "counts": job.get("jobProcessDetails", {}), "things": things}


def _executions(iot: Any, job_id: str) -> Iterator[dict[str, Any]]:
    token = None
    while True:
        page = _call(f"list the executions of job {job_id}", iot.list_job_executions_for_job, jobId=job_id,
                     **({"nextToken": token} if token else {}))
        yield from page.get("executionSummaries", [])
        token = page.get("nextToken")
        if not token:
            return


def cancel(access: FleetAccess, job_id: str, *, force: bool = False) -> dict[str, Any]:
    """Cancel the job (`force`: IN_PROGRESS executions too, which the cores then stop)."""
    iot = access.client("iot")
    return _call(f"cancel job {job_id}", iot.cancel_job, jobId=job_id, force=force,
                 comment="cancelled with simcore group cancel")
