"""The stream manager's error: a protocol status code with a message, answered to the client as is."""

from __future__ import annotations

from simcore.errors import SimcoreError
from simcore.streams.frames import Status


class StreamError(SimcoreError):
    """A request the stream manager refuses or cannot serve; `status` is the response's status code."""

    code = "StreamManagerError"

    def __init__(self, status: Status, message: str, *, location: str | None = None):
        super().__init__(message, code=status.name, location=location)
        self.status = status
