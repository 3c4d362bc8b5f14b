"""A Lambda that drives the stream manager with greengrasssdk's own client (`greengrasssdk.stream_manager`).

The client connects at import, as user code does (with the worker's token from the environment). Invoked
(RequestResponse) with `{"op", ...}`; returns `{"result": ...}` or `{"error": "<exception type>", "message"}`.
"""

import base64

from greengrasssdk.stream_manager import (
    MessageStreamDefinition,
    Persistence,
    ReadMessagesOptions,
    StrategyOnFull,
    StreamManagerClient,
)

client = StreamManagerClient()


def _definition(event):
    return MessageStreamDefinition(
        name=event["name"],
        max_size=event.get("max_size"),
        stream_segment_size=event.get("segment_size"),
        strategy_on_full=StrategyOnFull[event.get("strategy", "RejectNewData")],
        persistence=Persistence[event.get("persistence", "File")],
    )


def _run(event):
    op = event["op"]
    if op == "create":
        return client.create_message_stream(_definition(event))
    if op == "update":
        return client.update_message_stream(_definition(event))
    if op == "append":
        return [client.append_message(event["name"], text.encode()) for text in event["texts"]]
    if op == "read":
        options = ReadMessagesOptions(
            desired_start_sequence_number=event.get("start", 0),
            min_message_count=event.get("min", 1),
            max_message_count=event.get("max", 1),
            read_timeout_millis=event.get("timeout_ms", 0),
        )
        return [[message.sequence_number, base64.b64encode(message.payload).decode()]
                for message in client.read_messages(event["name"], options)]
    if op == "list":
        return sorted(client.list_streams())
    if op == "describe":
        info = client.describe_message_stream(event["name"])
        status = info.storage_status
        return {"name": info.definition.name, "oldest": status.oldest_sequence_number,
                "newest": status.newest_sequence_number, "bytes": status.total_bytes}
    if op == "delete":
        return client.delete_message_stream(event["name"])
    raise ValueError("unknown op " + op)


def function_handler(event, context):
    try:
        return {"result": _run(event)}
    except Exception as error:  # the report carries what the SDK raised, by type and text
        return {"error": type(error).__name__, "message": str(error)}
