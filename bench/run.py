"""`make bench`: runs every benchmark in one process tree and writes docs/benchmarks.md.

Each benchmark module exposes `run() -> str`, a markdown section whose figures are ratios against a baseline
measured in the same run, so the page compares like with like on whatever machine produced it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ("inference", "ipc", "cloud_path", "footprint", "start_time", "ml_inference", "devices", "fleet",
              "streams")


def machine_line() -> str:
    """One line naming the machine the figures come from."""
    cpu_count = len(os.sched_getaffinity(0))
    return f"{platform.machine()}, {cpu_count} CPUs, Python {platform.python_version()}, {platform.system()}"


def main(argv: list[str] | None = None) -> int:
    """Run the named benchmarks (all by default) and write the page."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", default=list(BENCHMARKS), help=f"any of {', '.join(BENCHMARKS)}")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT))
    load_at_start = os.getloadavg()[0]
    sections = []
    for name in args.names:
        started = time.perf_counter()
        module = importlib.import_module(f"bench.{name}")
        print(f"== bench/{name}.py", flush=True)
        section = module.run()
        print(section, flush=True)
        sections.append(section.rstrip() + f"\n\n_(bench/{name}.py took {time.perf_counter() - started:.0f} s)_\n")
    page = [
        "# Benchmarks",
        "",
        "Produced by `make bench` (`.venv/bin/python bench/run.py`); one benchmark alone: "
        "`.venv/bin/python bench/run.py NAME`. Every goal is a ratio against a baseline measured in the same run.",
        "",
        f"Machine: {machine_line()}; run at {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average "
        f"{load_at_start:.1f} at start (on a shared machine, figures taken while other work runs are noisy).",
        "",
        *sections,
    ]
    args.out.write_text("\n".join(page))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
