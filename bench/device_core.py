"""A core serving devices in a process of its own, for bench/devices.py (its CPU and RSS are the core's alone).

`python bench/device_core.py <spec.json>` reads `{"root", "group" (group_to_json), "function_dirs",
"device_ca"}`, runs a `RunningCore` with its device server on 127.0.0.1 (any free port, discovery off),
prints one JSON line `{"pid", "device_port"}`, answers `status` lines on stdin with the core's status as
one JSON line, and stops at EOF.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from simcore.deploy.record import Deployment, group_from_json  # noqa: E402
from simcore.service.running import RunningCore, RunOptions  # noqa: E402


def main(spec_path: str) -> int:
    """Serve until stdin closes."""
    import os

    spec = json.loads(Path(spec_path).read_text())
    root = Path(spec["root"])
    group = group_from_json(spec["group"])
    deployment = Deployment(id="bench", number=1, root=root, directory=root / "deployment", group=group,
                            function_dirs={arn: Path(path) for arn, path in spec["function_dirs"].items()})
    running = RunningCore(deployment, RunOptions(
        interpreters={"python3.8": sys.executable}, device_port=0, device_host="127.0.0.1",
        connectivity=[("127.0.0.1", 0)], device_ca=Path(spec["device_ca"])))
    running.start()
    try:
        print(json.dumps({"pid": os.getpid(), "device_port": running.devices.port,
                          "group_ca": str(running.devices.ca.cert_path)}), flush=True)
        for line in sys.stdin:
            if line.strip() == "status":
                print(json.dumps(running.status()), flush=True)
    finally:
        running.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
