"""A core whose group runs only GGStreamManager, in a process of its own (for kill -9 tests).

`python tests/support/stream_core_process.py <runtime_root>` starts a `Core` (File streams under
`<runtime_root>/var/stream-manager`, client authentication off, a free port), prints `{"port": N}` and
serves until killed or until stdin closes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def main(runtime_root: Path) -> None:
    """Run the core until stdin closes."""
    sys.path[:0] = [str(REPO / "tests"), str(REPO)]
    from lambdas_fixtures.harness import make_group

    from simcore.core.assemble import Core
    from simcore.group import SystemFunction
    from simcore.streams.settings import STREAM_MANAGER_ARN

    manager = SystemFunction(id="sm", arn=STREAM_MANAGER_ARN, name="GGStreamManager", environment={
        "STREAM_MANAGER_SERVER_PORT": "0", "STREAM_MANAGER_AUTHENTICATE_CLIENT": "false"})
    group = make_group([], system_functions=("GGStreamManager",), system_function_settings=(manager,))
    core = Core(group, runtime_root=runtime_root)
    core.start()
    assert core.stream_manager is not None
    print(json.dumps({"port": core.stream_manager.port}), flush=True)
    try:
        sys.stdin.read()
    finally:
        core.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
