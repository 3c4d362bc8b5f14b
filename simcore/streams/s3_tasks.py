"""The S3 export task executor: each message is an `S3ExportTaskDefinition` (JSON); the file it names goes
to S3, in parts above the multipart threshold, with `StatusMessage`s appended to the status stream.

A task that can never succeed (bad JSON, a missing or unreadable file, a bucket S3 refuses) is reported as
Failure and skipped; one the network or S3's 5xx stopped is retried (the exporter's backoff). When the core
runs as root it uploads only a file that the Lambdas' user could read itself (`reader`), so a Lambda cannot
have the core ship out a file it may not open.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from simcore.streams.definitions import ExportConfig
from simcore.streams.destinations import ExportFailed, Undeliverable, aws_client
from simcore.streams.segments import StoredMessage

SUCCESS, FAILURE, IN_PROGRESS, WARNING, CANCELED = 0, 1, 2, 3, 4
ERROR_LEVEL, WARN_LEVEL, INFO_LEVEL = 0, 1, 2
_BUCKET = re.compile(r"(?=^.{3,63}$)(?!^(\d+\.)+\d+$)(^(([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])\.)*"
                     r"([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])$)")
_KEY_TEMPLATE = re.compile(r"!\{timestamp:([a-zA-Z/]+)\}")
# Java DateTimeFormatter letters (what a v1 key template holds) as strftime directives, longest first.
_JAVA_TIME = [("yyyy", "%Y"), ("yy", "%y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"), ("mm", "%M"),
              ("ss", "%S"), ("D", "%j")]


@dataclass(frozen=True)
class Reader:
    """Who must be able to read an uploaded file (uid and groups), or None: no check (a core not root)."""

    uid: int
    gids: tuple[int, ...]


def expand_key(key: str, when: float) -> str:
    """`key` with each `!{timestamp:<pattern>}` replaced by `when` (UTC) in that Java-style pattern."""

    def one(match: re.Match) -> str:
        pattern = match.group(1)
        for java, directive in _JAVA_TIME:
            pattern = pattern.replace(java, directive)
        return time.strftime(pattern, time.gmtime(when))

    return _KEY_TEMPLATE.sub(one, key)


def readable_by(info: os.stat_result, reader: Reader) -> bool:
    """Whether the mode bits let `reader` read a file."""
    if info.st_uid == reader.uid:
        return bool(info.st_mode & stat.S_IRUSR)
    if info.st_gid in reader.gids:
        return bool(info.st_mode & stat.S_IRGRP)
    return bool(info.st_mode & stat.S_IROTH)


class S3TaskExecutor:
    """One `s3TaskExecutor` export of a stream."""

    def __init__(self, config: ExportConfig, append_status: Callable[[str, bytes], None], *, part_size: int,
                 reader: Reader | None, endpoint_url: str | None = None):
        self.config = config
        self.append_status = append_status
        self.part_size = part_size
        self.reader = reader
        self.client = aws_client("s3", endpoint_url)

    def send(self, stream_name: str, messages: Sequence[StoredMessage]) -> int:
        message = messages[0]
        try:
            task = json.loads(message.payload)
            if not isinstance(task, dict):
                raise ValueError("not a JSON object")
        except ValueError as error:
            self._status(FAILURE, ERROR_LEVEL, None, stream_name, message, f"not an S3ExportTaskDefinition: {error}")
            raise Undeliverable(f"sequence number {message.sequence_number}: {error}") from None
        try:
            bucket, key, path = self._check(task)
        except ValueError as error:
            self._status(FAILURE, ERROR_LEVEL, task, stream_name, message, str(error))
            raise Undeliverable(f"sequence number {message.sequence_number}: {error}") from None
        self._status(IN_PROGRESS, INFO_LEVEL, task, stream_name, message, "upload started")
        try:
            self._upload(path, bucket, key, task.get("userMetadata") or {})
        except _Refused as error:
            self._status(FAILURE, ERROR_LEVEL, task, stream_name, message, str(error))
            raise Undeliverable(str(error)) from None
        except OSError as error:  # the file went after the check (its writer removed it): a failed task, no retry
            reason = f"inputUrl {task.get('inputUrl')}: {error.strerror or error}"
            self._status(FAILURE, ERROR_LEVEL, task, stream_name, message, reason)
            raise Undeliverable(f"sequence number {message.sequence_number}: {reason}") from None
        except ExportFailed as error:
            self._status(WARNING, WARN_LEVEL, task, stream_name, message, f"upload will be retried: {error}")
            raise
        self._status(SUCCESS, INFO_LEVEL, task, stream_name, message, f"uploaded to s3://{bucket}/{key}")
        return 1

    def _check(self, task: dict[str, Any]) -> tuple[str, str, str]:
        bucket, key, url = task.get("bucket"), task.get("key"), task.get("inputUrl")
        if not isinstance(bucket, str) or not _BUCKET.match(bucket):
            raise ValueError(f"bucket {bucket!r} is not a valid S3 bucket name")
        if not isinstance(key, str) or not 1 <= len(key) <= 1024:
            raise ValueError(f"key {key!r} must be 1 to 1024 characters")
        if not isinstance(url, str) or urllib.parse.urlparse(url).scheme != "file":
            raise ValueError(f"inputUrl {url!r} must be a file:// URL")
        path = urllib.parse.unquote(urllib.parse.urlparse(url).path)
        try:
            info = os.stat(path)
        except OSError as error:
            raise ValueError(f"inputUrl {url}: {error.strerror}") from None
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"inputUrl {url} is not a regular file")
        if self.reader is not None and not readable_by(info, self.reader):
            raise ValueError(f"inputUrl {url}: the Lambdas' user may not read it, so the core does not upload it")
        return bucket, expand_key(key, time.time()), path

    def _upload(self, path: str, bucket: str, key: str, metadata: dict[str, Any]) -> None:
        size = os.path.getsize(path)
        extra = {"Metadata": {str(name): str(value) for name, value in metadata.items()}} if metadata else {}
        threshold = self.config.settings["sizeThresholdForMultipartUploadBytes"]
        with open(path, "rb") as source:
            if size < threshold:
                self._s3(self.client.put_object, Bucket=bucket, Key=key, Body=source.read(), **extra)
                return
            upload = self._s3(self.client.create_multipart_upload, Bucket=bucket, Key=key, **extra)
            parts = []
            try:
                number = 1
                while chunk := source.read(self.part_size):
                    part = self._s3(self.client.upload_part, Bucket=bucket, Key=key, PartNumber=number,
                                    UploadId=upload["UploadId"], Body=chunk)
                    parts.append({"PartNumber": number, "ETag": part["ETag"]})
                    number += 1
                self._s3(self.client.complete_multipart_upload, Bucket=bucket, Key=key,
                         UploadId=upload["UploadId"], MultipartUpload={"Parts": parts})
            except (ExportFailed, _Refused):
                # Best effort: S3's lifecycle rules clean up what this leaves.
                with contextlib.suppress(Exception):
                    self.client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"])
                raise

    def _s3(self, function: Any, **arguments: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return function(**arguments)
        except ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500)
            code = error.response.get("Error", {}).get("Code", "")
            if 400 <= status < 500 and status != 429 and "Throttl" not in code:
                raise _Refused(str(error)) from None
            raise ExportFailed(str(error)) from None
        except BotoCoreError as error:
            raise ExportFailed(str(error)) from None

    def _status(self, status: int, level: int, task: dict[str, Any] | None, stream_name: str,
                message: StoredMessage, text: str) -> None:
        config = self.config.settings
        if not config.get("statusStreamName") or level > config["statusLevel"]:
            return
        context: dict[str, Any] = {"exportIdentifier": self.config.identifier, "streamName": stream_name,
                                   "sequenceNumber": message.sequence_number}
        if task is not None:
            context["s3ExportTaskDefinition"] = task
        status_message = {"eventType": 0, "statusLevel": level, "status": status, "statusContext": context,
                          "message": text, "timestampEpochMs": int(time.time() * 1000)}
        self.append_status(config["statusStreamName"], json.dumps(status_message).encode())


class _Refused(Exception):
    """S3 refused the upload for good (4xx)."""
