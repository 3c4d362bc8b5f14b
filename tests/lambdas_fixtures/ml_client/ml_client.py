"""A user Lambda that calls the local ML services exactly as the Greengrass ML SDK 1.1.0 does.

The ML SDK is not published on PyPI (users vendored AWS's download into their Lambda packages), so this
Lambda makes the SDK's own calls, written from its published behaviour, against the runtime's modules only:
- at start, the interface check: `greengrass_common.parse_version.parse_version(GGC_MAX_INTERFACE_VERSION)`
  must have the SDK's major (1) and at least its minor (2);
- `invoke_inference_service`: address `arn:aws:lambda:<AWS_REGION>:aws:function:GG-ML-INF-<AlgoType>-<ServiceName>`,
  `GreengrassServiceMessage(base64(json({"custom": {...}})) as bytes, Body)` with `Content-Type` / `Accept`
  only when given, `GreengrassServiceClient().call(address, message)`; an `error_response` is the SDK's
  `GreengrassInferenceException`, a `GreengrassRuntimeException` its `GreengrassDependencyException`;
  success is `json.loads(response.payload)` with `Body` read as the text `[p0,p1,...]`;
- the feedback client's `publish`: address `...:aws:function:MLFeedback`, the context holding ConfigId,
  ModelPrediction and Metadata, the model input as the payload.
The event names which call to make; the handler answers what the SDK would have returned or raised.
"""

import base64
import json
import os

from greengrass_common.env_vars import GGC_MAX_INTERFACE_VERSION
from greengrass_common.parse_version import parse_version
from greengrass_ipc_python_sdk.ipc_facade import (
    GreengrassRuntimeException,
    GreengrassServiceClient,
    GreengrassServiceMessage,
)

SDK_INTERFACE = (1, 2)

major, minor = parse_version(GGC_MAX_INTERFACE_VERSION)
if int(major) != SDK_INTERFACE[0] or int(minor) < SDK_INTERFACE[1]:
    raise ValueError(f"ML SDK interface {SDK_INTERFACE} is not served by core interface {GGC_MAX_INTERFACE_VERSION}")
client = GreengrassServiceClient()


def _context(custom):
    return base64.b64encode(json.dumps({"custom": custom}).encode("utf-8"))


def _outcome(address, message):
    try:
        output = client.call(address, message)
    except GreengrassRuntimeException as error:
        return {"raised": "GreengrassDependencyException", "message": str(error)}
    if output.error_response:
        payload = output.error_response.payload
        return {"raised": "GreengrassInferenceException", "payload": payload.decode("utf-8", "replace")}
    return {"response": json.loads(output.response.payload)}


def infer(event):
    """`invoke_inference_service(AlgoType, ServiceName, ContentType?, Accept?, Body)`, the list parsed."""
    metadata = {}
    if "content_type" in event:
        metadata["Content-Type"] = event["content_type"]
    if "accept" in event:
        metadata["Accept"] = event["accept"]
    address = "arn:aws:lambda:{}:aws:function:GG-ML-INF-{}-{}".format(
        os.environ["AWS_REGION"], event.get("algo_type", "image-classification"), event["service_name"])
    body = bytearray(base64.b64decode(event["image_b64"]))  # the guide's v2 example sends a bytearray
    outcome = _outcome(address, GreengrassServiceMessage(_context(metadata), body))
    if "response" in outcome:
        response = outcome.pop("response")
        text = response["Body"]
        # What the guide's example does with the answer: strip the brackets, split on commas.
        outcome["predictions"] = [float(value) for value in text[1:-1].split(",")]
        outcome["body"] = text
        outcome["content_type"] = response.get("Content-Type")
    return outcome


def feedback(event):
    """The feedback client's `publish(ConfigId, ModelInput, ModelPrediction, Metadata)`."""
    address = "arn:aws:lambda:{}:aws:function:MLFeedback".format(os.environ["AWS_REGION"])
    custom = {"ConfigId": event["config_id"], "ModelPrediction": event["prediction"],
              "Metadata": event.get("metadata", {})}
    model_input = base64.b64decode(event["input_b64"])
    return _outcome(address, GreengrassServiceMessage(_context(custom), model_input))


def raw(event):
    """`GreengrassServiceClient().call` of any address, as the SDK makes it (to see each outcome's mapping)."""
    return _outcome(event["address"], GreengrassServiceMessage(_context({}), event["payload"].encode()))


CALLS = {"infer": infer, "feedback": feedback, "raw": raw}


def function_handler(event, context):
    """`{"call": "infer" | "feedback" | "raw", ...}` -> what the SDK call returned or raised."""
    return CALLS[event["call"]](event)


def crash_handler(event, context):
    """A service that dies mid-invocation (its FunctionError is then Unhandled) or raises (Handled)."""
    if event.get("crash"):
        os._exit(3)
    if event.get("raise"):
        raise RuntimeError("the service refused")
    return {"echo": event}
