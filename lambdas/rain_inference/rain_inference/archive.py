"""Every prediction kept for retraining: the reading, the prediction and the observed rain, appended to a local
stream, and exported to S3 in hourly objects by the core's stream manager.

Each record goes (1) to the File stream READINGS_STREAM (what a local consumer reads), and (2) as a JSON line
to the file of its reading's hour under READINGS_DIR. When a reading of a later hour arrives, the finished
hour's file is handed to the stream manager as an `S3ExportTaskDefinition` on `<READINGS_STREAM>Uploads`, whose
S3 export task executor uploads it to `s3://READINGS_BUCKET/<prefix>/<thing>/<yyyy>/<mm>/<dd>/<hh>.jsonl` and
reports on `<READINGS_STREAM>Status`; a file is deleted once its upload is reported a success. Files a
restart left behind are handed over again (the same key: an upload is idempotent).

Nothing here may stop a prediction: every failure is logged and counted by the caller, and the stream manager
client is made again on the next record after a failure.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import threading
import time
from typing import Any, Callable, Dict, List, Optional

log = logging.getLogger(__name__)

MAX_KEPT_FILES = 72  # three days of hourly files waiting for an upload, at most
MAX_WAITING_RECORDS = 1024  # records waiting for the stream manager, at most (BackgroundArchive)


class ArchiveFull(Exception):
    """The records waiting for the stream manager reached their bound: this one is not kept."""


class BackgroundArchive:
    """Keeps records off the prediction's path: `record` queues (bounded) and one thread hands them to `inner`.

    Each stream manager call is a round trip to the core; made inline, they halved how many readings a second
    the Lambda predicts. Records still waiting when the Lambda stops are not kept (at most
    MAX_WAITING_RECORDS); a failed hand-over is logged and counted in `failures`.
    """

    def __init__(self, inner: Any, max_waiting: int = MAX_WAITING_RECORDS) -> None:
        self.inner = inner
        self.max_waiting = max_waiting
        self._waiting: "queue.Queue[Dict[str, object]]" = queue.Queue(max_waiting)
        self.failures = 0
        self._thread = threading.Thread(target=self._drain, name="reading-archive", daemon=True)
        self._thread.start()

    def record(self, row: Dict[str, object]) -> None:
        """Queue one record; ArchiveFull when MAX_WAITING_RECORDS already wait."""
        try:
            self._waiting.put_nowait(row)
        except queue.Full:
            raise ArchiveFull("{} records already wait for the stream manager".format(self.max_waiting)) from None

    def join(self) -> None:
        """Wait until every queued record was handed over (or failed)."""
        self._waiting.join()

    def _drain(self) -> None:
        while True:
            row = self._waiting.get()
            try:
                self.inner.record(row)
            except Exception as error:  # the stream manager down or full: logged, counted, never raised
                self.failures += 1
                log.error("keeping seq %s for retraining failed: %s", row.get("seq"), error)
            finally:
                self._waiting.task_done()


class ReadingArchive:
    """Appends records to the readings stream and hands finished hourly files to the S3 export."""

    def __init__(self, sm: Any, stream: str, thing: str, directory: str, bucket: Optional[str],
                 prefix: str = "readings", client_factory: Optional[Callable[[], Any]] = None) -> None:
        """`sm` is the SDK package (`greengrasssdk.stream_manager`); `bucket` None keeps records local only."""
        self.sm = sm
        self.stream = stream
        self.uploads = stream + "Uploads"
        self.status = stream + "Status"
        self.thing = thing
        self.directory = directory
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._factory = client_factory or sm.StreamManagerClient
        self._client: Any = None
        self._hour: Optional[str] = None
        self._status_next = 0
        self._handed: set = set()  # hours handed over by this process: each once (a restart hands over again)
        self.records = 0
        self.handed_over = 0

    # --- the client and its streams ------------------------------------------------------------------

    def _connected(self) -> Any:
        if self._client is None:
            client = self._factory()
            self._create(client, self.sm.MessageStreamDefinition(
                name=self.stream, strategy_on_full=self.sm.StrategyOnFull.OverwriteOldestData,
                persistence=self.sm.Persistence.File))
            if self.bucket:
                self._create(client, self.sm.MessageStreamDefinition(
                    name=self.status, strategy_on_full=self.sm.StrategyOnFull.OverwriteOldestData,
                    max_size=4 * 1024 * 1024))
                self._create(client, self.sm.MessageStreamDefinition(
                    name=self.uploads, strategy_on_full=self.sm.StrategyOnFull.RejectNewData,
                    export_definition=self.sm.ExportDefinition(s3_task_executor=[
                        self.sm.S3ExportTaskExecutorConfig(
                            identifier=self.uploads + "S3",
                            status_config=self.sm.StatusConfig(status_level=self.sm.StatusLevel.INFO,
                                                               status_stream_name=self.status))])))
            self._client = client
        return self._client

    def _create(self, client: Any, definition: Any) -> None:
        # InvalidRequest: it exists, made by this function before a restart.
        with contextlib.suppress(self.sm.InvalidRequestException):
            client.create_message_stream(definition)

    # --- records ---------------------------------------------------------------------------------------

    def record(self, row: Dict[str, object]) -> None:
        """Keep one record (its `ts`, seconds since the epoch, names its hour). Raises what the SDK raises."""
        try:
            client = self._connected()
            client.append_message(self.stream, json.dumps(row, sort_keys=True).encode("utf-8"))
        except Exception:
            self._client = None  # made again next time (the core may have restarted)
            raise
        self.records += 1
        if not self.bucket:
            return
        ts = row.get("ts")
        hour = time.strftime("%Y%m%d%H", time.gmtime(float(ts) if isinstance(ts, (int, float)) else time.time()))
        if hour != self._hour:
            self._hour = hour
            self._hand_over_finished(hour)
        os.makedirs(self.directory, mode=0o700, exist_ok=True)  # the readings are this function's (and the core's)
        with open(self._path(hour), "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, sort_keys=True) + "\n")

    def _path(self, hour: str) -> str:
        return os.path.join(self.directory, "{}-{}.jsonl".format(self.thing, hour))

    def _hand_over_finished(self, current: str) -> None:
        self._forget_uploaded()
        prefix = self.thing + "-"
        waiting = sorted(name for name in os.listdir(self.directory) if name.startswith(prefix)
                         and name.endswith(".jsonl")) if os.path.isdir(self.directory) else []
        for name in waiting[:-MAX_KEPT_FILES] if len(waiting) > MAX_KEPT_FILES else []:
            log.warning("readings file %s was never uploaded; removed to bound the folder", name)
            os.remove(os.path.join(self.directory, name))
        kept = waiting[-MAX_KEPT_FILES:]
        self._handed &= {name[len(prefix):-len(".jsonl")] for name in kept}  # bounded by the files kept
        for name in kept:
            hour = name[len(prefix):-len(".jsonl")]
            if hour < current and hour not in self._handed:
                self._hand_over(hour)

    def _hand_over(self, hour: str) -> None:
        key = "{}/{}/{}/{}/{}/{}.jsonl".format(self.prefix, self.thing, hour[:4], hour[4:6], hour[6:8], hour[8:])
        task = self.sm.S3ExportTaskDefinition(input_url="file://" + os.path.abspath(self._path(hour)),
                                              bucket=self.bucket, key=key)
        self._connected().append_message(self.uploads, self.sm.Util.validate_and_serialize_to_json_bytes(task))
        self._handed.add(hour)
        self.handed_over += 1

    def _forget_uploaded(self) -> None:
        """Delete the files whose upload the status stream reports a success."""
        for path in self._uploaded_paths():
            if os.path.exists(path):
                os.remove(path)

    def _uploaded_paths(self) -> List[str]:
        options = self.sm.ReadMessagesOptions(desired_start_sequence_number=self._status_next,
                                              min_message_count=1, max_message_count=100)
        try:
            messages = self._connected().read_messages(self.status, options)
        except self.sm.NotEnoughMessagesException:
            return []
        paths = []
        for message in messages:
            self._status_next = message.sequence_number + 1
            status = self.sm.Util.deserialize_json_bytes_to_obj(message.payload, self.sm.StatusMessage)
            task = status.status_context.s3_export_task_definition if status.status_context else None
            if status.status != self.sm.Status.Success or task is None or not task.input_url.startswith("file://"):
                continue
            path = os.path.abspath(task.input_url[len("file://"):])
            # Only this archive's own files: anyone may append to a stream, so a status is not trusted further.
            if os.path.dirname(path) == os.path.abspath(self.directory) and \
                    os.path.basename(path).startswith(self.thing + "-"):
                paths.append(path)
        return paths
