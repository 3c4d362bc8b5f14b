"""The device sensor mode's Lambda (`reading_to_shadow.handler.function_handler`), on demand.

In `SensorMode=device` the BME680 (or a replay) is read by a device process, as in the classic v1 demo; it
publishes each shadow update it wants on `rain/<thing>/sensor/reading` (a local topic). This Lambda writes
that update into the core thing's local shadow, unchanged (`{"state": {"reported": ...}, "clientToken"}`):
the shadow's outcome topics (documents to the inference Lambda; delta and rejected back to the device) go
where the group's subscriptions say.
"""

import json
import logging
import os

import greengrasssdk

log = logging.getLogger(__name__)
iot_data = greengrasssdk.client("iot-data")
THING_NAME = os.environ.get("THING_NAME") or os.environ.get("AWS_IOT_THING_NAME", "")


def function_handler(event, context):
    """Write one routed reading into the shadow; the answer says whether it was stored."""
    if not isinstance(event, dict) or not isinstance(event.get("state"), dict):
        log.warning("not a shadow update document: %r", event)
        return {"ok": False, "error": "expected {\"state\": {\"reported\": ...}}"}
    try:
        iot_data.update_thing_shadow(thingName=THING_NAME, payload=json.dumps(event))
    except Exception as error:  # the shadow's rejection also reaches the device on update/rejected
        log.error("shadow update for %s failed: %s", THING_NAME, error)
        return {"ok": False, "error": str(error)}
    return {"ok": True}
