"""A pinned Lambda in the v1 style: its long-lived work is a loop in module-level code that never returns."""

import json
import os
import time

import greengrasssdk

iot = greengrasssdk.client("iot-data")


def function_handler(event, context):
    """Never called: the module's import never ends."""
    return None


iot.publish(topic="lifecycle/started", payload=json.dumps({"pid": os.getpid()}))
while True:
    time.sleep(1)
