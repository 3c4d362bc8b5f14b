"""The demo's local S3 for the readings the stream manager exports: the group's readings bucket in the stand-in
cloud's local AWS (the core exports there, through its config.json's `localAwsEndpoint`), or, when the stand-in
has none, in a moto server of its own with `AWS_ENDPOINT_URL_S3` pointing the core's exporters at it; afterwards,
what landed there. Each run keeps its readings' hourly files in a folder of its own (the template's ReadingsDir),
so hours an earlier run left behind are not uploaded into this run's bucket.

The core runs in the demo's process, with botocore's default credential chain: when it finds none, test keys
are set for the run (a local S3 accepts any) and the environment is put back afterwards.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass

from simcore.cloud.local_aws import LocalAws
from simcore.group import Group

SET_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")


@dataclass(frozen=True)
class Landed:
    """What the readings bucket holds: hourly objects and the records in them."""

    bucket: str
    objects: int
    records: int


def readings_bucket(group: Group) -> str | None:
    """The bucket a function of the group exports its readings to (READINGS_BUCKET), when the group runs the
    stream manager."""
    if group.system_function("GGStreamManager") is None:
        return None
    return next((function.environment["READINGS_BUCKET"] for function in group.functions
                 if function.environment.get("READINGS_BUCKET")), None)


def run_readings_dir() -> str:
    """A folder for this run's readings files (the template's ReadingsDir), not created: the Lambda creates it,
    as its own user. Its name is unguessable: it lies in the shared temp folder."""
    return os.path.join(tempfile.gettempdir(), f"simcore-demo-readings-{secrets.token_hex(8)}")


class LocalReadings:
    """The local S3 with the group's readings bucket, for as long as it is started."""

    def __init__(self, group: Group, endpoint: str | None = None):
        """`endpoint`: the stand-in cloud's local AWS, which the core already exports to (its config.json's
        `localAwsEndpoint`); None: start a local S3 of its own and point this process's exporters at it."""
        self.bucket = readings_bucket(group)
        self.region = group.region
        self.endpoint = endpoint
        self._aws: LocalAws | None = None
        self._saved: Mapping[str, str | None] = {}

    def start(self) -> None:
        """Start the local S3 and create the bucket; nothing when the group keeps no readings."""
        if self.bucket is None:
            return
        import boto3  # deferred: only a demo whose group exports readings needs it

        self._saved = {name: os.environ.get(name) for name in SET_VARIABLES}
        # The core's exporters run in this process, with botocore's default chain: a local S3 takes any keys.
        if boto3.session.Session().get_credentials() is None:
            os.environ["AWS_ACCESS_KEY_ID"] = os.environ["AWS_SECRET_ACCESS_KEY"] = "simcore-demo"
        os.environ.setdefault("AWS_DEFAULT_REGION", self.region)
        if self.endpoint is None:  # no stand-in local AWS: one of its own, for S3 only
            self._aws = LocalAws()
            self.endpoint = self._aws.start()
            os.environ["AWS_ENDPOINT_URL_S3"] = self.endpoint
        self._client().create_bucket(Bucket=self.bucket)

    def landed(self) -> Landed | None:
        """The objects and records in the bucket now (None: no readings kept, or the local S3 is gone)."""
        if self.bucket is None or self.endpoint is None:
            return None
        client = self._client()
        objects = records = 0
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            for item in page.get("Contents", []):
                objects += 1
                body = client.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()
                records += sum(1 for line in body.splitlines() if line.strip())
        return Landed(self.bucket, objects, records)

    def stop(self) -> None:
        """Stop the local S3 and put the environment back."""
        if self._aws is not None:
            self._aws.stop()
            self._aws = None
            self.endpoint = None
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved = {}

    def _client(self):
        import boto3

        assert self.endpoint is not None
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=self.region,
                            aws_access_key_id="simcore-demo", aws_secret_access_key="simcore-demo")
