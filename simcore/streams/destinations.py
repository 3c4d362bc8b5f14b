"""Where exporters send a stream's messages: Kinesis, IoT Analytics, IoT SiteWise (real AWS APIs via boto3).

Each destination's `send(messages)` returns how many of them, counted from the first, are delivered; a
failure of the first raises `ExportFailed` (retried later, with backoff) or, for a message that can never be
delivered (not valid JSON for SiteWise), `Undeliverable` (skipped, and said in the export status).
Clients use botocore's default credential chain (the core's token exchange service when it is set) and the
endpoint botocore is configured with (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`), or `endpoint_url`.
boto3 is imported only when a stream exports, so a core without exports never loads it.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from typing import Any, Protocol

from simcore.streams.segments import StoredMessage

# Kinesis PutRecords: at most 500 records and 5 MiB a call (moto enforces both).
KINESIS_MAX_BATCH_BYTES = 5 * 1024 * 1024


class ExportFailed(Exception):
    """The destination did not take the batch (unreachable, throttled, refused): retry later."""


class Undeliverable(Exception):
    """The message at the head of the batch can never be delivered; `reason` says why."""


class Destination(Protocol):
    """One exporter's target."""

    def send(self, stream_name: str, messages: Sequence[StoredMessage]) -> int:
        """Deliver a prefix of `messages`; its length (at least 1), or raise ExportFailed / Undeliverable."""


def aws_client(service: str, endpoint_url: str | None = None) -> Any:
    """A boto3 client with the default credential chain; retries are the exporter's, not botocore's.

    One client per service and endpoint, shared by every exporter (boto3 clients are thread-safe, and making
    one loads the service's model: tens of milliseconds, which an export re-enabled by an update would pay).
    """
    local = endpoint_url or os.environ.get(f"AWS_ENDPOINT_URL_{service.upper()}") or os.environ.get("AWS_ENDPOINT_URL")
    return _client(service, endpoint_url, local)


@functools.lru_cache(maxsize=16)
def _client(service: str, endpoint_url: str | None, configured_endpoint: str | None) -> Any:
    import boto3  # deferred: see the module docstring
    from botocore.config import Config

    # A local endpoint (an IP address) cannot take a service's host prefix (SiteWise's `data.`).
    config = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=30,
                    inject_host_prefix=not configured_endpoint, max_pool_connections=16)
    return boto3.session.Session().client(service, endpoint_url=endpoint_url, config=config)


def _call(function: Any, **arguments: Any) -> Any:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return function(**arguments)
    except (BotoCoreError, ClientError) as error:
        raise ExportFailed(str(error)) from None


class Kinesis:
    """PutRecords to `kinesisStreamName`, one random partition key (a UUID) per record, as v1 did."""

    def __init__(self, stream_name: str, endpoint_url: str | None = None):
        self.stream_name = stream_name
        self.client = aws_client("kinesis", endpoint_url)

    def send(self, stream_name: str, messages: Sequence[StoredMessage]) -> int:
        records, size = [], 0
        for message in messages[:500]:
            size += len(message.payload) + 36
            if records and size > KINESIS_MAX_BATCH_BYTES:
                break
            records.append({"Data": message.payload, "PartitionKey": str(uuid.uuid4())})
        response = _call(self.client.put_records, StreamName=self.stream_name, Records=records)
        return _delivered_prefix([not entry.get("ErrorCode") for entry in response["Records"]],
                                 lambda index: response["Records"][index].get("ErrorMessage", ""))


class IoTAnalytics:
    """BatchPutMessage to `iotChannel`; message ids are `iotMsgIdPrefix` + the sequence number.

    botocore 1.44 no longer ships IoT Analytics' model (AWS ended the service), so the call is made here: the
    REST-JSON request `POST /messages/batch`, signed with SigV4 by botocore's signer and credential chain.
    """

    def __init__(self, channel: str, prefix: str | None, endpoint_url: str | None = None):
        import botocore.session  # deferred: see the module docstring

        self.channel, self.prefix = channel, prefix or ""
        session = botocore.session.get_session()
        self.credentials = session.get_credentials()
        self.region = session.get_config_variable("region") or "us-east-1"
        base = (endpoint_url or os.environ.get("AWS_ENDPOINT_URL_IOTANALYTICS") or os.environ.get("AWS_ENDPOINT_URL")
                or f"https://iotanalytics.{self.region}.amazonaws.com")
        self.url = base.rstrip("/") + "/messages/batch"

    def send(self, stream_name: str, messages: Sequence[StoredMessage]) -> int:
        batch = list(messages[:100])
        entries = [{"messageId": f"{self.prefix}{message.sequence_number}",
                    "payload": base64.b64encode(message.payload).decode("ascii")} for message in batch]
        response = self._post({"channelName": self.channel, "messages": entries})
        failed = {entry.get("messageId"): entry.get("errorMessage", "") for entry in
                  response.get("batchPutMessageErrorEntries", [])}
        return _delivered_prefix([entry["messageId"] not in failed for entry in entries],
                                 lambda index: failed[entries[index]["messageId"]])

    def _post(self, document: dict[str, Any]) -> dict[str, Any]:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        if self.credentials is None:
            raise ExportFailed("no AWS credentials (botocore's default chain found none)")
        request = AWSRequest("POST", self.url, data=json.dumps(document).encode(),
                             headers={"Content-Type": "application/json"})
        SigV4Auth(self.credentials, "iotanalytics", self.region).add_auth(request)
        prepared = request.prepare()
        http_request = urllib.request.Request(prepared.url, data=prepared.body, method="POST",
                                              headers=dict(prepared.headers.items()))
        try:
            with urllib.request.urlopen(http_request, timeout=30) as answer:
                return json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as error:
            raise ExportFailed(f"BatchPutMessage: HTTP {error.code}: {error.read()[:300]!r}") from None
        except (OSError, ValueError) as error:
            raise ExportFailed(f"BatchPutMessage: {error}") from None


class SiteWise:
    """BatchPutAssetPropertyValue: each message is a PutAssetPropertyValueEntry in JSON (the SDK's Util)."""

    ENTRY_KEYS = ("entryId", "assetId", "propertyId", "propertyAlias", "propertyValues")

    def __init__(self, endpoint_url: str | None = None):
        self.client = aws_client("iotsitewise", endpoint_url)

    def send(self, stream_name: str, messages: Sequence[StoredMessage]) -> int:
        entries = []
        for message in messages[:10]:
            try:
                entry = json.loads(message.payload)
                if not isinstance(entry, dict) or not entry.get("entryId") or not entry.get("propertyValues"):
                    raise ValueError("not a PutAssetPropertyValueEntry")
            except ValueError as error:
                if not entries:
                    raise Undeliverable(f"sequence number {message.sequence_number}: {error}") from None
                break
            entries.append({key: entry[key] for key in self.ENTRY_KEYS if entry.get(key) is not None})
        response = _call(self.client.batch_put_asset_property_value, entries=entries)
        failed = {entry.get("entryId"): str(entry.get("errors")) for entry in response.get("errorEntries", [])}
        return _delivered_prefix([entry["entryId"] not in failed for entry in entries],
                                 lambda index: failed[entries[index]["entryId"]])


def _delivered_prefix(accepted: Sequence[bool], reason: Any) -> int:
    """How many entries from the first were accepted; ExportFailed when the first was not (order is kept:
    what follows a refused entry is sent again, so a destination may see it twice)."""
    for index, ok in enumerate(accepted):
        if not ok:
            if index == 0:
                raise ExportFailed(f"the destination refused the first message: {reason(0)}")
            return index
    return len(accepted)
