"""Readings the core exported to S3 (the stream manager's hourly JSON-lines objects), as extra training rows.

`make model MODEL_ARGS="--from-s3 s3://<bucket>/readings/"` adds them to the training split. Each line is what
`rain_inference.archive` kept: the reading (°C, %RH, hPa, the 3-hour tendency the sensor computed), the
prediction, and `observed_rain`. A line without `observed_rain` (a real BME680 knows no rain) cannot label a
row and is dropped; a line whose station and hour the base data already holds (a replay of 2013 weather) is a
duplicate and is dropped too, so a replayed test period never leaks into training. Features come from the
Lambda's own `build_features`, as for the base data. Counts go to the model card (`training.exported`).
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterable, Iterator

import numpy as np
import pandas as pd
from rain_inference.features import FEATURE_NAMES, FeatureError, build_features

READING_FIELDS = ("temperature", "humidity", "pressure", "pressure_tendency_3h")


def s3_lines(uri: str, endpoint_url: str | None = None, client=None) -> Iterator[tuple[str, bytes]]:
    """(object key, line) for every line of every `.jsonl` object under an `s3://bucket/prefix` URI."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"--from-s3 takes s3://<bucket>/<prefix>, got {uri!r}")
    if client is None:
        import boto3

        client = boto3.client("s3", endpoint_url=endpoint_url)
    bucket, prefix = parsed.netloc, parsed.path.lstrip("/")
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if not item["Key"].endswith(".jsonl"):
                continue
            body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            for line in body.splitlines():
                if line.strip():
                    yield item["Key"], line


def exported_table(lines: Iterable[tuple[str, bytes]], known: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """The feature table (feature_table's columns) of the exported lines, and what was kept or dropped.

    `known` is the base feature table: rows of a (station, ts) it holds are duplicates.
    """
    base_hours = {(station, ts - ts % 3600) for station, ts in
                  zip(known["station"], known["ts"].astype(int), strict=True)}
    seen: set[tuple[str, int]] = set()  # exported rows already kept (an upload sent twice)
    counts = {"lines": 0, "kept": 0, "unlabelled": 0, "duplicates": 0, "unusable": 0}
    rows = []
    for _key, line in lines:
        counts["lines"] += 1
        try:
            record = json.loads(line)
            ts = int(float(record["ts"]))
            station = str(record.get("station") or record.get("thing") or "core")
        except (ValueError, KeyError, TypeError):
            counts["unusable"] += 1
            continue
        if not isinstance(record.get("observed_rain"), bool):
            counts["unlabelled"] += 1
            continue
        if (station, ts - ts % 3600) in base_hours or (station, ts) in seen:
            counts["duplicates"] += 1
            continue
        try:
            features = build_features({field: record.get(field) for field in READING_FIELDS})
        except FeatureError:
            counts["unusable"] += 1
            continue
        seen.add((station, ts))
        rows.append((station, pd.Timestamp(ts, unit="s", tz="UTC"), ts, *features,
                     np.int8(record["observed_rain"]), ""))
        counts["kept"] += 1
    table = pd.DataFrame(rows, columns=["station", "time_hour", "ts", *FEATURE_NAMES, "raining", "reason"])
    return table, counts
