"""A Lambda that reports who it runs as and which files it can open: what a compromised Lambda could reach.

Invoked (RequestResponse) with `{"paths": [...]}`; returns `{"uid", "gid", "groups", "opened": {path: outcome}}`
where an outcome is "read" or the name of the OSError the open raised (`PermissionError`...).
"""

import os


def function_handler(event, context):
    opened = {}
    for path in event.get("paths", []):
        try:
            with open(path, "rb") as handle:
                handle.read(1)
            opened[path] = "read"
        except OSError as error:
            opened[path] = type(error).__name__
    return {"uid": os.getuid(), "gid": os.getgid(), "groups": sorted(os.getgroups()), "opened": opened}
