"""A Lambda that calls AWS with boto3, unmodified, as user code does: no keys, no endpoint in the code.

The session and both clients are built at module import (in a pinned function, before the first event). Each
event `{"bucket", "key", "table"}` writes an S3 object and a DynamoDB item; the answer reports the access key
the session signed with, or `{"error": "<type>: <text>"}`. `aws_fresh` builds its clients per event.
"""

import json

import boto3

session = boto3.session.Session()
s3 = session.client("s3")
dynamodb = session.client("dynamodb")


def write(s3_client, dynamodb_client, event):
    body = json.dumps(event).encode()
    s3_client.put_object(Bucket=event["bucket"], Key=event["key"], Body=body)
    dynamodb_client.put_item(TableName=event["table"], Item={"id": {"S": event["key"]}, "body": {"S": body.decode()}})


def function_handler(event, context):
    try:
        write(s3, dynamodb, event)
        used = session.get_credentials().get_frozen_credentials().access_key
    except Exception as error:  # the report carries what boto3 raised, by type and text
        return {"error": f"{type(error).__name__}: {error}"}
    return {"access_key": used}
