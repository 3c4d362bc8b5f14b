"""The core's IPC server: the v1 HTTP protocol on 127.0.0.1, per-worker tokens, dispatch to system functions.

Paths are `/2016-11-01/functions/<function-arn>[/work|/initialized]` with the ARN raw. Every call carries a
token in `Authorization`; the token says which function (and which worker process) is calling, and that
identity, never a field in the request, is the caller: a publish whose client-context `source` differs is
refused, and a worker may only take work for, and post results to, its own function.

`GGRouter`, `GGShadowService` and `GGSecretManager` are served in-process. Invocations of user functions
become work items on the shared work queue; a `RequestResponse` caller's `get_work_result` blocks until the
worker posts the result, or the function's Timeout passes (an `Unhandled` error). Errors the caller must see
at `post_work` are HTTP errors whose reason phrase says what went wrong: the SDK raises them as
`InvocationException('Failed to invoke function due to HTTP Error 4xx: <reason>')`.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any, Protocol

from simcore.core.ipc.tokens import Caller, TokenRegistry
from simcore.core.router import Router
from simcore.core.secrets import SecretStore
from simcore.core.work_queue import (
    FUNC_ERR_HANDLED,
    FUNC_ERR_NONE,
    FUNC_ERR_UNHANDLED,
    InvocationResult,
    WorkItem,
    WorkQueue,
)
from simcore.errors import RoutingError, SimcoreError
from simcore.shadow.service import ShadowHandler, handle_and_publish

log = logging.getLogger(__name__)

API_PREFIX = "/2016-11-01/functions/"
SYSTEM_ARN_PREFIX = "arn:aws:lambda:::function:"
ROUTER_NAME = "GGRouter"
SHADOW_NAME = "GGShadowService"
SECRETS_NAME = "GGSecretManager"
# Body limits, checked against Content-Length before a byte of the body is read. An invoke's payload and a
# function's result: AWS Lambda's 6 MB for synchronous invocation (request and response); simcore applies it to
# Event invokes too (v1 states no smaller local figure; AWS's cloud Event limit is 1 MB). A publish: AWS IoT's
# 128 KB message limit. A shadow request: the same 128 KB (its 8 KB document limit is the shadow service's own
# 413 answer, which the caller must still get). Other calls carry small JSON.
MAX_PUBLISH_BYTES = 128 * 1024
MAX_INVOKE_BYTES = 6 * 1024 * 1024
MAX_RESULT_BYTES = 6 * 1024 * 1024
MAX_SHADOW_REQUEST_BYTES = 128 * 1024
MAX_SMALL_REQUEST_BYTES = 128 * 1024
GET_WORK_POLL_S = 30.0
MAX_UNCLAIMED_RESULTS = 1024
UNCLAIMED_RESULT_TTL_S = 300.0
HEADER_INVOCATION_ID = "X-Amz-InvocationId"
HEADER_CLIENT_CONTEXT = "X-Amz-Client-Context"
HEADER_INVOCATION_TYPE = "X-Amz-Invocation-Type"
HEADER_FUNCTION_ERROR = "X-Amz-Function-Error"
INVOCATION_TYPES = ("RequestResponse", "Event")
# AWS Lambda's Invoke error names for the statuses the IPC server answers with (the `X-Amzn-ErrorType` header).
LAMBDA_ERROR_NAMES = {
    400: "InvalidRequestContentException",
    404: "ResourceNotFoundException",
    413: "RequestTooLargeException",
    429: "TooManyRequestsException",
    500: "ServiceException",
    503: "ServiceException",
}
# The IPC operations, by method and path suffix.
OPERATIONS = {
    ("POST", ""): "post_work",
    ("GET", ""): "get_work_result",
    ("GET", "/work"): "get_work",
    ("POST", "/work"): "post_work_result",
    ("PUT", "/initialized"): "put_initialization_result",
}


class IPCError(SimcoreError):
    """A call the IPC server refuses: `http_status` is the HTTP status it answers, `message` the reason."""

    code = "IPCError"
    http_status = 400


class WorkSource(Protocol):
    """Hands work items to workers and takes them back when finished (`simcore.core.workers.WorkerManager`)."""

    def take_work(self, caller: Caller, timeout: float) -> WorkItem | None: ...

    def finish_work(self, caller: Caller, invocation_id: str) -> WorkItem | None: ...


class ConnectorFunctions(Protocol):
    """Connectors reached by an invoke rather than a subscription (the ML Feedback connector)."""

    def has_function(self, function_arn: str) -> bool: ...

    def invoke(self, function_arn: str, payload: bytes, client_context: str | None) -> tuple[bytes, str]: ...


def system_function_name(function_arn: str) -> str | None:
    """`GGRouter`, `GGShadowService`... for a system function ARN (any qualifier), else None."""
    if not function_arn.startswith(SYSTEM_ARN_PREFIX):
        return None
    return function_arn[len(SYSTEM_ARN_PREFIX) :].split(":", 1)[0]


def decode_client_context(header: str | None) -> dict[str, Any]:
    """The client context header as a dict (base64 JSON); IPCError 400 when it is not one."""
    if not header:
        return {}
    try:
        document = json.loads(base64.b64decode(header, validate=True))
    except (ValueError, binascii.Error) as error:
        raise IPCError(f"X-Amz-Client-Context is not base64-encoded JSON: {error}", http_status=400) from None
    if not isinstance(document, dict):
        raise IPCError("X-Amz-Client-Context must encode a JSON object", http_status=400)
    if not isinstance(document.get("custom", {}), dict):
        raise IPCError("X-Amz-Client-Context's custom must be a JSON object", http_status=400)
    return document


def client_context_custom(header: str | None) -> dict[str, Any]:
    """The `custom` object of a client context header ({} when absent); IPCError 400 when malformed."""
    return decode_client_context(header).get("custom") or {}


class IPCDispatcher:
    """The protocol's logic, free of HTTP: who may call what, and where each invocation goes."""

    def __init__(
        self,
        router: Router,
        work_queue: WorkQueue,
        function_timeouts: Mapping[str, float],
        work_source: WorkSource,
        *,
        tokens: TokenRegistry | None = None,
        shadow_service: ShadowHandler | None = None,
        secret_store: SecretStore | None = None,
        connector_functions: ConnectorFunctions | None = None,
    ):
        self.router = router
        self.connector_functions = connector_functions
        self.work_queue = work_queue
        self.function_timeouts = dict(function_timeouts)
        self.tokens = tokens or TokenRegistry()
        self.work_source = work_source
        self.shadow_service = shadow_service
        self.secret_store = secret_store or SecretStore()
        self._results: dict[str, tuple[str, WorkItem]] = {}
        self._results_lock = threading.Lock()
        self.refused_calls = 0
        self.throttled_invokes: dict[str, int] = {}

    # -- callers -------------------------------------------------------------------------------------------

    def authenticate(self, token: str | None, what: str, peer: str, *, missing_status: int = 401) -> Caller:
        """The caller behind `token`; IPCError `missing_status` (missing) or 403 (unknown), logged."""
        if not token:
            self.refused_calls += 1
            log.warning("IPC call refused: %s from %s carries no Authorization token", what, peer)
            raise IPCError("Missing Authorization token", http_status=missing_status)
        caller = self.tokens.lookup(token)
        if caller is None:
            self.refused_calls += 1
            log.warning("IPC call refused: %s from %s carries an unknown token", what, peer)
            raise IPCError("Unknown Authorization token", http_status=403)
        return caller

    def _refuse(self, status: int, message: str) -> IPCError:
        self.refused_calls += 1
        log.warning("IPC call refused: %s", message)
        return IPCError(message, http_status=status)

    def resolve_function(self, function_arn: str) -> str:
        """The group's ARN for an invoked `function_arn` (an unqualified ARN matches a lone qualified one)."""
        if function_arn in self.function_timeouts:
            return function_arn
        candidates = [arn for arn in self.function_timeouts if arn.rsplit(":", 1)[0] == function_arn]
        if len(candidates) == 1:
            return candidates[0]
        raise IPCError(f"Function {function_arn} is not deployed in this group", http_status=404)

    def body_limit(self, caller: Caller, operation: str, function_arn: str, headers: Mapping[str, str]) -> int:
        """Check a request from its headers alone and return the most body bytes it may carry.

        Runs before any of the body is read: an unknown target (404), another function's work (403), a bad
        invocation type or client context (400) are refused here, so a refused request costs no body.
        """
        if operation == "post_work":
            invocation_type = headers.get(HEADER_INVOCATION_TYPE) or "RequestResponse"
            if invocation_type not in INVOCATION_TYPES:
                raise IPCError(
                    f"Unknown X-Amz-Invocation-Type {invocation_type!r}: use RequestResponse or Event",
                    http_status=400,
                )
            client_context_custom(headers.get(HEADER_CLIENT_CONTEXT))
            system_name = system_function_name(function_arn)
            if system_name == ROUTER_NAME:
                return MAX_PUBLISH_BYTES
            if system_name in (SHADOW_NAME, SECRETS_NAME):
                return MAX_SHADOW_REQUEST_BYTES
            if system_name is not None:
                raise IPCError(f"System function {system_name} is not available on this core", http_status=404)
            if self.connector_functions is None or not self.connector_functions.has_function(function_arn):
                self.resolve_function(function_arn)
            return MAX_INVOKE_BYTES
        if operation == "post_work_result":
            self._own_function(caller, function_arn, "post results")
            return MAX_RESULT_BYTES
        if operation == "put_initialization_result":
            self._own_function(caller, function_arn, "report initialisation")
            return MAX_SMALL_REQUEST_BYTES
        return 0

    # -- callers' side -------------------------------------------------------------------------------------

    def post_work(
        self,
        caller: Caller,
        function_arn: str,
        payload: bytes,
        client_context: str | None,
        invocation_type: str,
    ) -> str:
        """Start an invocation of `function_arn`; returns its invocation id."""
        invocation_type = invocation_type or "RequestResponse"
        if invocation_type not in INVOCATION_TYPES:
            raise IPCError(
                f"Unknown X-Amz-Invocation-Type {invocation_type!r}: use RequestResponse or Event", http_status=400
            )
        system_name = system_function_name(function_arn)
        if system_name == ROUTER_NAME:
            return self._publish(caller, payload, client_context, invocation_type)
        if system_name == SHADOW_NAME:
            return self._call_shadow(caller, payload, client_context, invocation_type)
        if system_name == SECRETS_NAME:
            return self._get_secret(caller, payload, invocation_type)
        if system_name is not None:
            raise IPCError(f"System function {system_name} is not available on this core", http_status=404)
        if len(payload) > MAX_INVOKE_BYTES:
            raise IPCError(f"The payload is {len(payload)} bytes; the limit is {MAX_INVOKE_BYTES}", http_status=413)
        if self.connector_functions is not None and self.connector_functions.has_function(function_arn):
            # A connector's invoke address (the ML SDK's `...:aws:function:MLFeedback`): served in-process.
            body, function_error = self.connector_functions.invoke(function_arn, payload, client_context)
            return self._finished(caller, invocation_type, body, function_error)
        target = self.resolve_function(function_arn)
        result = InvocationResult() if invocation_type == "RequestResponse" else None
        item = WorkItem(
            target, payload, client_context or "", invocation_type, result=result, caller=caller.function_arn
        )
        try:
            self.work_queue.put(item)
        except RoutingError as error:
            # Refused, never lost: the caller is told (429 TooManyRequestsException for a full share), and counted.
            with self._results_lock:
                refused = self.throttled_invokes[target] = self.throttled_invokes.get(target, 0) + 1
            if refused & (refused - 1) == 0:  # the 1st, 2nd, 4th, 8th...: a flood cannot flood the log too
                log.warning(
                    "Invoke of %s by %s refused (%d so far): %s", target, caller.function_arn, refused, error.message
                )
            raise IPCError(f"Cannot invoke {target}: {error.message}", http_status=error.http_status) from None
        if result is not None:
            self._remember(caller, item)
        return item.invocation_id

    def _publish(self, caller: Caller, payload: bytes, client_context: str | None, invocation_type: str) -> str:
        custom = client_context_custom(client_context)
        topic = custom.get("subject")
        source = custom.get("source")
        if source is not None and source != caller.function_arn:
            raise self._refuse(403, f"{caller.function_arn} may not publish as source {source}")
        if not isinstance(topic, str):
            raise IPCError("A publish needs the topic in the client context's custom.subject", http_status=400)
        if len(payload) > MAX_PUBLISH_BYTES:
            raise IPCError(
                f"The payload of a message on {topic} is {len(payload)} bytes; the limit is 128 KB", http_status=413
            )
        # A RoutingError (bad topic, full queue) goes to the HTTP edge as it is: its status and message.
        self.router.route(caller.function_arn, topic, payload, custom.get("queueFullPolicy") or "")
        return self._finished(caller, invocation_type, b"", FUNC_ERR_NONE)

    def _call_shadow(self, caller: Caller, payload: bytes, client_context: str | None, invocation_type: str) -> str:
        topic = client_context_custom(client_context).get("subject")
        if not isinstance(topic, str):
            raise IPCError("A shadow call needs the topic in the client context's custom.subject", http_status=400)
        if self.shadow_service is None:
            raise IPCError("The shadow service is not running on this core", http_status=503)
        try:
            response = handle_and_publish(self.shadow_service, topic, payload, self.router.publish_shadow_outcome)
        except Exception as error:
            log.exception("The shadow service failed on %s", topic)
            body = json.dumps({"errorMessage": f"GGShadowService failed: {error}"}).encode()
            return self._finished(caller, invocation_type, body, FUNC_ERR_UNHANDLED)
        return self._finished(caller, invocation_type, response, FUNC_ERR_NONE)

    def _get_secret(self, caller: Caller, payload: bytes, invocation_type: str) -> str:
        try:
            request = json.loads(payload or b"{}")
            secret_id = request["SecretId"]
        except (ValueError, KeyError, TypeError):
            answer: dict[str, Any] = {"Status": 400, "Message": "The request must be JSON with a SecretId"}
        else:
            answer = self.secret_store.get(caller.function_arn, secret_id, request.get("VersionStage"))
        return self._finished(caller, invocation_type, json.dumps(answer).encode(), FUNC_ERR_NONE)

    def _finished(self, caller: Caller, invocation_type: str, payload: bytes, func_err: str) -> str:
        """An invocation answered in-process: its result is ready for get_work_result at once."""
        invocation_id = str(uuid.uuid4())
        if invocation_type == "RequestResponse":
            item = WorkItem("", b"", "", invocation_type, invocation_id=invocation_id, result=InvocationResult())
            item.result.complete(payload, func_err)
            self._remember(caller, item)
        return invocation_id

    def _remember(self, caller: Caller, item: WorkItem) -> None:
        with self._results_lock:
            self._results[item.invocation_id] = (caller.function_arn, item)
            if len(self._results) > MAX_UNCLAIMED_RESULTS:
                self._forget_unclaimed()

    def _forget_unclaimed(self) -> None:
        """Drop finished results nobody fetched for a while (their caller went away)."""
        horizon = time.monotonic() - UNCLAIMED_RESULT_TTL_S
        stale = [key for key, (_, item) in self._results.items() if item.result.done and item.posted_at < horizon]
        for key in stale:
            del self._results[key]

    def get_work_result(self, caller: Caller, function_arn: str, invocation_id: str | None) -> tuple[bytes, str]:
        """Wait for the result of the caller's own invocation; (payload, function error)."""
        if not invocation_id:
            raise IPCError("get_work_result needs the X-Amz-InvocationId header", http_status=400)
        with self._results_lock:
            entry = self._results.get(invocation_id)
        if entry is None or entry[0] != caller.function_arn:
            raise IPCError(
                f"No invocation {invocation_id} of {function_arn} by {caller.function_arn}", http_status=404
            )
        item = entry[1]
        result = item.result
        timeout_s = self.function_timeouts.get(item.function_arn, 0.0)
        while not result.done:
            started = item.dispatched_at or item.posted_at
            remaining = started + timeout_s - time.monotonic()
            if remaining <= 0:
                self._time_out(item, timeout_s)
                break
            result.wait(min(remaining, 1.0))
        with self._results_lock:
            self._results.pop(invocation_id, None)
        return result.payload, result.func_err

    def _time_out(self, item: WorkItem, timeout_s: float) -> None:
        if item.dispatched_at is None:
            item.cancelled = True
            self.work_queue.discard(item)
            item.result.fail_unhandled(f"Task was not started by a worker within {timeout_s:g} seconds")
        else:
            item.result.fail_unhandled(f"Task timed out after {timeout_s:g} seconds")

    # -- workers' side -------------------------------------------------------------------------------------

    def _own_function(self, caller: Caller, function_arn: str, what: str) -> None:
        if function_arn != caller.function_arn:
            raise self._refuse(403, f"{caller.function_arn} may not {what} for {function_arn}")

    def get_work(self, caller: Caller, function_arn: str, timeout: float = GET_WORK_POLL_S) -> WorkItem | None:
        """The caller's next work item (a long poll); None when the poll ended empty."""
        self._own_function(caller, function_arn, "get work")
        try:
            return self.work_source.take_work(caller, timeout)
        except PermissionError as error:
            raise self._refuse(403, str(error)) from None

    def post_work_result(
        self, caller: Caller, function_arn: str, invocation_id: str | None, payload: bytes, func_err: str
    ) -> None:
        """Record the result of a work item the caller holds."""
        self._own_function(caller, function_arn, "post results")
        if not invocation_id:
            raise IPCError("A work result needs the X-Amz-InvocationId header", http_status=400)
        item = self.work_source.finish_work(caller, invocation_id)
        if item is None:
            raise IPCError(
                f"Invocation {invocation_id} is not held by this worker of {function_arn}", http_status=404
            )
        if item.result is not None:
            item.result.complete(payload, FUNC_ERR_HANDLED if func_err else FUNC_ERR_NONE)

    def put_initialized(self, caller: Caller, function_arn: str, body: bytes) -> None:
        """A connector's initialisation report: logged."""
        self._own_function(caller, function_arn, "report initialisation")
        log.info("%s reports initialisation: %s", function_arn, body.decode("utf-8", "replace")[:500])
