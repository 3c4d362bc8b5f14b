"""The inference Lambda's entry point (`rain_inference.handler.function_handler`), kept thin.

The core imports this module once, at start (a pinned function): that import creates the SDK client, loads
the model from MODEL_DIR and starts the metrics thread. The handler receives shadow documents, commands and
local inference requests, told apart by `context.client_context.custom['subject']`.
"""

import logging
import os

import greengrasssdk

from rain_inference.app import InferenceApp

log = logging.getLogger(__name__)
iot_data = greengrasssdk.client("iot-data")


def _publish(topic, payload):
    return iot_data.publish(topic=topic, payload=payload)


def _update_shadow(thing_name, payload):
    return iot_data.update_thing_shadow(thingName=thing_name, payload=payload)


app = InferenceApp.from_environment(os.environ, _publish, _update_shadow)
app.start()


def _subject(context):
    client_context = getattr(context, "client_context", None)
    custom = getattr(client_context, "custom", None) or {}
    return custom.get("subject") if isinstance(custom, dict) else None


def function_handler(event, context):
    """Handle a documents message, a command, or a local inference request."""
    return app.handle(event, _subject(context))
