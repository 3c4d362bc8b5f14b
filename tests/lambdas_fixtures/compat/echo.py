"""A Lambda that answers with what it received: event, context fields, the routed topic."""

import json

import greengrasssdk

iot = greengrasssdk.client("iot-data")


def function_handler(event, context):
    if isinstance(event, dict) and event.get("fail"):
        raise ValueError("asked to fail")
    custom = context.client_context.custom if context.client_context else None
    reply = {
        "event": event if not isinstance(event, bytes) else event.decode("latin-1"),
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "aws_request_id": context.aws_request_id,
        "identity": context.identity,
        "custom": custom,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
    if isinstance(event, dict) and event.get("publish_to"):
        iot.publish(topic=event["publish_to"], payload=json.dumps(reply))
    elif custom and custom.get("subject"):
        iot.publish(topic="echo/routed", payload=json.dumps(reply))
    return reply
