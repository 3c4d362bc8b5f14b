"""A Lambda written only against greengrasssdk's public API: it exercises every call and reports what it saw.

Invoked (RequestResponse) with `{"thing", "echo_arn", "secret_id", "topic"}`; returns a JSON report.
"""

import json

import greengrasssdk
from greengrasssdk.IoTDataPlane import ShadowError

iot = greengrasssdk.client("iot-data")
lambda_client = greengrasssdk.client("lambda")
secrets = greengrasssdk.client("secretsmanager")


def _error_text(call):
    try:
        call()
    except Exception as error:  # the report records what the SDK raised, by type and text
        return f"{type(error).__name__}: {error}"
    return None


def function_handler(event, context):
    thing = event["thing"]
    report = {"my_arn": context.invoked_function_arn}

    iot.publish(topic=event["topic"], payload=json.dumps({"hello": "cloud"}))
    iot.publish(topic=event["topic"], payload=b"raw-bytes", queueFullPolicy="AllOrException")
    report["publish_wildcard_error"] = _error_text(lambda: iot.publish(topic="bad/+/topic", payload=b"x"))
    report["publish_too_big_error"] = _error_text(
        lambda: iot.publish(topic=event["topic"], payload=b"x" * (128 * 1024 + 1))
    )

    update = iot.update_thing_shadow(
        thingName=thing, payload=json.dumps({"state": {"reported": {"temperature": 21.5}}})
    )
    report["update"] = json.loads(update["payload"].decode())
    report["get"] = json.loads(iot.get_thing_shadow(thingName=thing)["payload"].decode())
    report["bad_update_error"] = _error_text(lambda: iot.update_thing_shadow(thingName=thing, payload=b"{not json"))
    report["delete"] = json.loads(iot.delete_thing_shadow(thingName=thing)["payload"].decode())
    try:
        iot.get_thing_shadow(thingName=thing)
        report["get_after_delete"] = "no error"
    except ShadowError as error:
        report["get_after_delete"] = str(error)

    answer = lambda_client.invoke(
        FunctionName=event["echo_arn"], InvocationType="RequestResponse", Payload=json.dumps({"question": 42})
    )
    report["invoke"] = {
        "FunctionError": answer["FunctionError"],
        "Payload": json.loads(answer["Payload"].read().decode()),
    }
    unqualified, _, qualifier = event["echo_arn"].rpartition(":")
    answer = lambda_client.invoke(FunctionName=unqualified, Qualifier=qualifier, Payload=json.dumps({"fail": True}))
    report["invoke_handled_error"] = {
        "FunctionError": answer["FunctionError"],
        "Payload": json.loads(answer["Payload"].decode()),
    }
    answer = lambda_client.invoke(
        FunctionName=event["echo_arn"],
        InvocationType="Event",
        Payload=json.dumps({"publish_to": event["topic"] + "/event"}),
    )
    report["invoke_event"] = {"FunctionError": answer["FunctionError"], "Payload": answer["Payload"].decode()}
    report["invoke_unknown_error"] = _error_text(
        lambda: lambda_client.invoke(
            FunctionName="arn:aws:lambda:us-east-1:123456789012:function:nobody:1", Payload=b"{}"
        )
    )

    secret = secrets.get_secret_value(SecretId=event["secret_id"])
    report["secret"] = {
        "Name": secret["Name"],
        "SecretString": secret["SecretString"],
        "CreatedDate": type(secret["CreatedDate"]).__name__,
    }
    report["secret_missing_error"] = _error_text(lambda: secrets.get_secret_value(SecretId="no-such-secret"))
    return report
