"""The inference Lambda keeps each prediction with its reading and observed rain (READINGS_STREAM), and a
failing archive (the stream manager down) never stops a prediction: it is logged and counted.
Runs under Python 3.8 too (`make test`): the archive here is a recorder, the stream manager end to end is
tests/test_stream_manager_rain.py."""

from __future__ import annotations

import pytest
from rain_inference.app import InferenceApp
from rain_inference.settings import load_settings
from test_inference_app import DOCUMENTS, OUTPUT, WET, Recorder, documents, reading


class Archive:
    def __init__(self, fail=False):
        self.rows = []
        self.fail = fail

    def record(self, row):
        if self.fail:
            raise ConnectionRefusedError("[Errno 111] Connect call failed ('127.0.0.1', 8088)")
        self.rows.append(row)


def _app(model_dir, archive):
    recorder = Recorder()
    environ = {"THING_NAME": "rain-thing", "MODEL_DIR": str(model_dir), "READINGS_STREAM": "RainReadings"}
    app = InferenceApp.from_environment(environ, recorder.publish, recorder.update_shadow,
                                        archive_factory=lambda settings: archive)
    assert app.predictor.load()
    return app, recorder


def test_each_prediction_is_kept_with_its_reading_and_observed_rain(model_dir):
    archive = Archive()
    app, recorder = _app(model_dir, archive)
    app.handle(documents(None, reading(WET, 7, observed_rain=True)), DOCUMENTS)
    (output,) = recorder.on(OUTPUT)
    (row,) = archive.rows
    assert row == dict(WET, thing="rain-thing", ts=1357020000, seq=7, p_rain=output["p_rain"],
                       raining=output["raining"], threshold=output["threshold"],
                       model_version=output["model_version"], observed_rain=True)


def test_a_failing_archive_is_counted_and_the_prediction_stands(model_dir):
    app, recorder = _app(model_dir, Archive(fail=True))
    answer = app.handle(documents(None, reading(WET, 1)), DOCUMENTS)
    assert answer["ok"] is True and len(recorder.on(OUTPUT)) == 1
    metrics = app.metrics_message()
    assert metrics["counters"]["error.archive"] == 1 and metrics["last_error"].startswith("archive: ")


def test_without_readings_stream_nothing_is_kept_and_the_readings_folder_follows_the_port():
    assert load_settings({}).readings_stream is None
    settings = load_settings({"READINGS_STREAM": "RainReadings", "STREAM_MANAGER_SERVER_PORT": "9001"})
    assert settings.readings_dir.endswith("-9001") and settings.readings_bucket is None
    assert load_settings({"READINGS_STREAM": "bad/name"}).readings_stream is None


class _Blocking:
    """An archive whose record waits until released: a stream manager that is slow to answer."""

    def __init__(self, fail_seq=None):
        import threading

        self.release = threading.Event()
        self.rows = []
        self.fail_seq = fail_seq

    def record(self, row):
        self.release.wait()
        if row["seq"] == self.fail_seq:
            raise ConnectionRefusedError("[Errno 111] Connect call failed ('127.0.0.1', 8088)")
        self.rows.append(row)


def test_the_background_archive_never_waits_for_the_stream_manager_and_keeps_order():
    from rain_inference.archive import ArchiveFull, BackgroundArchive
    from support.waiting import wait_until

    slow = _Blocking(fail_seq=1)
    archive = BackgroundArchive(slow, max_waiting=3)
    archive.record({"seq": 0})
    # The thread took the first record and waits on the stream manager; record() returned all the same.
    wait_until(lambda: archive._waiting.qsize() == 0, 10, message="the archive thread to take the first record")
    for seq in (1, 2, 3):
        archive.record({"seq": seq})
    with pytest.raises(ArchiveFull, match="3 records already wait"):
        archive.record({"seq": 4})
    slow.release.set()
    archive.join()
    assert [row["seq"] for row in slow.rows] == [0, 2, 3]  # in order; seq 1's failure did not stop the rest
    assert archive.failures == 1
