"""The inference Lambda's reading archive (rain_inference.archive) against simcore's stream manager, with
greengrasssdk's own client: each record lands in the readings stream, each finished hour lands in S3 (moto,
server mode) as one JSON-lines object, and a file is deleted once the status stream reports its upload."""

from __future__ import annotations

import json
import time

import boto3
from greengrasssdk import stream_manager
from rain_inference.archive import ReadingArchive
from support.stream_manager import local_stream_manager
from support.waiting import wait_until

HOUR = 1_385_884_800  # 2013-12-01T08:00:00Z


def _row(ts: float, seq: int) -> dict:
    return {"ts": ts, "seq": seq, "temperature": 7.5, "humidity": 80.0, "pressure": 1012.0,
            "pressure_tendency_3h": -1.2, "p_rain": 0.7, "raining": True, "threshold": 0.5,
            "model_version": "test", "thing": "JFK", "observed_rain": seq % 2 == 0}


def _objects(bucket: str) -> dict:
    s3 = boto3.client("s3")
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {item["Key"]: s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read() for item in listed}


def test_readings_reach_the_stream_and_s3_in_hourly_objects(tmp_path, moto_env):
    boto3.client("s3").create_bucket(Bucket="rain-readings-test")
    with local_stream_manager(tmp_path / "streams") as manager:
        archive = ReadingArchive(stream_manager, "RainReadings", "JFK", str(tmp_path / "readings"),
                                 "rain-readings-test",
                                 client_factory=lambda: stream_manager.StreamManagerClient(port=manager.port))
        for seq in range(3):
            archive.record(_row(HOUR + 600 * seq, seq))
        archive.record(_row(HOUR + 3600, 3))  # the next hour: the first one is handed over
        key = "readings/JFK/2013/12/01/08.jsonl"
        objects = wait_until(lambda: _objects("rain-readings-test").get(key), 30, message="the 08:00 object")
        assert [json.loads(line)["seq"] for line in objects.decode().splitlines()] == [0, 1, 2]
        with stream_manager.StreamManagerClient(port=manager.port) as client:
            kept = client.read_messages("RainReadings", stream_manager.ReadMessagesOptions(max_message_count=10))
        assert [json.loads(message.payload)["seq"] for message in kept] == [0, 1, 2, 3]
        assert json.loads(kept[0].payload)["observed_rain"] is True
        first = tmp_path / "readings" / "JFK-2013120108.jsonl"
        wait_until(lambda: manager.engine.status()["RainReadingsUploads/RainReadingsUploadsS3"]
                   ["exportedMessagesCount"] == 1, 30, message="the upload's status")
        archive.record(_row(HOUR + 7200, 4))  # reads the Success status: the uploaded file goes
        assert not first.exists() and (tmp_path / "readings" / "JFK-2013120110.jsonl").exists()
        wait_until(lambda: "readings/JFK/2013/12/01/09.jsonl" in _objects("rain-readings-test"), 30,
                   message="the 09:00 object")
        assert archive.records == 5 and archive.handed_over == 2


def test_a_restart_hands_over_the_files_it_left_and_creating_streams_again_is_harmless(tmp_path, moto_env):
    boto3.client("s3").create_bucket(Bucket="rain-readings-restart")
    with local_stream_manager(tmp_path / "streams") as manager:
        def factory():
            return stream_manager.StreamManagerClient(port=manager.port)

        before = ReadingArchive(stream_manager, "Kept", "LGA", str(tmp_path / "r"), "rain-readings-restart",
                                client_factory=factory)
        before.record(_row(HOUR, 0))
        after = ReadingArchive(stream_manager, "Kept", "LGA", str(tmp_path / "r"), "rain-readings-restart",
                               client_factory=factory)
        after.record(_row(HOUR + 3600 + time.time() % 1, 1))
        wait_until(lambda: "readings/LGA/2013/12/01/08.jsonl" in _objects("rain-readings-restart"), 30,
                   message="the left-over hour uploaded after the restart")


def test_each_finished_hour_is_handed_over_once_even_before_its_upload_is_reported(tmp_path, moto_env):
    boto3.client("s3").create_bucket(Bucket="rain-readings-once")
    with local_stream_manager(tmp_path / "streams") as manager:
        archive = ReadingArchive(stream_manager, "Once", "EWR", str(tmp_path / "readings"), "rain-readings-once",
                                 client_factory=lambda: stream_manager.StreamManagerClient(port=manager.port))
        # Three hours in a row, with no wait for an upload: 08 is still waiting (not yet reported) when 10 comes.
        for seq, offset in enumerate((0, 3600, 7200)):
            archive.record(_row(HOUR + offset, seq))
        assert archive.handed_over == 2
        keys = {"readings/EWR/2013/12/01/08.jsonl", "readings/EWR/2013/12/01/09.jsonl"}
        wait_until(lambda: keys <= set(_objects("rain-readings-once")), 30, message="the 08:00 and 09:00 objects")
        with stream_manager.StreamManagerClient(port=manager.port) as client:
            statuses = [stream_manager.Util.deserialize_json_bytes_to_obj(message.payload,
                                                                         stream_manager.StatusMessage)
                        for message in client.read_messages("OnceStatus",
                                                            stream_manager.ReadMessagesOptions(max_message_count=20))]
        assert [status.status for status in statuses].count(stream_manager.Status.Success) == 2
        assert stream_manager.Status.Failure not in [status.status for status in statuses]
