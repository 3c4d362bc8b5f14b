"""The stream manager protocol against both SDK clients, unmodified, from a local process (authentication off):
greengrasssdk 1.6.1's `greengrasssdk.stream_manager` and PyPI's `stream-manager`. Every operation, every status
code the server answers, and what no SDK sends (raw frames: a bad handshake, an unknown operation, an
oversized request, a definition the SDK would have refused)."""

from __future__ import annotations

import socket
import struct
import threading

import cbor2
import pytest
from support.stream_manager import SDK_PACKAGES, local_stream_manager, sdk
from support.waiting import wait_until

from simcore.streams.frames import Op, Status


@pytest.fixture(scope="module")
def manager(tmp_path_factory):
    with local_stream_manager(tmp_path_factory.mktemp("sm-protocol")) as running:
        yield running


@pytest.fixture(params=SDK_PACKAGES)
def sm(request):
    return sdk(request.param)


@pytest.fixture
def client(sm, manager):
    with sm.StreamManagerClient(port=manager.port) as connected:
        connected.manager = manager
        yield connected


def _waiting(client):
    """The streams the server has reads waiting on (the test's view of the server, not the client's)."""
    return list(client.manager.server.waiters._waiting.items())


def REJECT(sm):  # noqa: N802 (reads as the constant it stands for)
    return sm.StrategyOnFull.RejectNewData


def _name(sm, suffix: str) -> str:
    return f"{sm.__name__.replace('.', '-')}-{suffix}"


def test_every_operation_round_trips(sm, client):
    name = _name(sm, "ops")
    definition = sm.MessageStreamDefinition(name=name, max_size=1 << 20, stream_segment_size=4096,
                                            strategy_on_full=sm.StrategyOnFull.OverwriteOldestData,
                                            persistence=sm.Persistence.File, flush_on_write=True)
    client.create_message_stream(definition)
    assert name in client.list_streams()
    assert [client.append_message(name, f"m{i}".encode()) for i in range(4)] == [0, 1, 2, 3]
    messages = client.read_messages(name, sm.ReadMessagesOptions(desired_start_sequence_number=1,
                                                                 min_message_count=2, max_message_count=2))
    assert [(m.stream_name, m.sequence_number, m.payload) for m in messages] == [(name, 1, b"m1"), (name, 2, b"m2")]
    assert all(m.ingest_time > 1_600_000_000_000 for m in messages)
    assert [m.payload for m in client.read_messages(name)] == [b"m0"]  # defaults: from 0, one message
    info = client.describe_message_stream(name)
    assert info.definition.name == name and info.definition.stream_segment_size == 4096
    assert info.definition.flush_on_write is True
    assert (info.storage_status.oldest_sequence_number, info.storage_status.newest_sequence_number) == (0, 3)
    assert info.storage_status.total_bytes > 0
    definition.strategy_on_full = sm.StrategyOnFull.RejectNewData
    definition.time_to_live_millis = 3_600_000
    client.update_message_stream(definition)
    updated = client.describe_message_stream(name).definition
    assert updated.strategy_on_full == sm.StrategyOnFull.RejectNewData and updated.time_to_live_millis == 3_600_000
    assert client.append_message(name, b"after update") == 4  # messages survive an update
    client.delete_message_stream(name)
    assert name not in client.list_streams()


def test_read_waits_for_the_minimum_until_its_timeout(sm, client, manager):
    name = _name(sm, "wait")
    client.create_message_stream(sm.MessageStreamDefinition(name=name, strategy_on_full=REJECT(sm)))
    appended = threading.Event()

    def append_later() -> None:
        with sm.StreamManagerClient(port=manager.port) as other:
            appended.wait(10)
            other.append_message(name, b"one")
            other.append_message(name, b"two")

    threading.Thread(target=append_later, daemon=True).start()
    options = sm.ReadMessagesOptions(min_message_count=2, max_message_count=10, read_timeout_millis=20_000)
    result: list = []
    reader = threading.Thread(target=lambda: result.extend(client.read_messages(name, options)))
    reader.start()
    appended.set()
    reader.join(30)
    assert [m.payload for m in result] == [b"one", b"two"]
    with pytest.raises(sm.NotEnoughMessagesException):
        client.read_messages(name, sm.ReadMessagesOptions(desired_start_sequence_number=2, read_timeout_millis=100))


def test_each_refusal_is_the_sdk_exception_for_its_status(sm, client):
    name = _name(sm, "errors")
    with pytest.raises(sm.ResourceNotFoundException):
        client.describe_message_stream(name)
    with pytest.raises(sm.ResourceNotFoundException):
        client.append_message(name, b"x")
    with pytest.raises(sm.ResourceNotFoundException):
        client.update_message_stream(sm.MessageStreamDefinition(name=name, strategy_on_full=REJECT(sm)))
    client.create_message_stream(sm.MessageStreamDefinition(name=name, max_size=1024, stream_segment_size=1024,
                                                            strategy_on_full=sm.StrategyOnFull.RejectNewData))
    with pytest.raises(sm.InvalidRequestException, match="already exists"):
        client.create_message_stream(sm.MessageStreamDefinition(name=name, strategy_on_full=REJECT(sm)))
    with pytest.raises(sm.NotEnoughMessagesException):
        client.read_messages(name)
    with pytest.raises(sm.UpdateNotAllowedException):
        client.update_message_stream(sm.MessageStreamDefinition(name=name, strategy_on_full=REJECT(sm),
                                                                persistence=sm.Persistence.Memory))
    client.append_message(name, b"x" * 900)
    with pytest.raises(sm.InvalidRequestException, match="full"):
        client.append_message(name, b"y" * 200)


def test_overwrite_oldest_data_under_pressure_keeps_the_newest_and_reads_from_the_oldest(sm, client):
    name = _name(sm, "pressure")
    client.create_message_stream(sm.MessageStreamDefinition(
        name=name, max_size=8192, stream_segment_size=1024, strategy_on_full=sm.StrategyOnFull.OverwriteOldestData,
        persistence=sm.Persistence.Memory))
    numbers = [client.append_message(name, bytes([i % 256]) * 200) for i in range(200)]
    assert numbers == list(range(200))
    status = client.describe_message_stream(name).storage_status
    assert status.newest_sequence_number == 199 and status.oldest_sequence_number > 150
    assert status.total_bytes <= 8192
    oldest = client.read_messages(name, sm.ReadMessagesOptions(desired_start_sequence_number=0, max_message_count=1))
    assert oldest[0].sequence_number == status.oldest_sequence_number
    everything = client.read_messages(name, sm.ReadMessagesOptions(max_message_count=1000))
    assert [m.sequence_number for m in everything] == list(range(status.oldest_sequence_number, 200))


# -- raw frames: what the SDK never sends ------------------------------------------------------------


def _frame(op: int, body: dict) -> bytes:
    payload = cbor2.dumps(body)
    return struct.pack(">iB", len(payload) + 1, op) + payload


def _read_frame(sock: socket.socket) -> tuple[int, dict]:
    header = _exactly(sock, 5)
    length, op = struct.unpack(">iB", header)
    return op, cbor2.loads(_exactly(sock, length - 1))


def _exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _connected(manager) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", manager.port), timeout=10)
    sock.sendall(b"\x01" + _frame(Op.Connect, {"requestId": "c", "protocolVersion": "1.1.0"}))
    assert _exactly(sock, 1) == b"\x01"
    op, response = _read_frame(sock)
    assert op == Op.ConnectResponse and response["status"] == Status.Success
    assert response["protocolVersion"] == "1.1.0" and response["clientIdentifier"]
    return sock


def test_a_wrong_connect_version_is_answered_and_closed(manager):
    with socket.create_connection(("127.0.0.1", manager.port), timeout=10) as sock:
        sock.sendall(b"\x02" + _frame(Op.Connect, {"requestId": "c", "protocolVersion": "1.1.0"}))
        assert _exactly(sock, 1) == b"\x01"
        op, response = _read_frame(sock)
        assert op == Op.ConnectResponse and response["status"] == Status.UnsupportedConnectVersion
        assert sock.recv(1) == b""


def test_an_unknown_operation_gets_unknown_operation_error(manager, sm):
    with _connected(manager) as sock:
        sock.sendall(_frame(99, {"requestId": "u1"}))
        op, response = _read_frame(sock)
    assert op == Op.UnknownOperationError and response == {
        "requestId": "u1", "status": Status.UnknownOperation, "errorMessage": response["errorMessage"]}


def test_a_request_over_the_frame_limit_gets_request_payload_too_large_and_the_connection_goes_on(manager):
    limit = manager.server.limits.max_frame_bytes
    with _connected(manager) as sock:
        sock.sendall(_frame(Op.AppendMessage, {"requestId": "big", "name": "x", "payload": b"z" * (limit + 10)}))
        op, response = _read_frame(sock)
        assert (op, response["requestId"], response["status"]) == (
            Op.AppendMessageResponse, "big", Status.RequestPayloadTooLarge)
        sock.sendall(_frame(Op.ListStreams, {"requestId": "after"}))
        op, response = _read_frame(sock)
        assert (op, response["requestId"], response["status"]) == (Op.ListStreamsResponse, "after", Status.Success)


@pytest.mark.parametrize("definition, field", [
    ({"name": "bad/name", "strategyOnFull": 0}, "name"),
    ({"name": "ok"}, "strategyOnFull"),
    ({"name": "ok", "strategyOnFull": 0, "maxSize": 10}, "maxSize"),
    ({"name": "ok", "strategyOnFull": 0, "timeToLiveMillis": 5}, "timeToLiveMillis"),
    ({"name": "ok", "strategyOnFull": 0, "exportDefinition": {"kinesis": [{"identifier": "k"}]}}, "kinesisStreamName"),
    ({"name": "ok", "strategyOnFull": 0, "exportDefinition": {"kinesis": [
        {"identifier": "k", "kinesisStreamName": "s", "batchSize": 501}]}}, "batchSize"),
    ({"name": "ok", "strategyOnFull": 0, "exportDefinition": {"s3TaskExecutor": [
        {"identifier": "s", "sizeThresholdForMultipartUploadBytes": 1024}]}}, "sizeThresholdForMultipartUploadBytes"),
])
def test_a_definition_the_sdk_would_refuse_is_refused_by_the_server_too(manager, definition, field):
    with _connected(manager) as sock:
        sock.sendall(_frame(Op.CreateMessageStream, {"requestId": "d", "definition": definition}))
        op, response = _read_frame(sock)
    assert op == Op.CreateMessageStreamResponse and response["status"] == Status.InvalidRequest
    assert field in response["errorMessage"]


def test_one_connection_answers_out_of_order_a_waiting_read_does_not_hold_up_an_append(sm, client):
    name = _name(sm, "order")
    client.create_message_stream(sm.MessageStreamDefinition(name=name, strategy_on_full=REJECT(sm)))
    result: list = []
    reader = threading.Thread(target=lambda: result.extend(client.read_messages(name, sm.ReadMessagesOptions(
        min_message_count=1, read_timeout_millis=30_000))))
    reader.start()
    wait_until(lambda: name in {n for n, futures in _waiting(client) if futures}, 10,
               message="the read to wait on the server")
    assert client.append_message(name, b"answered first") == 0  # the same connection, while the read waits
    reader.join(30)
    assert [m.payload for m in result] == [b"answered first"]
