"""The inference Lambda's entry point (`rain_inference.handler.function_handler`), kept thin.

The core imports this module once, at start (a pinned function): that import creates the SDK clients, loads
the model from MODEL_DIR and starts the metrics thread. Every SDK call lives here: iot-data's publish and
update_thing_shadow, and the Lambda client's invoke that hands low-confidence samples to the ML Feedback
connector (as greengrass_machine_learning_sdk's feedback client does; see rain_inference.feedback), and, when
READINGS_STREAM is set, greengrasssdk's stream manager client (rain_inference.archive).
The handler receives shadow documents, commands and local inference requests, told apart by
`context.client_context.custom['subject']`.
"""

import logging
import os

import greengrasssdk

from rain_inference.app import InferenceApp

log = logging.getLogger(__name__)
iot_data = greengrasssdk.client("iot-data")
lambda_client = greengrasssdk.client("lambda")


def _publish(topic, payload):
    return iot_data.publish(topic=topic, payload=payload)


def _update_shadow(thing_name, payload):
    return iot_data.update_thing_shadow(thingName=thing_name, payload=payload)


def _invoke(function_arn, client_context, payload):
    # RequestResponse, as the ML SDK's feedback client: the answer says whether the connector took the sample.
    return lambda_client.invoke(FunctionName=function_arn, InvocationType="RequestResponse",
                                ClientContext=client_context, Payload=payload)


def _archive(settings):
    # Imported only when the group keeps readings: greengrasssdk.stream_manager loads asyncio and cbor2.
    from greengrasssdk import stream_manager

    from rain_inference.archive import BackgroundArchive, ReadingArchive

    return BackgroundArchive(ReadingArchive(stream_manager, settings.readings_stream, settings.thing_name or "core",
                                            settings.readings_dir, settings.readings_bucket,
                                            settings.readings_prefix))


app = InferenceApp.from_environment(os.environ, _publish, _update_shadow, _invoke, archive_factory=_archive)
app.start()


def _subject(context):
    client_context = getattr(context, "client_context", None)
    custom = getattr(client_context, "custom", None) or {}
    return custom.get("subject") if isinstance(custom, dict) else None


def function_handler(event, context):
    """Handle a documents message, a command, or a local inference request."""
    return app.handle(event, _subject(context))
