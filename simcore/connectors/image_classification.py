"""The ML Image Classification connector (Greengrass v1, versions 1 and 2; x86-64, ARMv7, Aarch64JTX2).

A local inference service: a Lambda calls it through the Greengrass ML SDK's `invoke_inference_service`,
which invokes `arn:aws:lambda:<region>:aws:function:GG-ML-INF-image-classification-<LocalInferenceServiceName>`
with the image as payload and base64 `{"custom": {"Content-Type": ..., "Accept": ...}}` as client context.
simcore's IPC hands that invoke to the connector registry, which calls `invoke` here.

The model (the ML resource `MLModelResourceId`, as deploy fetched and extracted it) is served by one worker
process on the connector's runtime, Python 3.8 with MXNet 1.9.1 (`image_classification_worker.py`, started
at once and restarted when it dies, times out or outgrows its memory). Requests are served one at a time.
- Success: FunctionError "" and `{"Body": "[0.3,0.1,...]", "Content-Type": "application/json"}`, which the
  SDK returns with `Body` as a stream.
- A refused request (no or wrong ContentType, a body that is not that image type or does not decode, the
  model missing or unloadable, the timeout or the memory limit passed): FunctionError `Handled` and
  `{"errorMessage", "errorType"}`, which the SDK raises as `GreengrassInferenceException`.
- `LocalInferenceServiceTimeoutSeconds` bounds each request from when it arrives (waiting for the previous
  one included, a model server (re)loading its model not: that has `ML_CONNECTOR_STARTUP_S`); past it the
  worker is killed and restarted. `LocalInferenceServiceMemoryLimitKB` bounds the
  worker's resident memory, read from /proc every `MEMORY_POLL_S` while it works and when it is ready.
- With `MLFeedbackConnectorConfigId` (version 2), every classified image and its probabilities go to the
  group's ML Feedback connector as a sample of that configuration.
Log lines carry the `LocalInferenceServiceName` as their prefix.
"""

from __future__ import annotations

import base64
import binascii
import collections
import contextlib
import json
import logging
import os
import pwd
import re
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simcore.connectors.ml_feedback import FeedbackRequest, MLFeedbackConnector
from simcore.connectors.parameters import ConnectorConfigError, ParameterReader, connector_version
from simcore.defaults import ML_CONNECTOR_RUNTIME_ENV, ML_CONNECTOR_STARTUP_S, ML_CONNECTOR_VENV
from simcore.group import Connector, Group
from simcore.parent_death import die_with_parent
from simcore.paths import PACKAGE_DIR, PROJECT_ROOT

log = logging.getLogger(__name__)

WORKER_SCRIPT = PACKAGE_DIR / "connectors" / "image_classification_worker.py"
PLATFORMS = ("x86-64", "ARMv7", "Aarch64JTX2")
NAMES = tuple(f"ImageClassification{platform}" for platform in PLATFORMS)
VERSIONS = range(1, 3)
ALGO_TYPE = "image-classification"
# The ML SDK's address of a local inference service: any region, any partition, an optional qualifier.
SERVICE_FUNCTION_ARN = re.compile(r"arn:aws[a-z-]*:lambda:[a-z0-9-]*:aws:function:(GG-ML-INF-[a-zA-Z0-9-]+)(?::[^:]+)?")
SERVICE_NAME_PATTERN = r"[a-zA-Z0-9][a-zA-Z0-9-]{1,62}"
# The connector guide's "Valid pattern"s.
SAGEMAKER_JOB_PATTERN = r"arn:aws:sagemaker:[a-zA-Z0-9-]+:[0-9]+:training-job/[a-zA-Z0-9][a-zA-Z0-9-]+"
POSITIVE_PATTERN = r"[1-9][0-9]*"
MEMORY_POLL_S = 0.02
REPLY_CONTENT_TYPE = "application/json"
CONTENT_TYPES = ("image/jpeg", "image/png")
MAX_WORKER_LINE_BYTES = 1024 * 1024
LAMBDA_USER = "ggc_user"

LogLine = Callable[[str, str], None]


@dataclass(frozen=True)
class InferenceServiceSettings:
    """One ML inference connector's parameters, checked against the connector guide's patterns."""

    model_destination_path: str
    model_resource_id: str
    sagemaker_job_arn: str
    service_name: str
    timeout_s: int
    memory_limit_kb: int
    gpu_acceleration: str | None = None
    feedback_config_id: str | None = None

    @classmethod
    def from_connector(cls, connector: Connector, *, sagemaker_model: bool = True,
                       feedback: bool | None = None) -> InferenceServiceSettings:
        """Read `connector.parameters`; ConnectorConfigError names the parameter that is missing or wrong.

        `sagemaker_model`: the connector takes `MLModelSageMakerJobArn` (Image Classification; Object
        Detection serves a Neo-compiled S3 model and has none). `feedback`: it takes
        `MLFeedbackConnectorConfigId` (default: version 2 of the connector).
        """
        reader = ParameterReader(connector.id, connector.parameters)
        jtx2 = connector.name.endswith("Aarch64JTX2")
        takes_feedback = connector_version(connector.arn) == 2 if feedback is None else feedback
        settings = cls(
            model_destination_path=_required(reader, "MLModelDestinationPath", r".+"),
            model_resource_id=_required(reader, "MLModelResourceId", r"[a-zA-Z0-9:_-]+"),
            sagemaker_job_arn=_required(reader, "MLModelSageMakerJobArn", SAGEMAKER_JOB_PATTERN)
            if sagemaker_model else "",
            service_name=_required(reader, "LocalInferenceServiceName", SERVICE_NAME_PATTERN),
            timeout_s=int(_required(reader, "LocalInferenceServiceTimeoutSeconds", POSITIVE_PATTERN)),
            memory_limit_kb=int(_required(reader, "LocalInferenceServiceMemoryLimitKB", POSITIVE_PATTERN)),
            # Required on the JTX2 connector only ("applies to the Aarch64 JTX2 connector only").
            gpu_acceleration=reader.string("GPUAcceleration", r"CPU|GPU", required=jtx2),
            # Where the connector has none (Image Classification version 1), finish() refuses it as unknown.
            feedback_config_id=(reader.string("MLFeedbackConnectorConfigId", r"|" + SERVICE_NAME_PATTERN,
                                              required=False) or None)
            if takes_feedback else None,
        )
        reader.finish()
        return settings


def _required(reader: ParameterReader, name: str, pattern: str) -> str:
    value = reader.string(name, pattern, required=True)
    assert value is not None  # required=True raises instead of returning None
    return value


def service_function_name(algo_type: str, service_name: str) -> str:
    """The function name the ML SDK addresses: `GG-ML-INF-<AlgoType>-<ServiceName>`."""
    return f"GG-ML-INF-{algo_type}-{service_name}"


def invoked_function_name(function_arn: str) -> str | None:
    """The `GG-ML-INF-...` name in an invoked ARN, or None when it is no inference service's address."""
    found = SERVICE_FUNCTION_ARN.fullmatch(function_arn)
    return found.group(1) if found else None


def connector_runtime(environ: Mapping[str, str]) -> Path:
    """The connectors' Python 3.8 + MXNet interpreter: `$SIMCORE_ML_CONNECTOR_PYTHON`, else `.venv-mxnet`."""
    configured = environ.get(ML_CONNECTOR_RUNTIME_ENV)
    return Path(configured) if configured else PROJECT_ROOT / ML_CONNECTOR_VENV / "bin" / "python"


def check_model_resource(connector: Connector, settings: InferenceServiceSettings, group: Group) -> None:
    """ConnectorConfigError unless `MLModelResourceId` is an ML resource of the group whose destination
    path is `MLModelDestinationPath`."""
    where = f"Connectors[{connector.id}].Parameters"
    resource = next((r for r in group.resources if r.id == settings.model_resource_id), None)
    if resource is None or resource.kind not in ("ml_s3", "ml_sagemaker"):
        known = ", ".join(r.id for r in group.resources if r.kind in ("ml_s3", "ml_sagemaker")) or "none"
        raise ConnectorConfigError(
            f"MLModelResourceId {settings.model_resource_id} is not an ML resource of the group (its ML resources: "
            f"{known})", location=f"{where}.MLModelResourceId")
    if resource.destination_path is not None and resource.destination_path != settings.model_destination_path:
        raise ConnectorConfigError(
            f"MLModelDestinationPath {settings.model_destination_path} is not the destination path of resource "
            f"{resource.id} ({resource.destination_path})", location=f"{where}.MLModelDestinationPath")


def model_folder(connector: Connector, settings: InferenceServiceSettings, group: Group,
                 resource_dirs: Mapping[str, Path]) -> Path:
    """Where the connector's ML resource lies on this machine; ConnectorConfigError when it is not the
    group's ML resource, not at `MLModelDestinationPath`, or not deployed."""
    check_model_resource(connector, settings, group)
    folder = resource_dirs.get(settings.model_resource_id)
    if folder is None:
        raise ConnectorConfigError(
            f"ML resource {settings.model_resource_id} is not deployed: deploy the group first",
            location=f"Connectors[{connector.id}].Parameters.MLModelResourceId")
    return Path(folder)


def _error(kind: str, message: str) -> tuple[bytes, str]:
    return json.dumps({"errorMessage": message, "errorType": kind}).encode(), "Handled"


class _Failure(Exception):
    """A request the service answers with an error: `kind` becomes its `errorType`."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


class _Worker:
    """One model-server process and the reading of its answers, with a deadline and a memory bound."""

    def __init__(self, process: subprocess.Popen, memory_limit_kb: int, log_line: LogLine):
        self.process = process
        self.memory_limit_kb = memory_limit_kb
        self._buffer = b""
        assert process.stdout is not None and process.stderr is not None
        self._out = process.stdout.fileno()
        self._log_thread = threading.Thread(target=self._pump_log, args=(process.stderr, log_line),
                                            name="ml-connector-log", daemon=True)
        self._log_thread.start()

    @staticmethod
    def _pump_log(stream: Any, log_line: LogLine) -> None:
        for raw in iter(stream.readline, b""):
            log_line("INFO", raw.decode("utf-8", "replace").rstrip())

    def rss_kb(self) -> int | None:
        """Resident memory of the worker (VmRSS), None when it is gone."""
        try:
            with open(f"/proc/{self.process.pid}/status", "rb") as status:
                for line in status:
                    if line.startswith(b"VmRSS:"):
                        return int(line.split()[1])
        except (OSError, ValueError, IndexError):
            return None
        return None

    def check_memory(self) -> None:
        rss = self.rss_kb()
        if rss is not None and rss > self.memory_limit_kb:
            raise _Failure("MemoryLimitExceeded", f"The inference service used {rss} KB, over its "
                           f"LocalInferenceServiceMemoryLimitKB of {self.memory_limit_kb} KB; it was stopped")

    def read_message(self, deadline: float, what: str) -> dict[str, Any]:
        """The worker's next JSON line; _Failure on the deadline, the memory bound or the worker's end."""
        while b"\n" not in self._buffer:
            self.check_memory()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Failure("TimeoutException", what)
            readable, _, _ = select.select([self._out], [], [], min(remaining, MEMORY_POLL_S))
            if readable:
                chunk = os.read(self._out, 65536)
                if not chunk:
                    code = self.process.poll()
                    raise _Failure("InferenceServiceException", f"The model server ended (exit code {code})")
                self._buffer += chunk
                if len(self._buffer) > MAX_WORKER_LINE_BYTES:
                    raise _Failure("InferenceServiceException", "The model server's answer is too long")
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)

    def send(self, header: dict[str, Any], body: bytes) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(header).encode() + b"\n" + body)
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise _Failure("InferenceServiceException", "The model server is not running") from None

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._log_thread.join(timeout=5)


class ImageClassificationConnector:
    """One Image Classification connector: a local inference service over one MXNet worker. Thread-safe."""

    algo_type = ALGO_TYPE

    def __init__(
        self,
        arn: str,
        settings: InferenceServiceSettings,
        model_dir: Path,
        runtime: Path,
        *,
        feedback: MLFeedbackConnector | None = None,
        log_line: LogLine | None = None,
        startup_s: float = ML_CONNECTOR_STARTUP_S,
    ):
        self.arn = arn
        self.settings = settings
        self.model_dir = Path(model_dir)
        self.runtime = Path(runtime)
        self.function_name = service_function_name(self.algo_type, settings.service_name)
        self._feedback = feedback
        self._log_line = log_line or _python_log
        self._startup_s = startup_s
        self._request_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._worker: _Worker | None = None
        self._ready = False
        self._load_failure: _Failure | None = None
        self._stopped = False
        self.counters: collections.Counter[str] = collections.Counter()
        # Workers are spawned from this one long-lived thread: the parent-death signal follows the thread
        # that forked, and an IPC thread may end while the worker it started should go on.
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"ml-{settings.service_name}")
        if settings.gpu_acceleration == "GPU":
            self.log("WARN", "GPUAcceleration GPU: this core's MXNet is the CPU build; inference runs on the CPU")
        self._spawner.submit(self._start).result()

    def log(self, level: str, message: str) -> None:
        """A line of this connector's log, prefixed with its service name."""
        self._log_line(level, f"[{self.settings.service_name}] {message}")

    # -- the worker -----------------------------------------------------------------------------------------

    def _start(self) -> None:
        if self._worker is not None or self._load_failure is not None:
            return
        if not self.runtime.exists():
            self._load_failure = _Failure(
                "InferenceServiceException", f"The connector runtime {self.runtime} does not exist: run "
                f"`make venv-mxnet` (Python 3.8 with mxnet) or set {ML_CONNECTOR_RUNTIME_ENV}")
            self.log("ERROR", self._load_failure.message)
            return
        command = [str(self.runtime), str(WORKER_SCRIPT), str(self.model_dir)]
        environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OMP_NUM_THREADS": "1",
                       "MXNET_CPU_WORKER_NTHREADS": "1", "PYTHONDONTWRITEBYTECODE": "1",
                       "MXNET_ENGINE_TYPE": os.environ.get("MXNET_ENGINE_TYPE", "NaiveEngine")}
        identity = _lambda_user()
        try:
            process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment,
                cwd="/", start_new_session=True, preexec_fn=die_with_parent(signal.SIGKILL), **identity,
            )
        except (OSError, subprocess.SubprocessError) as error:
            who = LAMBDA_USER if identity else "the core's user"
            self._load_failure = _Failure(
                "InferenceServiceException", f"The model server cannot start as {who}: {error}. The runtime "
                f"{self.runtime} must be reachable by that user (`simcore setup-users --share PATH` lets "
                "ggc_group pass the folders above it)")
            self.log("ERROR", self._load_failure.message)
            return
        self.counters["worker_starts"] += 1
        self._worker = _Worker(process, self.settings.memory_limit_kb, self.log)
        self._ready = False
        self.log("INFO", f"model server started (pid {process.pid}) for {self.model_dir}")

    def _ensure_ready(self) -> _Worker:
        """A worker that has loaded the model (started if none runs); _Failure if it cannot be had."""
        if self._load_failure is not None:
            raise self._load_failure
        if self._worker is None:
            self._spawner.submit(self._start).result()
            if self._worker is None:
                raise self._load_failure or _Failure("InferenceServiceException", "The model server did not start")
        worker = self._worker
        if not self._ready:
            message = worker.read_message(time.monotonic() + self._startup_s,
                                          f"The model server did not load the model in {self._startup_s:g} s")
            if not message.get("ready"):
                self._load_failure = _Failure("ModelNotFoundException",
                                              f"The model cannot be loaded: {message.get('error')}")
                self.log("ERROR", self._load_failure.message)
                self._discard()
                raise self._load_failure
            self._ready = True
            self.log("INFO", f"model loaded: {message.get('classes')} classes, input {message.get('shape')}")
        worker.check_memory()
        return worker

    def _discard(self) -> None:
        worker, self._worker, self._ready = self._worker, None, False
        if worker is not None:
            worker.kill()

    # -- serving --------------------------------------------------------------------------------------------

    def invoke(self, payload: bytes, client_context: str | bytes | None) -> tuple[bytes, str]:
        """Serve one inference request: (reply payload, FunctionError "" or "Handled")."""
        arrived = time.monotonic()
        deadline = arrived + self.settings.timeout_s
        self.counters["requests"] += 1
        try:
            content_type = _content_type(client_context)
            if not self._request_lock.acquire(timeout=self.settings.timeout_s):
                raise _Failure("TimeoutException", f"The request waited {self.settings.timeout_s} s "
                               "(LocalInferenceServiceTimeoutSeconds) behind others and was not served")
            try:
                answer = self._classify(payload, content_type, deadline)
            finally:
                self._request_lock.release()
        except _Failure as failure:
            self.counters[f"error.{failure.kind}"] += 1
            self.log("WARN", f"request refused: {failure.kind}: {failure.message}")
            return _error(failure.kind, failure.message)
        self.counters["succeeded"] += 1
        self._send_feedback(payload, content_type, answer["probabilities"])
        reply = {"Body": answer["body"], "Content-Type": REPLY_CONTENT_TYPE}
        return json.dumps(reply).encode(), ""

    def _classify(self, payload: bytes, content_type: str, deadline: float) -> dict[str, Any]:
        with self._state_lock:
            if self._stopped:
                raise _Failure("InferenceServiceException", "The inference service is stopping")
        try:
            loading_from = time.monotonic()
            worker = self._ensure_ready()
            deadline += time.monotonic() - loading_from  # loading the model is not the request's time
            worker.send({"content_type": content_type, "size": len(payload)}, payload)
            answer = worker.read_message(deadline, f"The inference took longer than {self.settings.timeout_s} s "
                                         "(LocalInferenceServiceTimeoutSeconds); the model server was restarted")
        except _Failure as failure:
            if failure.kind in ("TimeoutException", "MemoryLimitExceeded", "InferenceServiceException"):
                self.counters[f"worker_kills.{failure.kind}"] += 1
                self._discard()
                if self._load_failure is None:
                    self._spawner.submit(self._start)  # ready for the next request
            raise
        if not answer.get("ok"):
            raise _Failure(str(answer.get("type") or "InferenceException"), str(answer.get("error")))
        return answer

    def _send_feedback(self, image: bytes, content_type: str, probabilities: list[float]) -> None:
        config_id = self.settings.feedback_config_id
        if config_id is None or self._feedback is None:
            return
        request = FeedbackRequest(config_id, image, probabilities,
                                  {"LocalInferenceServiceName": self.settings.service_name,
                                   "content-type": content_type})
        self._feedback.submit(request)
        self.counters["feedback_samples"] += 1

    # -- the registry's protocol -----------------------------------------------------------------------------

    def deliver(self, topic: str, payload: bytes) -> None:
        """The connector takes no MQTT input: a routed message is counted and dropped."""
        self.counters["mqtt_messages_ignored"] += 1
        self.log("WARN", f"a message on {topic} was routed here; this connector takes no MQTT input")

    def stop(self) -> None:
        """Stop the model server."""
        with self._state_lock:
            self._stopped = True
        with self._request_lock:
            self._discard()
        self._spawner.shutdown(wait=True)

    def stats(self) -> dict[str, Any]:
        """Counters, the service's address and its worker's pid and memory."""
        worker = self._worker
        return {
            "function": self.function_name,
            "worker_pid": worker.process.pid if worker is not None else None,
            "worker_rss_kb": worker.rss_kb() if worker is not None else None,
            **dict(self.counters),
        }


def _content_type(client_context: str | bytes | None) -> str:
    """The request's `Content-Type` from the ML SDK's client context; _Failure when absent or unreadable."""
    try:
        context = json.loads(base64.b64decode(client_context or b"", validate=True) or b"{}")
    except (binascii.Error, ValueError):
        raise _Failure("InvalidInputException", "The client context is not base64 of a JSON object") from None
    custom = context.get("custom") if isinstance(context, dict) else None
    content_type = custom.get("Content-Type") if isinstance(custom, dict) else None
    if not isinstance(content_type, str) or not content_type:
        raise _Failure("InvalidInputException", "ContentType is required: image/jpeg or image/png")
    if content_type not in CONTENT_TYPES:  # refused here: the model server never sees an arbitrary string
        shown = content_type if len(content_type) <= 64 else content_type[:64] + "..."
        raise _Failure("InvalidInputException", f"ContentType {shown!r} is not supported: use image/jpeg or image/png")
    return content_type


def _lambda_user() -> dict[str, Any]:
    """As root, the worker runs as ggc_user (as a v1 connector's Lambda did); otherwise as the core's user."""
    if os.geteuid() != 0:
        return {}
    try:
        user = pwd.getpwnam(LAMBDA_USER)
    except KeyError:
        return {}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _python_log(level: str, message: str) -> None:
    log.log(logging.WARNING if level == "WARN" else getattr(logging, level, logging.INFO), "%s", message)
