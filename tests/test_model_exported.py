"""`make model --from-s3`: the readings a core exported to S3 (moto, server mode) become training rows through
the Lambda's own features; unlabelled lines and duplicates of the base data (a replay) are dropped and counted."""

from __future__ import annotations

import json
import sys

import boto3
import pandas as pd
import pytest
from conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "resources" / "rain_model"))
import exported  # noqa: E402
import train  # noqa: E402


def _line(ts: int, **fields) -> bytes:
    record = {"ts": ts, "thing": "RainEdgeCore", "temperature": 4.0, "humidity": 95.0, "pressure": 1004.0,
              "pressure_tendency_3h": -2.5, "p_rain": 0.8, "observed_rain": True, **fields}
    return json.dumps(record).encode()


@pytest.fixture
def bucket(moto_env):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="exported-readings")
    hour = 1_780_000_000 - 1_780_000_000 % 3600  # 2026: not in the 2013 base data
    s3.put_object(Bucket="exported-readings", Key="readings/RainEdgeCore/2026/05/28/20.jsonl", Body=b"\n".join([
        _line(hour), _line(hour + 1800, observed_rain=False), _line(hour + 60, observed_rain=None)]))
    s3.put_object(Bucket="exported-readings", Key="readings/RainEdgeCore/2026/05/28/21.jsonl",
                  Body=_line(hour + 3600, pressure=None) + b"\n" + b"not json\n")
    s3.put_object(Bucket="exported-readings", Key="readings/JFK/2013/11/01/00.jsonl",
                  Body=_line(1_383_264_000, thing="JFK"))
    s3.put_object(Bucket="exported-readings", Key="other/notes.txt", Body=b"ignored")
    return hour


def test_exported_readings_become_labelled_training_rows_and_duplicates_are_dropped(bucket):
    known = pd.DataFrame({"station": ["JFK"], "ts": [1_383_264_000]})
    table, counts = exported.exported_table(exported.s3_lines("s3://exported-readings/readings/"), known)
    assert counts == {"lines": 6, "kept": 2, "unlabelled": 1, "duplicates": 1, "unusable": 2}
    assert list(table["raining"]) == [1, 0] and list(table["ts"]) == [bucket, bucket + 1800]
    assert list(table.columns) == ["station", "time_hour", "ts", *train.FEATURE_NAMES, "raining", "reason"]
    assert not table[list(train.FEATURE_NAMES)].isna().any().any()


def test_from_s3_takes_only_s3_uris():
    with pytest.raises(ValueError, match="s3://"):
        list(exported.s3_lines("/tmp/readings"))
