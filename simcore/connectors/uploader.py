"""The connectors' way to the real APIs: their local files are the offline buffer, drained to AWS in order.

A connector's put is accepted once it is durable in its local file (`metrics.jsonl`, or the object and its
`_uploads.jsonl` line: `simcore.connectors.sinks`). A `JournalUploader` then sends each line, oldest first, to
the API (`PutMetricData`, `PutObject`) and records how far it got in `<journal>.sent` (a byte offset, written
after each success), so a restart goes on where it stopped and nothing accepted is lost while the API is
unreachable: a failed send is retried with exponential backoff (bounded by `max_backoff_s`), counted, and a
line the API refuses for good (a non-retryable error) is skipped, counted and logged, so it cannot block the
ones after it. At-least-once: a line sent just before a crash, its offset not yet written, is sent again.

`AwsAccess` says how the uploads reach AWS: credentials from the core's token exchange service (a callable, so
the connectors never import the core) and, linked to the stand-in, its endpoint.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simcore.connectors.sinks import SinkError, client_error, local_key_parts

log = logging.getLogger(__name__)

DEFAULT_MIN_BACKOFF_S = 0.5
DEFAULT_MAX_BACKOFF_S = 60.0
# A line longer than this is not a line the connectors wrote: it is skipped rather than read whole.
MAX_LINE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class AwsAccess:
    """Credentials (`credentials()` → botocore's container document: AccessKeyId, SecretAccessKey, Token,
    Expiration) and the endpoint (None: AWS's own) the uploads use."""

    credentials: Callable[[], dict[str, str]]
    endpoint_url: str | None = None

    def client(self, service: str, region: str) -> Any:
        """A boto3 client whose credentials refresh from `credentials()` as botocore's container provider does."""
        import boto3
        import botocore.credentials
        import botocore.session

        def fetch() -> dict[str, str]:
            document = self.credentials()
            return {"access_key": document["AccessKeyId"], "secret_key": document["SecretAccessKey"],
                    "token": document["Token"], "expiry_time": document["Expiration"]}

        class TokenExchangeProvider(botocore.credentials.CredentialProvider):
            METHOD = "simcore-token-exchange"

            def load(self) -> Any:
                return botocore.credentials.RefreshableCredentials.create_from_metadata(
                    metadata=fetch(), refresh_using=fetch, method=self.METHOD)

        session = botocore.session.Session()
        # First in the chain: the core's own environment never signs a connector's call.
        session.get_component("credential_provider").insert_before("env", TokenExchangeProvider())
        return boto3.session.Session(botocore_session=session, region_name=region).client(
            service, endpoint_url=self.endpoint_url)


def metric_sender(access: AwsAccess, region: str) -> Callable[[dict[str, Any]], None]:
    """Sends one `metrics.jsonl` record as the PutMetricData call it stands for."""
    clients: dict[str, Any] = {}

    def send(record: dict[str, Any]) -> None:
        where = record.get("region") or region
        if where not in clients:
            clients[where] = access.client("cloudwatch", where)
        try:
            clients[where].put_metric_data(Namespace=record["namespace"], MetricData=record["metric_data"])
        except Exception as error:
            raise client_error(error) from error

    return send


def object_sender(access: AwsAccess, region: str, root: Path) -> Callable[[dict[str, Any]], None]:
    """Sends one `_uploads.jsonl` entry as PutObject of the file it indexes (under `root/<bucket>/<key>`)."""
    client: list[Any] = []

    def send(entry: dict[str, Any]) -> None:
        if not client:
            client.append(access.client("s3", region))
        path = Path(root).joinpath(entry["bucket"], *local_key_parts(entry["key"]))
        try:
            body = path.read_bytes()
        except OSError as error:
            raise SinkError(type(error).__name__, f"reading {path} failed: {error}", retryable=False) from error
        try:
            client[0].put_object(Bucket=entry["bucket"], Key=entry["key"], Body=body,
                                 ContentType=entry.get("content_type") or "application/octet-stream",
                                 Metadata=entry.get("metadata") or {})
        except Exception as error:
            raise client_error(error) from error

    return send


class JournalUploader:
    """Sends each line of `journal` to `send(record)`, in order, from a daemon thread (policy above)."""

    def __init__(self, journal: Path, send: Callable[[dict[str, Any]], None], *, name: str,
                 min_backoff_s: float = DEFAULT_MIN_BACKOFF_S, max_backoff_s: float = DEFAULT_MAX_BACKOFF_S):
        self.journal = Path(journal)
        self.offset_path = self.journal.with_name(self.journal.name + ".sent")
        self._send = send
        self.min_backoff_s = min_backoff_s
        self.max_backoff_s = max_backoff_s
        self.counters: Counter[str] = Counter()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"uploader-{name}", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """A line was appended: send it now rather than at the next poll."""
        self._wake.set()

    def _offset(self) -> int:
        try:
            return int(self.offset_path.read_text(encoding="ascii").strip() or 0)
        except (OSError, ValueError):
            return 0

    def _commit(self, offset: int) -> None:
        temporary = self.offset_path.with_name(self.offset_path.name + ".tmp")
        temporary.write_text(f"{offset}\n", encoding="ascii")
        os.replace(temporary, self.offset_path)

    def pending(self) -> int:
        """Bytes of the journal not yet sent."""
        try:
            return max(0, self.journal.stat().st_size - self._offset())
        except OSError:
            return 0

    def _next_line(self, offset: int) -> tuple[bytes, int] | None:
        """The next complete line from `offset` and the offset after it; None when there is none yet."""
        try:
            with open(self.journal, "rb") as handle:
                handle.seek(offset)
                line = handle.readline(MAX_LINE_BYTES + 1)
        except FileNotFoundError:
            return None
        if not line.endswith(b"\n"):
            if len(line) > MAX_LINE_BYTES:
                return b"", offset + len(line)  # an overlong line: skipped (counted by the caller)
            return None  # a line still being written
        return line, offset + len(line)

    def drain_once(self) -> bool:
        """Send what is pending until it is all sent (True) or a send fails for a retryable reason (False)."""
        with self._lock:
            offset = self._offset()
            while True:
                found = self._next_line(offset)
                if found is None:
                    return True
                line, after = found
                if line.strip():
                    try:
                        self._send(json.loads(line))
                        self.counters["sent"] += 1
                    except SinkError as error:
                        if error.retryable:
                            self.counters["send_failures"] += 1
                            log.info("upload of %s waits for the API: %s", self.journal.name, error.message)
                            return False
                        self.counters["refused"] += 1
                        log.warning("upload of a %s line refused for good (%s): %s", self.journal.name, error.code,
                                    error.message)
                    except ValueError:
                        self.counters["refused"] += 1
                        log.warning("a line of %s is not JSON: skipped", self.journal)
                offset = after
                self._commit(offset)

    def _run(self) -> None:
        backoff = self.min_backoff_s
        while not self._stopping.is_set():
            try:
                done = self.drain_once()
            except Exception:  # the uploader must outlive one bad round
                log.exception("uploading %s failed", self.journal)
                done = False
            if done:
                backoff = self.min_backoff_s
                self._wake.wait(5.0)
            else:
                self._wake.wait(backoff)
                backoff = min(self.max_backoff_s, backoff * 2)
            self._wake.clear()

    def stop(self) -> None:
        """Stop the thread; what is not sent stays in the journal for the next start."""
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout=10)

    def stats(self) -> dict[str, int]:
        """Lines sent, failed sends (retried), refused lines, and the bytes still to send."""
        return {**{key: self.counters[key] for key in ("sent", "send_failures", "refused")},
                "pending_bytes": self.pending()}
