"""What a Lambda's code does with the v1 Core SDK, found by reading it: the calls that decide its v2 migration.

Each `*.py` under the function's code folder is parsed with `ast` (never imported or run). Found:
- `shadow`: a call to `get_thing_shadow`, `update_thing_shadow` or `delete_thing_shadow` (the v1 SDK's
  iot-data client); v2 has no compatibility layer for them, so the function must move to the IPC shadow client;
- `publish`: `publish(...)` in a file that imports greengrasssdk (routed by the legacy subscription router);
- `invoke`: `invoke(...)` in a file that imports greengrasssdk (the v1 SDK's Lambda client);
- `secrets`: `greengrasssdk.client("secretsmanager")`;
- `aws_sdk`: an import of boto3 or botocore (AWS credentials: the token exchange service);
- `stream_manager`: an import of the stream manager SDK.
Bounded: at most `MAX_FILES` files of at most `MAX_FILE_BYTES` each; what is skipped is said, not guessed.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

SHADOW_CALLS = ("get_thing_shadow", "update_thing_shadow", "delete_thing_shadow")
MAX_FILES = 2000
MAX_FILE_BYTES = 1_000_000
# Vendored dependencies are not the function's own code: their calls are not its calls.
SKIPPED_FOLDERS = {"__pycache__", "site-packages", "dist-packages", "greengrasssdk", "boto3", "botocore",
                   "node_modules", ".git", ".venv", "venv"}


@dataclass(frozen=True)
class Finding:
    """One use of a v1 feature in the code: which feature, where (path relative to the code folder, line), the call."""

    feature: str
    path: str
    line: int
    call: str

    def where(self) -> str:
        """`path:line`."""
        return f"{self.path}:{self.line}"


@dataclass
class CodeReport:
    """Everything found in one function's code, and what could not be read."""

    findings: list[Finding] = field(default_factory=list)
    unread: list[str] = field(default_factory=list)

    def uses(self, feature: str) -> list[Finding]:
        """The findings of one feature, in file and line order."""
        return [finding for finding in self.findings if finding.feature == feature]


def scan_code(code_dir: Path) -> CodeReport:
    """What the Python files under `code_dir` (a folder or one file) do with the v1 SDK."""
    report = CodeReport()
    files = [code_dir] if code_dir.is_file() else sorted(_python_files(code_dir))
    for index, path in enumerate(files):
        relative = path.name if code_dir.is_file() else str(path.relative_to(code_dir))
        if index >= MAX_FILES:
            report.unread.append(f"{len(files) - MAX_FILES} more files (only {MAX_FILES} are read)")
            break
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                report.unread.append(f"{relative} (over {MAX_FILE_BYTES:,} bytes)")
                continue
            tree = ast.parse(path.read_bytes(), filename=relative)
        except (OSError, SyntaxError, ValueError) as error:
            report.unread.append(f"{relative} ({type(error).__name__})")
            continue
        report.findings.extend(_findings(tree, relative))
    return report


def _python_files(folder: Path):
    for path in folder.rglob("*.py"):
        if not SKIPPED_FOLDERS.intersection(path.relative_to(folder).parts[:-1]) and path.is_file():
            yield path


def _findings(tree: ast.AST, path: str) -> list[Finding]:
    imports = _imported_modules(tree)
    uses_v1_sdk = "greengrasssdk" in imports
    found = []
    for module in sorted(imports):
        line = imports[module]
        if module in ("boto3", "botocore"):
            found.append(Finding("aws_sdk", path, line, f"import {module}"))
        elif "stream_manager" in module.split("."):
            found.append(Finding("stream_manager", path, line, f"import {module}"))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
        if name in SHADOW_CALLS:
            found.append(Finding("shadow", path, node.lineno, f"{name}()"))
        elif uses_v1_sdk and name in ("publish", "invoke") and isinstance(node.func, ast.Attribute):
            found.append(Finding(name, path, node.lineno, f"{name}()"))
        elif name == "client" and _first_string(node) == "secretsmanager":
            found.append(Finding("secrets", path, node.lineno, 'client("secretsmanager")'))
    return sorted(found, key=lambda finding: (finding.path, finding.line, finding.feature))


def _imported_modules(tree: ast.AST) -> dict[str, int]:
    """Top-level names of every module the file imports (and full dotted names), with the first line of each."""
    modules: dict[str, int] = {}
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            for candidate in (name, name.split(".")[0]):
                modules.setdefault(candidate, node.lineno)
    return modules


def _first_string(call: ast.Call) -> str | None:
    if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
        return call.args[0].value
    return None
