"""Reading a connector's `Parameters` against the patterns the connector's own documentation gives.

Greengrass v1 passes every connector parameter as a string; the service checks each one against the
connector's "Valid pattern" when a group version is created. simcore does the same when it builds the
connectors, so a bad value is an error before the core starts, naming the connector and the parameter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from simcore.errors import InputError


class ConnectorConfigError(InputError):
    """A connector's parameters are missing, unknown or do not match the connector's documented pattern."""

    code = "ConnectorConfigError"


def connector_version(connector_arn: str) -> int | None:
    """The version in `arn:aws:greengrass:<region>::/connectors/<Name>/versions/<n>`; None if absent."""
    found = re.search(r"/versions/(\d+)$", connector_arn)
    return int(found.group(1)) if found else None


class ParameterReader:
    """One connector's parameters, read one by one; unknown names are refused by `finish()`."""

    def __init__(self, connector_id: str, parameters: Mapping[str, Any]):
        self.connector_id = connector_id
        self.parameters = dict(parameters)
        self._read: set[str] = set()

    def error(self, name: str, message: str) -> ConnectorConfigError:
        """An error about parameter `name`, located in the connector's Parameters."""
        return ConnectorConfigError(message, location=f"Connectors[{self.connector_id}].Parameters.{name}")

    def string(self, name: str, pattern: str, *, required: bool, default: str | None = None) -> str | None:
        """The parameter as a string that fully matches `pattern` (the connector guide's "Valid pattern")."""
        self._read.add(name)
        value = self.parameters.get(name)
        if value is None:
            if required:
                raise self.error(name, f"{name} is required by the {self.connector_id} connector")
            return default
        # Templates may give numbers; the Greengrass API takes every parameter as a string.
        text = value if isinstance(value, str) else str(value)
        if isinstance(value, bool) or not re.fullmatch(pattern, text):
            raise self.error(name, f"{name} value {value!r} does not match the valid pattern {pattern}")
        return text

    def raw(self, name: str, *, required: bool) -> Any:
        """The parameter as given (for values the connector parses itself, e.g. a JSON map)."""
        self._read.add(name)
        if name not in self.parameters and required:
            raise self.error(name, f"{name} is required by the {self.connector_id} connector")
        return self.parameters.get(name)

    def finish(self) -> None:
        """Refuse parameters the connector does not define (a typo would otherwise be silently ignored)."""
        unknown = sorted(set(self.parameters) - self._read)
        if unknown:
            known = ", ".join(sorted(self._read))
            raise self.error(unknown[0], f"unknown parameter(s) {', '.join(unknown)}; this connector takes {known}")


ISOLATION_MODE_PATTERN = r"NoContainer|GreengrassContainer"
