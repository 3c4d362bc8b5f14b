"""A Lambda that publishes what it is told to: event `{"topic", "message"}` -> `message` as JSON on `topic`.

It stands in for the inference Lambda when a test drives the connectors through a real core.
"""

import json

import greengrasssdk

iot = greengrasssdk.client("iot-data")


def function_handler(event, context):
    iot.publish(topic=event["topic"], payload=json.dumps(event["message"]))
    return {"published": event["topic"]}
