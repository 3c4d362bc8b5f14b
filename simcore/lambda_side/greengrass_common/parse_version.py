"""Interface version strings as the v1 core's runtime reads them (`GGC_MAX_INTERFACE_VERSION`, e.g. `1.5`).

The Greengrass ML SDK imports `parse_version` from here and compares the core's `(major, minor)` with the
interface it needs (1.2 for ML SDK 1.1.0): same major, minor at least its own.
"""


def parse_version(version):
    """`"<major>.<minor>"` (a third part is ignored) as the pair of ints; ValueError when it is not one."""
    parts = str(version).strip().split(".")
    if len(parts) < 2 or not parts[0].isdigit() or not parts[1].isdigit():
        raise ValueError("Cannot parse interface version {!r}: expected <major>.<minor>".format(version))
    return int(parts[0]), int(parts[1])
