"""Where simcore's own files lie: the package, the repository around it, the modules placed on each Lambda's path."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent
# Placed on every Lambda's PYTHONPATH and run inside the Lambda's process: never imported by simcore.
LAMBDA_SIDE_DIR = PACKAGE_DIR / "lambda_side"
LAMBDA_RUNTIME = LAMBDA_SIDE_DIR / "lambda_runtime.py"
ISOLATION_LAUNCHER = LAMBDA_SIDE_DIR / "isolation_launcher.py"
