"""Local implementations of the Greengrass v1 connectors the group template uses.

`registry.build_registry(group, runtime_root, publish=..., cloud_available=...)` starts them and returns the
`ConnectorRegistry` that `simcore.core.assemble.Core(..., connectors=...)` hands to the router.
"""
