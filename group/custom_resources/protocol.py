"""The CloudFormation custom resource protocol: run a request's handler and PUT its outcome to ResponseURL.

A handler returns `(physical_resource_id, data)` or raises; whatever happens, exactly one response is
sent, because CloudFormation waits up to an hour for it. A failure's `Reason` names AWS's error code.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import ClientError

LOGGER = logging.getLogger(__name__)

SUCCESS = "SUCCESS"
FAILED = "FAILED"
# A lost response leaves the stack waiting an hour, so a failed PUT is retried with a backoff.
RETRY_DELAYS_S = (1.0, 4.0)
SEND_TIMEOUT_S = 30

Outcome = tuple[str, dict[str, Any]]
RequestHandler = Callable[[Mapping[str, Any]], Outcome]


class CustomResourceError(Exception):
    """A request that cannot be carried out; the message becomes the response's `Reason`."""


def describe_error(error: BaseException) -> str:
    """A one-line reason: AWS's error code and message for AWS errors, the message otherwise."""
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        operation = getattr(error, "operation_name", "AWS call")
        return f"{details.get('Code', 'ClientError')} in {operation}: {details.get('Message', str(error))}"
    if isinstance(error, CustomResourceError):
        return str(error)
    return f"{type(error).__name__}: {error}"


def build_response(
    event: Mapping[str, Any], status: str, physical_resource_id: str, reason: str = "",
    data: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON body CloudFormation expects at ResponseURL."""
    return {
        "Status": status,
        "Reason": reason or f"{status}: see CloudWatch log group of {event.get('LogicalResourceId', '?')}",
        "PhysicalResourceId": physical_resource_id,
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
        "NoEcho": False,
        "Data": dict(data or {}),
    }


def send_response(
    response_url: str, body: Mapping[str, Any], *, retry_delays_s: tuple[float, ...] = RETRY_DELAYS_S
) -> None:
    """PUT the body to the pre-signed URL (an empty Content-Type, as the S3 signature expects).

    Tries once more after each of `retry_delays_s`, then raises ConnectionError.
    """
    payload = json.dumps(body).encode("utf-8")
    last_error: Exception | None = None
    for delay_s in (None, *retry_delays_s):
        if delay_s:
            time.sleep(delay_s)
        request = urllib.request.Request(
            response_url, data=payload, method="PUT",
            headers={"Content-Type": "", "Content-Length": str(len(payload))},
        )
        try:
            with urllib.request.urlopen(request, timeout=SEND_TIMEOUT_S) as reply:
                reply.read()
            return
        except OSError as error:  # URLError and HTTPError are OSErrors
            last_error = error
            LOGGER.warning("sending the custom resource response failed: %s", error)
    raise ConnectionError(f"could not send the response to CloudFormation: {last_error}")


def run(
    event: Mapping[str, Any], *, create: RequestHandler, update: RequestHandler, delete: RequestHandler,
    failed_physical_id: str | None = None,
) -> dict[str, Any]:
    """Dispatch `event` by RequestType, send the response, and return it (for logs and tests).

    On a failed Create there is no resource yet: the response carries `failed_physical_id` (or a
    placeholder naming the request) so that the Delete CloudFormation sends next can recognise it.
    """
    handlers = {"Create": create, "Update": update, "Delete": delete}
    request_type = event.get("RequestType")
    physical_id = event.get("PhysicalResourceId") or failed_physical_id or f"failed-{event.get('RequestId')}"
    try:
        if request_type not in handlers:
            raise CustomResourceError(
                f"unknown RequestType {request_type!r}: expected Create, Update or Delete")
        physical_id, data = handlers[request_type](event)
        body = build_response(event, SUCCESS, physical_id, reason="OK", data=data)
    except Exception as error:  # every failure must reach CloudFormation, or the stack hangs for an hour
        LOGGER.exception("%s of %s failed", request_type, event.get("LogicalResourceId"))
        body = build_response(event, FAILED, physical_id, reason=describe_error(error))
    send_response(event["ResponseURL"], body)
    return body


def required_property(event: Mapping[str, Any], name: str) -> str:
    """A non-empty string property of the resource, or a CustomResourceError naming it."""
    value = event.get("ResourceProperties", {}).get(name)
    if not isinstance(value, str) or not value:
        raise CustomResourceError(f"property {name} is required (a non-empty string)")
    return value
