"""`simcore demo`'s flags and their defaults, apart from the demo itself.

The CLI builds every sub-command's parser at start, `simcore run` included: this module imports nothing
heavy, so parsing `run` does not load the demo's views (rich) and scoring (NumPy).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from simcore.defaults import DEFAULT_THING_NAME

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TEMPLATE = REPO_ROOT / "cloudformation" / "greengrass-group.yaml"
DEFAULT_MODEL = REPO_ROOT / "resources" / "rain_model" / "dist" / "rain-model.tar.gz"
DEFAULT_ROOT = Path(".simcore-demo")
# ~1464 data hours (Nov-Dec 2013) at 30 hours per wall second: under a minute, plus start-up.
DEFAULT_SPEED = 30.0
DEFAULT_STALL_TIMEOUT_S = 60.0


def add_demo_flags(parser: argparse.ArgumentParser) -> None:
    """The `simcore demo` options (`--root` comes from the CLI's `sub()`; the demo's default differs)."""
    parser.set_defaults(root=DEFAULT_ROOT)
    for action in parser._actions:
        if action.dest == "root":
            action.help = f"the demo's directory: the stand-in cloud, the core, the summary (default {DEFAULT_ROOT})"
    parser.add_argument("--station", default="JFK", help="weather station to replay: EWR, JFK or LGA (default JFK)")
    parser.add_argument("--from", dest="date_from", default="2013-11-01", help="first UTC day (default 2013-11-01)")
    parser.add_argument("--to", dest="date_to", default="2013-12-31",
                        help="last UTC day, inclusive (default 2013-12-31)")
    parser.add_argument("--speed", type=float, default=DEFAULT_SPEED,
                        help=f"data hours replayed per wall second (default {DEFAULT_SPEED:g}: the default "
                             "two months in about a minute)")
    parser.add_argument("--port", type=int, default=8080, help="web page port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--no-web", action="store_true", help="no web page, the terminal view only")
    parser.add_argument("--keep-web", action="store_true",
                        help="after the summary, keep serving the final page until Ctrl-C")
    parser.add_argument("--thing", default=DEFAULT_THING_NAME, help="the core's thing name (template ThingName)")
    parser.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE, help="the group template")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="the ML resource archive (ModelS3Uri)")
    parser.add_argument("--metrics-interval", type=int, default=5,
                        help="seconds between two model metrics messages (default 5)")
    parser.add_argument("--sensor", choices=["lambda", "device"], default="lambda",
                        help="lambda: the pinned sensor Lambda (default); device: a Greengrass device process reads "
                        "the sensor and publishes each reading to the core, as the classic v1 demo did")
    parser.add_argument("--stall-timeout", type=float, default=DEFAULT_STALL_TIMEOUT_S,
                        help="give up when no reading or prediction arrived for this many seconds (default 60)")
