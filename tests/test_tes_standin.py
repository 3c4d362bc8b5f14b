"""The stand-in cloud's local AWS end to end: `start_cloud` runs moto and a mutual-TLS credentials provider and
writes a config.json naming them; a core built from that config.json hands its Lambdas credentials from that
provider and AWS_ENDPOINT_URL for that moto server, and the Lambda's unmodified boto3 writes there."""

from __future__ import annotations

import json

import boto3
from lambdas_fixtures.harness import PY38
from support.aws_lambdas import PINNED, aws_group, invoke

from simcore.cloud.standin import start_cloud
from simcore.core.assemble import Core
from simcore.core.credential_sources import IotCredentialsProvider
from simcore.core_config import read_core_config
from simcore.service.running import credential_source_for
from simcore.shadow.service import open_shadow_service

# The stand-in's moto shares this process's moto backends with the session's server: names of its own.
BUCKET = TABLE = "tes-standin"


def test_a_core_linked_to_the_stand_in_gets_credentials_and_the_local_aws(tmp_path):
    with start_cloud(tmp_path / "cloud", 0, shadow_service=open_shadow_service(), thing_name="test-core") as cloud:
        config = read_core_config(cloud.config_path)
        thing = config.core_thing
        assert thing.credentials_endpoint == cloud.credentials.endpoint
        assert thing.role_alias == "test-core-GroupRoleAlias"
        assert thing.local_aws_endpoint == cloud.local_aws.endpoint
        where = json.loads((cloud.state_dir / "cloud.json").read_text())
        assert where["aws_endpoint"] == cloud.local_aws.endpoint

        source, warning = credential_source_for(config, None)
        assert isinstance(source, IotCredentialsProvider) and warning is None
        aws = {"endpoint_url": cloud.local_aws.endpoint, "region_name": "us-east-1",
               "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        boto3.client("s3", **aws).create_bucket(Bucket=BUCKET)
        boto3.client("dynamodb", **aws).create_table(
            TableName=TABLE, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
        interpreters = {"python3.8": str(PY38)} if PY38.exists() else {}
        with Core(aws_group(), runtime_root=tmp_path / "ggc", interpreters=interpreters, credential_source=source,
                  aws_endpoint_url=thing.local_aws_endpoint) as core:
            report = invoke(core, PINNED, "via-stand-in", bucket=BUCKET, table=TABLE)
        assert report["access_key"] in cloud.credentials.issued.access_key_ids
        stored = boto3.client("s3", **aws).get_object(Bucket=BUCKET, Key="via-stand-in")["Body"].read()
        assert json.loads(stored)["key"] == "via-stand-in"
