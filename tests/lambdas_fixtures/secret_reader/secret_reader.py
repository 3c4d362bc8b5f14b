"""A Lambda that reads one secret with greengrasssdk's public Secrets Manager client and reports the outcome.

Invoked (RequestResponse) with `{"secret_id", "stage"?}`; returns `{"value": {...}}` or `{"error": "<type>: <text>"}`.
"""

import greengrasssdk

secrets = greengrasssdk.client("secretsmanager")


def function_handler(event, context):
    request = {"SecretId": event["secret_id"]}
    if event.get("stage"):
        request["VersionStage"] = event["stage"]
    try:
        answer = secrets.get_secret_value(**request)
    except Exception as error:  # the report carries what the SDK raised, by type and text
        return {"error": f"{type(error).__name__}: {error}"}
    return {
        "value": {
            "ARN": answer["ARN"],
            "Name": answer["Name"],
            "SecretString": answer["SecretString"],
            "SecretBinary": answer["SecretBinary"],
            "VersionStages": answer["VersionStages"],
            "CreatedDate": type(answer["CreatedDate"]).__name__,
        }
    }
