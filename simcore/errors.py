"""Errors simcore raises: each is a value with a code, a message and where the bad input was.

They are raised once, where the problem is found, and turned into a protocol answer (IPC, MQTT, CLI exit
code) at the edge. Shadow errors carry AWS IoT's own numeric codes and messages.
"""

from __future__ import annotations


class SimcoreError(Exception):
    """Base of every error simcore reports to a person or a peer."""

    code: str | int = "SimcoreError"

    def __init__(self, message: str, *, code: str | int | None = None, location: str | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.location = location

    def __str__(self) -> str:
        where = f" (at {self.location})" if self.location else ""
        return f"{self.code}: {self.message}{where}"


class TemplateError(SimcoreError):
    """The CloudFormation template cannot be turned into a group; `location` is the path in the template."""

    code = "TemplateError"


class DeployError(SimcoreError):
    """A deployment could not be built (code, resource fetch or extraction)."""

    code = "DeployError"


class ShadowError(SimcoreError):
    """A shadow request was refused; `code` is AWS IoT's HTTP-like status (400, 404, 409, 413...)."""

    def __init__(self, code: int, message: str, client_token: str | None = None):
        super().__init__(message, code=code)
        self.client_token = client_token

    def to_document(self, timestamp: int) -> dict:
        """The JSON body AWS IoT publishes on `.../rejected` (and returns through GGShadowService)."""
        document: dict = {"code": self.code, "message": self.message, "timestamp": timestamp}
        if self.client_token is not None:
            document["clientToken"] = self.client_token
        return document


class RuntimeConfigError(SimcoreError):
    """The core cannot run a function as configured (isolation, interpreter, user)."""

    code = "RuntimeConfigError"


class RoutingError(SimcoreError):
    """A publish was refused; `status` is the HTTP status the IPC server answers with."""

    code = "RoutingError"

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


class QueueFullError(RoutingError):
    """The work queue has no room for an item (or, for AllOrError, for all of a publish's items)."""

    def __init__(self, message: str):
        super().__init__(message, status=429)
