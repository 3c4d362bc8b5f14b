"""Local implementations of the Greengrass v1 connectors the group template uses.

`build_registry(group, runtime_root, publish=..., cloud_available=...)` starts them and returns the
`ConnectorRegistry` that `simcore.core.assemble.Core(..., connectors=...)` hands to the router.
"""

from simcore.connectors.parameters import ConnectorConfigError
from simcore.connectors.registry import AWS_ENV, ConnectorRegistry, build_registry

__all__ = ["AWS_ENV", "ConnectorConfigError", "ConnectorRegistry", "build_registry"]
