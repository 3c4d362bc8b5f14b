"""The sensor loop end to end without a core: emulated chip or real records in, shadow reports out.

The shadow calls are injected functions (the handler binds them to greengrasssdk's `iot-data` client); here
they record what would be sent, and fail the way the SDK fails (its ShadowError message carries the code).
"""

from __future__ import annotations

import csv
import datetime
import importlib.util
import os

import pytest
from emulated_bme680 import EmulatedBME680Bus
from sensor_to_shadow import health as status
from sensor_to_shadow.app import SensorApp
from sensor_to_shadow.health import SensorHealth
from sensor_to_shadow.loop import BACKOFF_MAX_S, SensorLoop
from sensor_to_shadow.settings import load_settings, parse_source
from sensor_to_shadow.shadow_writer import ShadowWriter, shadow_error_code
from sensor_to_shadow.source_bme680 import Bme680Source
from sensor_to_shadow.source_replay import ReplaySource, weather_csv_path
from sensor_to_shadow.tendency import PressureHistory
from support.recorders import RecordingShadow

# greengrasssdk 1.6.1's IoTDataPlane._shadow_op formats a shadow error answer like this.
SDK_SHADOW_ERROR = 'Request for shadow state returned error code {} with message "{}"'


def shadow_error(code, message):
    return Exception(SDK_SHADOW_ERROR.format(code, message))


def test_the_sdk_still_formats_shadow_errors_as_the_writer_parses_them():
    spec = importlib.util.find_spec("greengrasssdk")
    with open(os.path.join(list(spec.submodule_search_locations)[0], "IoTDataPlane.py")) as handle:
        source = handle.read()
    assert "returned error code {} with message" in source
    assert shadow_error_code(shadow_error(409, "Version conflict")) == 409
    assert shadow_error_code(Exception("Failed to invoke function due to timeout")) is None


def make_loop(source, shadow=None, interval=60.0):
    shadow = shadow or RecordingShadow()
    health = SensorHealth()
    writer = ShadowWriter("rain-thing", shadow.update, shadow.get, health, sleep=lambda s: None)
    return SensorLoop(source, writer, health, interval), shadow


def chip(temperature=20.0, humidity=50.0, pressure=1013.0):
    bus = EmulatedBME680Bus()
    bus.set_environment(temperature, humidity, pressure)
    return bus, Bme680Source(1, open_bus=lambda number: bus, clock=iter(range(1000, 100000, 60)).__next__)


# --- hardware mode ---------------------------------------------------------------------------------
def test_a_reading_is_reported_with_seq_ts_and_no_tendency_yet():
    bus, source = chip(22.0, 40.0, 1001.0)
    loop, shadow = make_loop(source, interval=15.0)
    assert loop.step() == 15.0
    (reported,) = shadow.reported()
    assert reported["temperature"] == pytest.approx(22.0, abs=1.0)
    assert reported["humidity"] == pytest.approx(40.0, abs=3.0)
    assert reported["pressure"] == pytest.approx(1001.0, abs=1.0)
    assert reported["pressure_tendency_3h"] is None
    assert (reported["ts"], reported["seq"], reported["read_interval_s"]) == (1000, 1, 15.0)
    assert "observed_rain" not in reported
    assert reported["sensor"]["status"] == status.OK
    assert shadow.updates[0]["clientToken"] == "sensor-1"


def test_after_three_hours_of_readings_the_tendency_appears():
    bus, source = chip(pressure=1000.0)
    loop, shadow = make_loop(source)
    for _ in range(180):  # one reading a minute (the emulated clock) for three hours
        loop.step()
    bus.set_environment(20.0, 50.0, 1004.0)
    loop.step()
    last = shadow.reported()[-1]
    assert last["seq"] == 181
    assert last["pressure_tendency_3h"] == pytest.approx(4.0, abs=0.1)


def test_a_failing_bus_backs_off_reports_health_once_and_recovers(caplog):
    bus, source = chip()
    loop, shadow = make_loop(source, interval=30.0)
    bus.unplug()
    delays = [loop.step() for _ in range(12)]
    assert delays[:4] == [1.0, 2.0, 4.0, 8.0]
    assert max(delays) == BACKOFF_MAX_S
    assert loop.health.counts["errors"] == 12
    (health_report,) = shadow.reported()  # a status change is reported, not every failed retry
    assert health_report["sensor"]["status"] == status.ERROR
    assert "no BME680 on I2C bus 1" in health_report["sensor"]["last_error"]
    assert "temperature" not in health_report
    assert "sensor read failed (12 in a row)" in caplog.text
    bus.plug_in()
    assert loop.step() == 30.0
    recovered = shadow.reported()[-1]
    assert recovered["seq"] == 1 and recovered["sensor"]["status"] == status.OK
    assert recovered["sensor"]["errors"] == 12


def test_a_glitch_mid_read_is_retried_on_a_fresh_connection():
    bus, source = chip()
    loop, shadow = make_loop(source)
    loop.step()
    bus.fail_next(1)
    assert loop.step() == 1.0
    assert loop.step() == 60.0
    assert [r.get("seq") for r in shadow.reported() if "seq" in r] == [1, 2]


def test_an_out_of_range_reading_from_the_chip_is_never_written(caplog):
    bus, source = chip(temperature=90.0)  # beyond the BME680's 85 °C
    loop, shadow = make_loop(source)
    assert loop.step() == 60.0
    (report,) = shadow.reported()
    assert "temperature" not in report
    assert report["sensor"]["status"] == status.INVALID
    assert "outside the BME680 range" in report["sensor"]["last_error"]
    assert loop.health.counts["invalid_readings"] == 1
    assert "invalid reading from bme680@0x76: temperature" in caplog.text


# --- the shadow writer ------------------------------------------------------------------------------
def test_a_version_conflict_retries_after_a_fresh_get():
    shadow = RecordingShadow({"version": 7})
    shadow.failures = [shadow_error(409, "Version conflict")]
    writer = ShadowWriter("rain-thing", shadow.update, shadow.get, SensorHealth())
    assert writer.report({"seq": 1})
    assert shadow.gets == 1 and len(shadow.updates) == 1


def test_a_bad_request_is_not_retried_and_is_counted(caplog):
    shadow = RecordingShadow()
    shadow.failures = [shadow_error(413, "The payload exceeds the maximum size allowed")]
    health = SensorHealth()
    writer = ShadowWriter("rain-thing", shadow.update, shadow.get, health)
    assert not writer.report({"seq": 1})
    assert shadow.updates == [] and shadow.gets == 0
    assert health.counts["shadow_errors"] == 1
    assert "code 413" in caplog.text


def test_a_server_error_or_ipc_failure_is_retried_with_backoff():
    shadow = RecordingShadow()
    shadow.failures = [
        shadow_error(500, "Internal error"),
        Exception("Failed to invoke function due to [Errno 111]"),
    ]
    sleeps = []
    writer = ShadowWriter("rain-thing", shadow.update, shadow.get, SensorHealth(), sleep=sleeps.append)
    assert writer.report({"seq": 1})
    assert sleeps == [0.5, 1.0]
    assert len(shadow.updates) == 1


def test_the_writer_gives_up_after_its_attempts():
    shadow = RecordingShadow()
    shadow.failures = [shadow_error(503, "Unavailable")] * 3
    writer = ShadowWriter("rain-thing", shadow.update, shadow.get, SensorHealth(), sleep=lambda s: None)
    assert not writer.report({"seq": 1})
    assert shadow.updates == []


# --- replay mode -------------------------------------------------------------------------------------
def _training_tendencies(station):
    """Tendencies as training computes them: the station's whole record, in order, through one history."""
    history, tendencies = PressureHistory(), {}
    with open(weather_csv_path(), newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["origin"] == station]
    for row in sorted(rows, key=lambda row: row["time_hour"]):
        if row["pressure"] == "NA":
            continue
        ts = datetime.datetime.strptime(row["time_hour"], "%Y-%m-%dT%H:%M:%SZ")
        ts = ts.replace(tzinfo=datetime.timezone.utc).timestamp()  # noqa: UP017 (runs on 3.8 too)
        tendencies[ts] = history.add(ts, float(row["pressure"]))
    return tendencies


def run_replay(spec):
    loop, shadow = make_loop(ReplaySource(parse_source(spec), speed=3600.0))
    loop.resume_from_shadow()
    while loop.step() is not None:
        pass
    return loop, shadow


def test_replayed_tendencies_equal_training_from_the_first_record_on():
    loop, shadow = run_replay("replay:JFK:2013-06-01:2013-06-07")
    written = [r for r in shadow.reported() if "seq" in r]
    assert len(written) > 140
    expected = _training_tendencies("JFK")
    assert written[0]["pressure_tendency_3h"] is not None  # the pre-roll gave the first record its history
    for reported in written:
        assert reported["pressure_tendency_3h"] == pytest.approx(expected[reported["ts"]]), reported["ts"]
    assert {r["observed_rain"] for r in written} == {True, False}


def test_records_without_pressure_are_counted_and_skipped_and_the_end_is_reported():
    loop, shadow = run_replay("replay:EWR:2013-01-06:2013-01-06")
    written = [r for r in shadow.reported() if "seq" in r]
    invalid = loop.health.counts["invalid_readings"]
    assert invalid > 0
    assert len(written) + invalid == 24
    assert [r["seq"] for r in written] == list(range(1, len(written) + 1))
    assert shadow.reported()[-1]["sensor"]["status"] == status.FINISHED


def test_resume_continues_seq_and_applies_a_pending_desired_interval():
    shadow = RecordingShadow(
        {"state": {"reported": {"seq": 41}, "delta": {"read_interval_s": 5}}, "version": 3}
    )
    bus, source = chip()
    loop, _ = make_loop(source, shadow)
    loop.resume_from_shadow()
    assert loop.read_interval_s == 5.0
    assert shadow.reported() == [{"read_interval_s": 5.0}]  # reported back, so the delta clears
    assert loop.step() == 5.0
    assert shadow.reported()[-1]["seq"] == 42


# --- the app: environment, thread, routed messages -----------------------------------------------
def make_app(environ=None, shadow=None, bus=None):
    shadow = shadow or RecordingShadow()
    bus = bus or EmulatedBME680Bus()
    settings = load_settings(dict({"THING_NAME": "rain-thing", "READ_INTERVAL_S": "1"}, **(environ or {})))
    return SensorApp(settings, shadow.update, shadow.get, open_bus=lambda number: bus), shadow


def test_the_app_thread_reads_until_stopped():
    app, shadow = make_app()
    app.start()
    try:
        shadow.wait_for(2)
    finally:
        app.loop.stop()
        app.thread.join(10)
    assert not app.thread.is_alive()
    assert [r["seq"] for r in shadow.reported()[:2]] == [1, 2]


def test_a_delta_changes_the_interval_and_reports_it_back():
    app, shadow = make_app()
    answer = app.handle(
        {"version": 4, "state": {"read_interval_s": 120}}, "$aws/things/rain-thing/shadow/update/delta"
    )
    assert answer == {"ok": True, "applied": {"read_interval_s": 120.0}}
    assert app.loop.read_interval_s == 120.0
    assert shadow.reported() == [{"read_interval_s": 120.0}]


def test_a_delta_for_other_keys_is_acknowledged_without_a_write():
    app, shadow = make_app()
    answer = app.handle({"state": {"color": "red"}}, "$aws/things/rain-thing/shadow/update/delta")
    assert answer == {"ok": True, "applied": {}}
    assert shadow.updates == []


def test_a_rejection_is_logged_and_counted(caplog):
    app, shadow = make_app()
    answer = app.handle(
        {"code": 400, "message": "Missing required node: state", "clientToken": "sensor-3"},
        "$aws/things/rain-thing/shadow/update/rejected",
    )
    assert answer["ok"] is True and answer["rejection"]["code"] == 400
    assert app.health.counts["shadow_rejected"] == 1
    assert "shadow update rejected: code 400, Missing required node: state" in caplog.text


def test_someone_elses_409_makes_the_sensor_report_its_state_again():
    app, shadow = make_app()
    app.loop.step()
    before = len(shadow.updates)
    app.handle(
        {"code": 409, "message": "Version conflict", "clientToken": "cloud-1"},
        "$aws/things/rain-thing/shadow/update/rejected",
    )
    assert shadow.gets == 1
    assert len(shadow.updates) == before + 1
    assert shadow.reported()[-1] == app.loop.last_reported


@pytest.mark.parametrize(
    "environ, reason",
    [
        (
            {"SENSOR_SOURCE": "replay:EWR:someday:2013-01-01"},
            "SENSOR_SOURCE replay from date must be YYYY-MM-DD",
        ),
        ({"SENSOR_SOURCE": "replay:NOPE"}, "station 'NOPE' has no records"),
        ({"THING_NAME": ""}, "no thing name"),
    ],
)
def test_an_unusable_configuration_is_logged_and_reported_never_raised(environ, reason, caplog):
    app, shadow = make_app(environ)
    app.start()
    assert app.loop is None
    assert reason in app.config_error
    assert "sensor not started: " in caplog.text
    if app.thread is None:
        assert app.settings.thing_name is None
    else:
        app.thread.join(10)
        (report,) = shadow.reported()
        assert report["sensor"]["status"] == status.CONFIG_ERROR and reason in report["sensor"]["last_error"]
    answer = app.handle({"state": {"read_interval_s": 10}}, "$aws/things/rain-thing/shadow/update/delta")
    assert answer["ok"] is True


# --- an out-of-range desired value is answered once (issue 12, item 5) ------------------------------
DELTA = "$aws/things/rain-thing/shadow/update/delta"


def _delta(value, timestamp=1_700_000_000, version=5):
    return {"version": version, "state": {"read_interval_s": value},
            "metadata": {"read_interval_s": {"timestamp": timestamp}}}


def test_an_out_of_range_desired_interval_is_answered_once_with_what_was_kept_and_why():
    app, shadow = make_app({"READ_INTERVAL_S": "30"})
    first = app.handle(_delta(0.001), DELTA)
    assert first["ok"] is False and "between 1.0 and 86400.0" in first["error"]["message"]
    [answer] = shadow.reported()
    assert answer["read_interval_s"] == 30.0
    assert answer["read_interval_error"].startswith("read_interval_s must be between 1.0 and 86400.0")
    assert answer["read_interval_error"].endswith("keeping 30.0 s")
    # The same desired value comes back with every later change of the shadow: no more writes.
    for version in range(6, 16):
        again = app.handle(_delta(0.001, version=version), DELTA)
        assert again["ok"] is False and again["answered"] is False
    assert len(shadow.updates) == 1
    assert app.health.counts["bad_messages"] == 1
    assert app.loop.read_interval_s == 30.0


def test_a_new_refusal_is_answered_again_and_a_valid_value_clears_the_error():
    app, shadow = make_app({"READ_INTERVAL_S": "30"})
    app.handle(_delta(0.001), DELTA)
    app.handle(_delta(0.002), DELTA)  # another bad value
    app.handle(_delta(0.002, timestamp=1_700_000_100), DELTA)  # the same bad value, set again later
    assert len(shadow.updates) == 3
    answer = app.handle(_delta(45), DELTA)
    assert answer == {"ok": True, "applied": {"read_interval_s": 45.0}}
    assert shadow.reported()[-1] == {"read_interval_s": 45.0, "read_interval_error": None}
    app.handle(_delta(0.001), DELTA)  # after a valid value, an old bad value is news again
    assert len(shadow.updates) == 5


# --- a restart resumes the replay after the shadow's last reading (issue 12, item 7) ----------------
def test_a_restarted_replay_resumes_after_the_shadows_last_reading_with_seq_going_on():
    spec = "replay:JFK:2013-06-01:2013-06-03"
    _, whole = run_replay(spec)
    uninterrupted = [r for r in whole.reported() if "seq" in r]
    stop_at = uninterrupted[20]
    shadow = RecordingShadow({"state": {"reported": stop_at}, "version": 99})
    loop, _ = make_loop(ReplaySource(parse_source(spec), speed=3600.0), shadow)
    loop.resume_from_shadow()
    while loop.step() is not None:
        pass
    resumed = [r for r in shadow.reported() if "seq" in r]
    assert resumed[0]["ts"] == uninterrupted[21]["ts"]  # the next record, not the first one
    assert [r["ts"] for r in resumed] == [r["ts"] for r in uninterrupted[21:]]
    assert [r["seq"] for r in resumed] == list(range(stop_at["seq"] + 1, stop_at["seq"] + 1 + len(resumed)))
    # The pre-roll moved with the resume point: every tendency equals the uninterrupted run's.
    assert [r["pressure_tendency_3h"] for r in resumed] == [r["pressure_tendency_3h"] for r in uninterrupted[21:]]


@pytest.mark.parametrize("change", [
    {"sensor": {"status": status.FINISHED}},   # the last run ended: a new one starts over
    {"replay": "replay:LGA:2013-06-01:2013-06-03"},  # another replay's reading
])
def test_a_finished_or_different_replay_starts_from_its_first_record(change):
    spec = "replay:JFK:2013-06-01:2013-06-03"
    _, whole = run_replay(spec)
    last = dict([r for r in whole.reported() if "seq" in r][10], **change)
    shadow = RecordingShadow({"state": {"reported": last}, "version": 7})
    loop, _ = make_loop(ReplaySource(parse_source(spec), speed=3600.0), shadow)
    loop.resume_from_shadow()
    loop.step()
    assert shadow.reported()[-1]["ts"] == [r for r in whole.reported() if "seq" in r][0]["ts"]
    assert shadow.reported()[-1]["seq"] == last["seq"] + 1


def test_a_failed_get_at_start_is_retried_not_taken_for_an_empty_shadow():
    shadow = RecordingShadow({"state": {"reported": {"seq": 41}}, "version": 3})
    failures = [Exception("Failed to invoke function due to timeout")] * 2
    get = shadow.get

    def flaky_get(thing_name):
        if failures:
            raise failures.pop()
        return get(thing_name)

    health = SensorHealth()
    writer = ShadowWriter("rain-thing", shadow.update, flaky_get, health, sleep=lambda s: None)
    bus, source = chip()
    loop = SensorLoop(source, writer, health, 60.0)
    loop.resume_from_shadow()
    loop.step()
    assert shadow.reported()[-1]["seq"] == 42


# --- readings the shadow cannot store are kept and written later, oldest first (issue 12, item 8) -----
FULL_DISK = shadow_error(500, "Internal service failure")


def test_readings_the_shadow_cannot_store_are_kept_and_written_oldest_first_when_it_can_again():
    bus, source = chip()
    loop, shadow = make_loop(source)
    loop.step()  # seq 1 written
    shadow.failures = [FULL_DISK] * (3 * 3)  # three readings, three attempts each: the disk is full
    for _ in range(3):
        loop.step()
    assert [r["seq"] for r in shadow.reported()] == [1]
    assert [r["seq"] for r in loop.unwritten] == [2, 3, 4]
    assert loop.health.as_reported()["unwritten_readings"] == 3
    loop.step()  # space is back: the kept readings go first, in order, then the new one
    assert [r["seq"] for r in shadow.reported()] == [1, 2, 3, 4, 5]
    assert shadow.reported()[-1]["sensor"]["unwritten_readings"] == 0
    assert loop.health.counts["readings"] == 5


def test_the_unwritten_buffer_is_bounded_and_counts_what_it_pushes_out(monkeypatch, caplog):
    monkeypatch.setattr("sensor_to_shadow.loop.MAX_UNWRITTEN_READINGS", 2)
    bus, source = chip()
    loop, shadow = make_loop(source)
    shadow.failures = [FULL_DISK] * 100  # the disk stays full
    for _ in range(4):
        loop.step()
    assert [r["seq"] for r in loop.unwritten] == [3, 4]
    assert loop.health.counts["readings_dropped"] == 2
    assert "dropping the oldest (seq 2)" in caplog.text
    shadow.failures = []  # space is back: the full buffer is written before the new reading needs room
    loop.step()
    written = shadow.reported()
    assert [r["seq"] for r in written] == [3, 4, 5]
    assert written[-1]["sensor"]["readings_dropped"] == 2


def test_a_finished_replay_reports_the_end_only_once_every_reading_is_written():
    loop, shadow = make_loop(ReplaySource(parse_source("replay:JFK:2013-06-01:2013-06-01"), speed=3600.0))
    loop.resume_from_shadow()
    while loop.source.remaining() > 3:
        loop.step()
    shadow.failures = [FULL_DISK] * 100  # the disk fills for the last three records
    while loop.source.remaining():
        loop.step()
    assert loop.unwritten
    assert loop.step() == 5.0  # finished, but readings still wait: the end is not reported yet
    assert all(r.get("sensor", {}).get("status") != status.FINISHED for r in shadow.reported())
    shadow.failures = []
    assert loop.step() is None
    assert shadow.reported()[-2]["seq"] == loop.seq
    assert shadow.reported()[-1]["sensor"]["status"] == status.FINISHED
