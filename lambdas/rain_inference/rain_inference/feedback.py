"""Low-confidence samples for the ML Feedback connector, so they can be labelled and used to retrain.

The v1 ML Feedback connector takes no MQTT input. greengrass_machine_learning_sdk's feedback client reaches it
with an IPC invoke of `arn:aws:lambda:<region>:aws:function:MLFeedback` (unqualified, account `aws`):

    Payload        the model input bytes (here: the reading as JSON)
    ClientContext  base64(JSON {"custom": {"ConfigId": str, "ModelPrediction": [p_dry, p_rain],
                                           "Metadata": {...}}})

This Lambda makes the same invoke through greengrasssdk's Lambda client (the ML SDK is not on PyPI); the
handler injects that call as an `InvokeCall`. The answer is the SDK's `{"Payload", "FunctionError"}`: an
empty FunctionError means the connector took the request (the ML SDK checks nothing more), "Handled" or
"Unhandled" comes with an error payload. Every failure is logged and counted as `error.feedback`.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Callable, Mapping, NamedTuple, Optional

from rain_inference.metrics import RunningMetrics

log = logging.getLogger(__name__)

# (FunctionName, ClientContext, Payload) -> greengrasssdk Lambda.invoke's answer {"Payload", "FunctionError"}.
InvokeCall = Callable[[str, bytes, bytes], Mapping[str, object]]


class FeedbackInvocation(NamedTuple):
    """The two parts of one feedback invoke."""

    client_context: bytes  # base64 of the JSON client context, as greengrasssdk's invoke takes it
    payload: bytes         # the model input


def is_low_confidence(p_rain: float, threshold: float, band: float) -> bool:
    """True when the probability lies within `band` of the decision threshold (inclusive)."""
    return band > 0 and abs(p_rain - threshold) <= band


def model_input(reading: Mapping[str, object]) -> bytes:
    """The reading as the model's input bytes: sorted-key JSON, UTF-8."""
    return json.dumps(dict(reading), sort_keys=True, allow_nan=False).encode("utf-8")


def feedback_invocation(config_id: str, reading: Mapping[str, object], p_rain: float,
                        metadata: Mapping[str, object]) -> FeedbackInvocation:
    """The invoke the ML SDK's `feedback.Client.publish` makes for one sample."""
    custom = {"ConfigId": config_id, "ModelPrediction": [1.0 - p_rain, p_rain], "Metadata": dict(metadata)}
    context = json.dumps({"custom": custom}, sort_keys=True, allow_nan=False).encode("utf-8")
    return FeedbackInvocation(base64.b64encode(context), model_input(reading))


def _payload_bytes(payload: object) -> bytes:
    # greengrasssdk answers a StreamingBody when FunctionError is empty, plain bytes otherwise.
    if payload is None:
        return b""
    if hasattr(payload, "read"):
        return payload.read()
    if isinstance(payload, str):
        return payload.encode("utf-8")
    return bytes(payload)


def refusal(answer: Mapping[str, object]) -> Optional[str]:
    """Why the connector did not take the sample, or None when it did."""
    body = _payload_bytes(answer.get("Payload"))
    try:
        document = json.loads(body.decode("utf-8")) if body else None
    except ValueError:
        document = None
    function_error = answer.get("FunctionError")
    if function_error:
        if isinstance(document, dict) and document.get("errorMessage"):
            detail = "{}: {}".format(document.get("errorType") or "Error", document["errorMessage"])
        else:
            detail = body.decode("utf-8", "replace") or "no error payload"
        return "FunctionError {}: {}".format(function_error, detail)
    if isinstance(document, dict) and document.get("queued") is False:
        # simcore's connector answers this when RequestLimit requests already wait: the sample is dropped.
        return "the connector's request queue is full (RequestLimit); sample {} dropped".format(
            document.get("id"))
    return None


class FeedbackSender:
    """Sends low-confidence samples to the connector through an injected invoke; never raises."""

    def __init__(self, invoke: InvokeCall, connector_arn: str, config_id: str, metrics: RunningMetrics) -> None:
        self._invoke = invoke
        self.connector_arn = connector_arn
        self.config_id = config_id
        self._metrics = metrics

    def send(self, reading: Mapping[str, object], p_rain: float, metadata: Mapping[str, object]) -> bool:
        """Invoke the connector with one sample; True when it took it (counted as `feedback.samples`)."""
        seq = metadata.get("seq")
        try:
            invocation = feedback_invocation(self.config_id, reading, p_rain, metadata)
            answer = self._invoke(self.connector_arn, invocation.client_context, invocation.payload)
            problem = refusal(answer)
        except Exception as error:  # the SDK's InvocationException / ValueError, a non-JSON value alike
            problem = "{}: {}".format(type(error).__name__, error)
        if problem is not None:
            log.error("feedback sample of seq %s not taken by %s: %s", seq, self.connector_arn, problem)
            self._metrics.record_error("feedback", problem)
            return False
        self._metrics.note("feedback.samples")
        return True
