"""The sensor Lambda's entry point (`sensor_to_shadow.handler.function_handler`), kept thin.

The core imports this module once, at start (a pinned function): that import creates the SDK client and
starts the reading thread. The handler receives what the group routes here: `$aws/things/<thing>/shadow/
update/delta` and `.../update/rejected`, told apart by `context.client_context.custom['subject']`.
"""

import logging
import os

import greengrasssdk

from sensor_to_shadow.app import SensorApp

log = logging.getLogger(__name__)
iot_data = greengrasssdk.client("iot-data")


def _update_shadow(thing_name, payload):
    return iot_data.update_thing_shadow(thingName=thing_name, payload=payload)


def _get_shadow(thing_name):
    return iot_data.get_thing_shadow(thingName=thing_name)


app = SensorApp.from_environment(os.environ, _update_shadow, _get_shadow)
app.start()


def _subject(context):
    client_context = getattr(context, "client_context", None)
    custom = getattr(client_context, "custom", None) or {}
    return custom.get("subject") if isinstance(custom, dict) else None


def function_handler(event, context):
    """Handle a shadow delta or rejection routed to this function."""
    return app.handle(event, _subject(context))
