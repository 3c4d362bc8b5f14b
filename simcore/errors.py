"""Errors simcore raises: one tree under `SimcoreError`, each error a value with a code, a message and where.

An error is raised once, where the problem is found, with a message that says what is wrong and how to fix
it. It becomes an answer only at an edge, each in one place, by the class's mapping attributes:

- `http_status`: the IPC server's HTTP status and reason (`simcore.core.ipc.http`) and the control
  endpoint's answer (`simcore.service.control`);
- `exit_code`: the CLI's (`simcore.cli.main`), which prints `simcore: <message> (at <location>)`;
- an MQTT answer (a shadow's `.../rejected`) is `to_document()`: its numeric `code` is `http_status`, as AWS
  IoT publishes it; the string `code` names the error for logs and the control endpoint.

Defined here: the base, the two broad kinds (`InputError`: what simcore was given is wrong; `StartError`:
a part could not start) and the errors several parts share (`TemplateError`, `DeployError`,
`RuntimeConfigError`, `ShadowError`, `RoutingError`, `QueueFullError`). Errors of one part live in it:
`IPCError` (simcore/core/ipc/dispatch.py), `ControlError`, `ControlRefused` (simcore/service/control.py),
`BrokerError` (simcore/cloud/broker.py), `SyncUnavailable`, `SyncConflict` (simcore/cloud/sync.py),
`CoreConfigError` (simcore/core_config.py),
`ConnectorConfigError` (simcore/connectors/parameters.py),
`ShadowTopicError` (simcore/shadow/service.py), `ReplayPeriodError` (simcore/demo/records.py),
`DemoSetupError` (simcore/demo/run.py), `InvalidMetric` (simcore/connectors/cloudwatch_metrics.py),
`FeedbackInputError` (simcore/connectors/ml_feedback.py), `SinkError` (simcore/connectors/sinks.py),
`MqttConnectRefused` (simcore/cloud/failures.py), `ExportError` (simcore/export/plan.py),
`ExportValidationError` (simcore/export/validate.py), `CredentialsError` (simcore/core/tes.py),
`StreamError` (simcore/streams/errors.py), `FleetError` and `RolloutError` (simcore/cloud/fleet_publish.py),
`JobsError` (simcore/cloud/jobs_model.py), `FleetAccessError` (simcore/cli/group.py), `FleetStateError`
(simcore/service/fleet.py).
"""

from __future__ import annotations

# The CLI's exit codes (2, bad usage, is argparse's own).
EXIT_FAILED, EXIT_BAD_INPUT, EXIT_NOT_RUNNING = 1, 3, 4


class SimcoreError(Exception):
    """Base of every error simcore reports to a person or a peer; by default an operation that failed."""

    code: str = "SimcoreError"
    http_status: int = 500
    exit_code: int = EXIT_FAILED

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        location: str | None = None,
        http_status: int | None = None,
    ):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if http_status is not None:
            self.http_status = http_status
        self.location = location

    def describe(self) -> str:
        """The message and where, as one line for a person: `<message> (at <location>)`."""
        where = f" (at {self.location})" if self.location else ""
        return f"{self.message}{where}"

    def __str__(self) -> str:
        return f"{self.code}: {self.describe()}"

    def to_document(self, timestamp: int) -> dict:
        """The JSON body of an MQTT error answer, in AWS IoT's form: the numeric code is `http_status`."""
        return {"code": self.http_status, "message": self.message, "timestamp": timestamp}


class InputError(SimcoreError):
    """What simcore was given (a template, a parameter, a config file, a payload) is wrong."""

    code = "InputError"
    http_status = 400
    exit_code = EXIT_BAD_INPUT


class StartError(SimcoreError):
    """A part of simcore could not start: a port is taken, a program is missing or exits at once."""

    code = "StartError"
    http_status = 503
    exit_code = EXIT_FAILED


class TemplateError(InputError):
    """The CloudFormation template cannot be turned into a group; `location` is the path in the template."""

    code = "TemplateError"


class DeployError(InputError):
    """A deployment could not be built (code, resource fetch or extraction), or there is none."""

    code = "DeployError"


# AWS IoT's error names for the statuses a shadow request can be refused with.
SHADOW_ERROR_NAMES = {
    400: "InvalidRequestException",
    401: "UnauthorizedException",
    404: "ResourceNotFoundException",
    405: "MethodNotAllowedException",
    409: "ConflictException",
    413: "RequestEntityTooLargeException",
    415: "UnsupportedDocumentEncodingException",
    429: "ThrottlingException",
    500: "InternalFailureException",
    503: "ServiceUnavailableException",
}


class ShadowError(InputError):
    """A shadow request was refused: `http_status` is AWS IoT's numeric code (400, 404, 409, 413...).

    `code` is AWS's name for that status (`ResourceNotFoundException`...), "ShadowError" for another.
    """

    code = "ShadowError"

    def __init__(self, http_status: int, message: str, client_token: str | None = None):
        super().__init__(message, code=SHADOW_ERROR_NAMES.get(http_status, "ShadowError"), http_status=http_status)
        self.client_token = client_token

    def to_document(self, timestamp: int) -> dict:
        """The JSON body AWS IoT publishes on `.../rejected` (and returns through GGShadowService)."""
        document = super().to_document(timestamp)
        if self.client_token is not None:
            document["clientToken"] = self.client_token
        return document


class RuntimeConfigError(InputError):
    """The core cannot run a function as configured (isolation, interpreter, user)."""

    code = "RuntimeConfigError"


class RoutingError(InputError):
    """A publish was refused (bad topic or policy); `http_status` is what the IPC server answers."""

    code = "RoutingError"


class QueueFullError(RoutingError):
    """The work queue has no room for an item (or, for AllOrError, for all of a publish's items)."""

    code = "QueueFullError"
    http_status = 429
