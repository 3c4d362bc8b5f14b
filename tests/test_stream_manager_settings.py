"""GGStreamManager's environment variables: v1's defaults, each variable read, a bad value named in a
RuntimeConfigError, the port override for several cores on one host, and the bandwidth bucket's arithmetic."""

from __future__ import annotations

from pathlib import Path

import pytest

from simcore.errors import RuntimeConfigError
from simcore.streams.exporters import Throttle
from simcore.streams.settings import read_settings


def test_defaults_are_v1s():
    settings = read_settings({}, Path("/core"))
    assert (settings.port, settings.authenticate_client, settings.thread_pool_size, settings.min_part_size_bytes,
            settings.max_bandwidth_kbps) == (8088, True, 5, 5_242_880, None)
    assert settings.store_root == Path("/core/var/stream-manager")


def test_every_variable_is_read():
    settings = read_settings({
        "STREAM_MANAGER_STORE_ROOT_DIR": "/data/streams", "STREAM_MANAGER_SERVER_PORT": "9000",
        "STREAM_MANAGER_AUTHENTICATE_CLIENT": "false", "STREAM_MANAGER_EXPORTER_MAX_BANDWIDTH": "800",
        "STREAM_MANAGER_EXPORTER_THREAD_POOL_SIZE": "2",
        "STREAM_MANAGER_EXPORTER_S3_DESTINATION_MULTIPART_UPLOAD_MIN_PART_SIZE_BYTES": "10485760",
        "JVM_ARGS": "-Xmx64m"}, Path("/core"))
    assert (settings.store_root, settings.port, settings.authenticate_client, settings.max_bandwidth_kbps,
            settings.thread_pool_size, settings.min_part_size_bytes) == (
        Path("/data/streams"), 9000, False, 800, 2, 10_485_760)
    assert read_settings({"STREAM_MANAGER_SERVER_PORT": "9000"}, Path("/c"), port_override="0").port == 0


@pytest.mark.parametrize("name, value", [
    ("STREAM_MANAGER_STORE_ROOT_DIR", "relative/dir"),
    ("STREAM_MANAGER_SERVER_PORT", "eighty"),
    ("STREAM_MANAGER_SERVER_PORT", "70000"),
    ("STREAM_MANAGER_AUTHENTICATE_CLIENT", "yes"),
    ("STREAM_MANAGER_EXPORTER_THREAD_POOL_SIZE", "0"),
    ("STREAM_MANAGER_EXPORTER_S3_DESTINATION_MULTIPART_UPLOAD_MIN_PART_SIZE_BYTES", "1024"),
])
def test_a_bad_value_is_a_runtime_config_error_naming_the_variable(name, value):
    with pytest.raises(RuntimeConfigError) as refused:
        read_settings({name: value}, Path("/core"))
    assert name in refused.value.message and refused.value.location.endswith(name)


def test_the_bandwidth_bucket_spaces_sends_by_their_size():
    throttle = Throttle(8000)  # 8,000 kbit/s: 1,000,000 bytes/s
    throttle.consume(100_000)
    first_free = throttle._next_free
    throttle.consume(200_000)
    assert throttle._next_free - first_free == pytest.approx(0.2)
    unlimited = Throttle(None)
    unlimited.consume(10**9)
    assert unlimited.bytes_per_s is None


def test_a_port_already_taken_is_a_start_error_naming_the_variable(tmp_path):
    import socket

    from simcore.errors import StartError
    from simcore.streams.manager import StreamManager

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        manager = StreamManager(read_settings({"STREAM_MANAGER_SERVER_PORT": str(port)}, tmp_path), lambda _t: None)
        with pytest.raises(StartError) as refused:
            manager.start()
    assert f"127.0.0.1:{port}" in refused.value.message
    assert refused.value.location.endswith("STREAM_MANAGER_SERVER_PORT")
    manager.stop()  # nothing started: stopping is harmless
