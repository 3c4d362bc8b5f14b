"""The stream manager wire protocol: operation and status codes, the handshake byte, length-prefixed frames.

A frame is a signed big-endian int32 `L` (the payload's length plus one), one operation byte, then `L - 1`
bytes of CBOR: a map with camelCase keys, as `greengrasssdk.stream_manager` (protocol 1.1.0) writes it. The
connection opens with the client's connect-version byte (1) and a Connect frame; the server answers with
its own byte and a ConnectResponse frame. Nothing here touches a socket's policy (auth, limits on what
is accepted): `simcore.streams.server` decides that.
"""

from __future__ import annotations

import asyncio
import struct
from enum import IntEnum
from typing import Any

import cbor2

CONNECT_VERSION = 1
PROTOCOL_VERSION = "1.1.0"
SUPPORTED_PROTOCOL_VERSIONS = ("1.1.0", "1.0.0")
# The protocol's own ceiling on L (the SDK refuses to send more); the server's bound is lower (defaults).
PROTOCOL_MAX_FRAME = 1 << 30
_HEADER = struct.Struct(">iB")


class Op(IntEnum):
    """Operation codes (the SDK's `Operation`)."""

    Unknown = 0
    Connect = 1
    CreateMessageStream = 2
    DeleteMessageStream = 3
    AppendMessage = 4
    ReadMessages = 5
    ConnectResponse = 6
    CreateMessageStreamResponse = 7
    DeleteMessageStreamResponse = 8
    AppendMessageResponse = 9
    ReadMessagesResponse = 10
    ListStreams = 11
    ListStreamsResponse = 12
    DescribeMessageStream = 13
    DescribeMessageStreamResponse = 14
    UpdateMessageStream = 15
    UpdateMessageStreamResponse = 16
    UnknownOperationError = 17


class Status(IntEnum):
    """Response status codes (the SDK's `ResponseStatusCode`); each non-zero one is an exception there."""

    Success = 0
    UnknownFailure = 1
    Unauthorized = 2
    InvalidRequest = 3
    RequestPayloadTooLarge = 4
    ResourceNotFound = 5
    ServerTimeout = 6
    ResponsePayloadTooLarge = 7
    UnsupportedConnectVersion = 8
    UnexpectedOperation = 9
    UnsupportedProtocolVersion = 10
    InvalidProtocolVersion = 11
    FailedToConnect = 12
    NotEnoughMessages = 13
    MessageStoreReadError = 14
    OutOfMemoryError = 15
    UpdateFailed = 16
    UpdateNotAllowed = 17
    UnknownOperation = 18


# Each request's response operation; a request op missing here is answered with UnknownOperationError.
RESPONSE_OP = {
    Op.CreateMessageStream: Op.CreateMessageStreamResponse,
    Op.DeleteMessageStream: Op.DeleteMessageStreamResponse,
    Op.AppendMessage: Op.AppendMessageResponse,
    Op.ReadMessages: Op.ReadMessagesResponse,
    Op.ListStreams: Op.ListStreamsResponse,
    Op.DescribeMessageStream: Op.DescribeMessageStreamResponse,
    Op.UpdateMessageStream: Op.UpdateMessageStreamResponse,
}


class FrameTooLarge(Exception):
    """A frame longer than the server accepts; `prefix` holds its first bytes (to find the request id)."""

    def __init__(self, operation: int, length: int, prefix: bytes):
        super().__init__(f"frame of {length} bytes")
        self.operation, self.length, self.prefix = operation, length, prefix


def encode_frame(operation: int, body: dict[str, Any]) -> bytes:
    """One frame: length, operation byte, CBOR body."""
    payload = cbor2.dumps(body)
    return _HEADER.pack(len(payload) + 1, int(operation)) + payload


async def read_frame(reader: asyncio.StreamReader, max_frame: int) -> tuple[int, bytes]:
    """The next frame's operation and payload. FrameTooLarge (after discarding the payload) past `max_frame`;
    asyncio.IncompleteReadError at EOF; ValueError for a length below one."""
    length, operation = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    if length < 1:
        raise ValueError(f"frame length {length} is below 1")
    size = length - 1
    if length > max_frame:
        prefix = await reader.readexactly(min(size, 512))
        remaining = size - len(prefix)
        while remaining:  # discarded in bounded chunks: an oversized frame never sits in memory
            remaining -= len(await reader.readexactly(min(remaining, 1 << 16)))
        raise FrameTooLarge(operation, length, prefix)
    return operation, await reader.readexactly(size)


def peek_request_id(prefix: bytes) -> str | None:
    """The `requestId` of a CBOR map whose first bytes are `prefix`, when it lies there (the SDK writes it first).

    Enough CBOR for that one job: a map head, then text-string keys and values, stopping at anything else.
    """
    position = 0

    def head() -> tuple[int, int]:
        nonlocal position
        initial = prefix[position]
        position += 1
        major, info = initial >> 5, initial & 0x1F
        if info < 24:
            return major, info
        width = {24: 1, 25: 2, 26: 4, 27: 8}.get(info)
        if width is None:
            raise ValueError("indefinite length")
        value = int.from_bytes(prefix[position:position + width], "big")
        position += width
        return major, value

    def text() -> str:
        nonlocal position
        major, size = head()
        if major != 3 or position + size > len(prefix):
            raise ValueError("not a complete text string")
        value = prefix[position:position + size].decode("utf-8")
        position += size
        return value

    try:
        major, entries = head()
        if major != 5:
            return None
        for _ in range(entries):
            key = text()
            value = text()
            if key == "requestId":
                return value
    except (ValueError, IndexError, UnicodeDecodeError):
        return None
    return None
