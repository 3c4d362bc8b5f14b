"""Where connectors put data: local files standing in for CloudWatch and S3, or the real services (boto3).

With no AWS account behind a local core, `put_metric_data` appends one JSON line per call to
`metrics.jsonl` and `put_object` writes the object under `<root>/<bucket>/<key>` (atomically, with an
index line in `_uploads.jsonl`, a name no bucket can have). The boto3 sinks make the same calls on AWS.
Each sink raises `SinkError` with the service's error code and whether a retry could succeed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tempfile
import threading
import uuid
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from simcore.errors import SimcoreError

# CloudWatch error codes that a later attempt can get past (the rest mean the data itself is refused).
RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "ServiceUnavailable",
        "InternalFailure",
        "InternalError",
    }
)


class SinkError(SimcoreError):
    """A put failed: `code` is the service's error code (or the exception class), `retryable` if worth retrying."""

    http_status = 502

    def __init__(self, code: str, message: str, *, retryable: bool):
        super().__init__(message, code=code)
        self.retryable = retryable


class MetricSink(Protocol):
    """CloudWatch `PutMetricData` for one namespace."""

    def put_metric_data(self, namespace: str, metric_data: list[dict[str, Any]]) -> str:
        """Put the data; returns the request id. SinkError on failure."""
        ...


class ObjectStore(Protocol):
    """S3 `PutObject`."""

    def put_object(self, bucket: str, key: str, body: bytes, content_type: str, metadata: dict[str, str]) -> dict:
        """Store the object; returns the S3 response (JSON-able). SinkError on failure."""
        ...


def _append_line(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line and make it durable before returning (a put is acknowledged only when it is)."""
    line = json.dumps(record, sort_keys=True, default=str) + "\n"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


class LocalMetricsFile:
    """CloudWatch stand-in: every `PutMetricData` call is one line of `path` (JSON lines, append-only).

    `on_put` is called after each durable put (an uploader's `notify`: simcore.connectors.uploader).
    """

    def __init__(self, path: Path, region: str, on_put: Callable[[], None] | None = None):
        self.path = Path(path)
        self.region = region
        self.on_put = on_put
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def put_metric_data(self, namespace: str, metric_data: list[dict[str, Any]]) -> str:
        request_id = str(uuid.uuid4())
        record = {
            "request_id": request_id,
            "put_at": dt.datetime.now(dt.UTC).isoformat(),
            "region": self.region,
            "namespace": namespace,
            "metric_data": [_json_datum(datum) for datum in metric_data],
        }
        try:
            with self._lock:
                _append_line(self.path, record)
        except OSError as error:
            raise SinkError(type(error).__name__, f"writing {self.path} failed: {error}", retryable=True) from error
        if self.on_put is not None:
            self.on_put()
        return request_id

    def records(self) -> list[dict[str, Any]]:
        """Every put so far, oldest first."""
        if not self.path.exists():
            return []
        with open(self.path, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]


def _json_datum(datum: dict[str, Any]) -> dict[str, Any]:
    out = dict(datum)
    if isinstance(out.get("Timestamp"), dt.datetime):
        out["Timestamp"] = out["Timestamp"].isoformat()
    return out


def local_key_parts(key: str) -> tuple[str, ...]:
    """The path parts of an object key stored as a file; ValueError for one that would leave its bucket."""
    parts = PurePosixPath(key).parts
    if not parts or key.startswith("/") or any(part in (".", "..") for part in parts):
        raise ValueError(f"object key {key!r} cannot be stored locally (absolute, empty or with . / ..)")
    return parts


class LocalObjectStore:
    """S3 stand-in: objects are files under `root/<bucket>/<key>`; `_uploads.jsonl` indexes them with metadata."""

    INDEX_NAME = "_uploads.jsonl"

    def __init__(self, root: Path, on_put: Callable[[], None] | None = None):
        self.root = Path(root)
        self.on_put = on_put
        self.index = self.root / self.INDEX_NAME
        self._lock = threading.Lock()
        self.root.mkdir(parents=True, exist_ok=True)

    def path_of(self, bucket: str, key: str) -> Path:
        """Where object `key` of `bucket` lies; ValueError for a key that would leave the bucket's folder."""
        return self.root.joinpath(bucket, *local_key_parts(key))

    def put_object(self, bucket: str, key: str, body: bytes, content_type: str, metadata: dict[str, str]) -> dict:
        try:
            target = self.path_of(bucket, key)
        except ValueError as error:
            raise SinkError("InvalidObjectName", str(error), retryable=False) from error
        etag = '"' + hashlib.md5(body, usedforsecurity=False).hexdigest() + '"'
        request_id = uuid.uuid4().hex[:16].upper()
        try:
            with self._lock:
                target.parent.mkdir(parents=True, exist_ok=True)
                # Write aside, then rename: a reader never sees half an object.
                with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".part-", delete=False) as handle:
                    handle.write(body)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(handle.name, target)
                _append_line(
                    self.index,
                    {
                        "bucket": bucket,
                        "key": key,
                        "size": len(body),
                        "etag": etag,
                        "content_type": content_type,
                        "metadata": metadata,
                        "stored_at": dt.datetime.now(dt.UTC).isoformat(),
                    },
                )
        except OSError as error:
            message = f"storing s3://{bucket}/{key} failed: {error}"
            raise SinkError(type(error).__name__, message, retryable=True) from error
        if self.on_put is not None:
            self.on_put()
        return {
            "ResponseMetadata": {"RequestId": request_id, "HTTPStatusCode": 200, "RetryAttempts": 0},
            "ETag": etag,
        }

    def uploads(self) -> list[dict[str, Any]]:
        """The index: one entry per stored object, oldest first."""
        if not self.index.exists():
            return []
        with open(self.index, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]


def client_error(error: Exception, retryable_codes: frozenset[str] = RETRYABLE_CODES) -> SinkError:
    """A botocore error as a SinkError: ClientError by its AWS code, connection trouble as retryable."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code = details.get("Code") or "ClientError"
        return SinkError(code, str(error), retryable=code in retryable_codes)
    if isinstance(error, BotoCoreError):
        return SinkError(type(error).__name__, str(error), retryable=True)
    return SinkError(type(error).__name__, str(error), retryable=False)


class Boto3Metrics:
    """The real CloudWatch `PutMetricData` through boto3 (credentials from the usual boto3 chain)."""

    def __init__(self, region: str):
        import boto3

        self.region = region
        self.client = boto3.client("cloudwatch", region_name=region)

    def put_metric_data(self, namespace: str, metric_data: list[dict[str, Any]]) -> str:
        try:
            response = self.client.put_metric_data(Namespace=namespace, MetricData=metric_data)
        except Exception as error:
            raise client_error(error) from error
        return str(response.get("ResponseMetadata", {}).get("RequestId", ""))


class Boto3ObjectStore:
    """The real S3 `PutObject` through boto3."""

    def __init__(self, region: str):
        import boto3

        self.client = boto3.client("s3", region_name=region)

    def put_object(self, bucket: str, key: str, body: bytes, content_type: str, metadata: dict[str, str]) -> dict:
        try:
            response = self.client.put_object(
                Bucket=bucket, Key=key, Body=body, ContentType=content_type, Metadata=metadata
            )
        except Exception as error:
            raise client_error(error) from error
        # Keep it JSON-able: the response is published on the status topic.
        return json.loads(json.dumps(response, default=str))
