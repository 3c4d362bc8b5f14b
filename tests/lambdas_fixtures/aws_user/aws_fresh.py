"""The same writes as `aws_user`, with the session and clients built per event (nothing at import)."""

import json

import boto3


def function_handler(event, context):
    try:
        session = boto3.session.Session()
        body = json.dumps(event)
        session.client("s3").put_object(Bucket=event["bucket"], Key=event["key"], Body=body.encode())
        session.client("dynamodb").put_item(TableName=event["table"],
                                            Item={"id": {"S": event["key"]}, "body": {"S": body}})
        used = session.get_credentials().get_frozen_credentials().access_key
    except Exception as error:  # the report carries what boto3 raised, by type and text
        return {"error": f"{type(error).__name__}: {error}"}
    return {"access_key": used}
