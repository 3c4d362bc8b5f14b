"""simcore's house rules: imports run one way between its parts, no module cycles, `lambda_side` stays apart.

The allowed arrows are the table in docs/architecture.md; this test reads the code's imports (module level and
inside functions alike) with `ast` and fails on any import that runs against them.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "simcore"
ARCHITECTURE = REPO / "docs" / "architecture.md"

# Modules at the top of simcore/ that anything may import (plain values, rules and constants).
LEAVES = {"errors", "group", "topics", "paths", "checksums", "private", "parent_death", "core_config", "defaults"}

# part -> the parts it may import (leaves aside). A part is a package under simcore/ or a leaf module.
ALLOWED = {
    "template": set(),
    "deploy": {"template", "devices"},
    "shadow": set(),
    "core": {"shadow", "streams"},
    "streams": set(),
    "connectors": set(),
    "cloud": {"shadow"},
    "devices": {"cloud"},
    "service": {"core", "deploy", "cloud", "connectors", "shadow", "devices"},
    "demo": {"service", "cloud", "deploy", "shadow"},
    "export": {"template"},
    "cli": {"service", "demo", "cloud", "deploy", "template", "shadow", "core", "export", "connectors", "devices"},
    "__main__": {"cli"},
    "lambda_side": set(),
}
# Leaves import only leaves that come before them here (no cycles among the leaves either).
LEAF_ORDER = ["parent_death", "paths", "checksums", "private", "defaults", "errors", "topics", "group", "core_config"]


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def simcore_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path) -> set[str]:
    """Every `simcore...` module a file imports, at module level or inside functions."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "simcore")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != "simcore":
                continue
            # `from simcore.core import isolation` imports the module simcore.core.isolation.
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if (PACKAGE.parent / Path(*candidate.split("."))).with_suffix(".py").exists()
                          or (PACKAGE.parent / Path(*candidate.split("."))).is_dir() else node.module)
    return found


def part_of(module: str) -> str:
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else "simcore"


def test_every_part_and_leaf_is_known():
    """A new package or top-level module must be given its place in the table (and in docs/architecture.md)."""
    parts = {part_of(name) for name in simcore_modules()} - {"simcore"}
    assert parts <= set(ALLOWED) | LEAVES, f"unplaced parts: {sorted(parts - set(ALLOWED) - LEAVES)}"
    assert set(LEAF_ORDER) == LEAVES


def test_imports_follow_the_arrows():
    violations = []
    for name, path in simcore_modules().items():
        source = part_of(name)
        for imported in imports_of(path):
            target = part_of(imported)
            if target == source:
                continue
            if target == "lambda_side":
                violations.append(f"{name} imports {imported}: lambda_side runs inside Lambdas, never in simcore")
            elif source in LEAVES:
                if target not in LEAVES or LEAF_ORDER.index(target) >= LEAF_ORDER.index(source):
                    violations.append(f"leaf {name} imports {imported}")
            elif target not in LEAVES and target not in ALLOWED.get(source, set()):
                violations.append(f"{name} ({source}) imports {imported} ({target})")
    assert not violations, "\n".join(violations)


def test_no_import_cycles_between_modules():
    modules = simcore_modules()
    graph = {name: {imported for imported in imports_of(path) if imported in modules and imported != name}
             for name, path in modules.items()}
    # Package __init__ modules hold only a docstring: an import of a package adds no edge back.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph[node]:
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for name in graph:
        if name not in index:
            visit(name)
    assert not cycles, f"import cycles: {cycles}"


def test_lambda_side_imports_nothing_of_simcore_and_runs_on_python_3_8_stdlib():
    for path in (PACKAGE / "lambda_side").rglob("*.py"):
        assert not {imported for imported in imports_of(path)}, f"{path} imports simcore"


@pytest.mark.parametrize("folder", ["lambdas"])
def test_lambdas_never_import_simcore(folder):
    for path in (REPO / folder).rglob("*.py"):
        assert not imports_of(path), f"{path} imports simcore: a Lambda has only what a real core gives it"


def test_package_inits_hold_no_code():
    """Importing one module of a part must not import the whole part (the core's footprint depends on it)."""
    for path in PACKAGE.rglob("__init__.py"):
        if "lambda_side" in path.parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        code = [node for node in tree.body if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]
        assert not code, f"{path.relative_to(REPO)} holds code; import the module that defines it instead"


def test_architecture_doc_names_every_module():
    """docs/architecture.md lists every simcore module (outside lambda_side) with its one job."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    listed = set(re.findall(r"`(simcore/[\w/]+\.py)`", text))
    expected = {
        str(path.relative_to(REPO))
        for path in PACKAGE.rglob("*.py")
        if path.name != "__init__.py" and "lambda_side" not in path.parts
    }
    assert expected - listed == set(), f"not in docs/architecture.md: {sorted(expected - listed)}"
    unknown = sorted(listed - expected)
    assert not unknown, f"docs/architecture.md names modules that do not exist: {unknown}"


# What `simcore run` must not import: the template machinery, the AWS SDK, the stand-in cloud's CA and broker,
# the broker fallback and the demo's views and scoring (bench/footprint.py measures what each would cost).
NOT_IN_A_RUNNING_CORE = ("cfnlint", "yaml", "boto3", "botocore", "cryptography", "amqtt", "rich", "numpy",
                         "simcore.template", "simcore.deploy.deployment", "simcore.cloud.standin", "simcore.cloud.ca",
                         "simcore.cloud.broker", "simcore.demo.run", "simcore.demo.state", "simcore.demo.scoring")
# Started for real: `simcore run` (the CLI's main, its parser with every command) on a deployed group linked to
# the stand-in cloud; once its control file exists the probe lists the modules and stops it with SIGTERM.
RUN_PROBE = """
import os, signal, sys, threading
sys.path.insert(0, sys.argv[3])
from support.waiting import wait_until
from simcore.cli.main import main
from simcore.service.control import CONTROL_FILE
root, report, config = sys.argv[1], sys.argv[2], sys.argv[4]

def list_modules_then_stop():
    wait_until(lambda: os.path.exists(os.path.join(root, CONTROL_FILE)), 60, message="the core to start")
    with open(report, "w") as out:
        out.write("\\n".join(sorted(sys.modules)))
    os.kill(os.getpid(), signal.SIGTERM)

threading.Thread(target=list_modules_then_stop, daemon=True).start()
sys.exit(main(["run", "--root", root, "--config", config]))
"""


@pytest.fixture
def cloud_thing() -> str:
    return "cli-core"  # the thing of tests/fixtures/cli/group.yaml, for the `cloud` fixture


def test_running_a_core_does_not_load_the_template_machinery(tmp_path, cloud):
    """`simcore run` needs a deployment's record, not its template: cfn-lint, boto3, the stand-in's CA and
    broker, amqtt and the demo stay out of a running core (and out of its memory)."""
    from simcore.deploy.deployment import deploy

    root, report = tmp_path / "core", tmp_path / "modules.txt"
    deploy(REPO / "tests" / "fixtures" / "cli" / "group.yaml", {"ThingName": "cli-core"}, root)
    result = subprocess.run(
        [sys.executable, "-c", RUN_PROBE, str(root), str(report), str(REPO / "tests"), str(cloud.config_path)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    loaded = set(report.read_text().split())
    # The probe saw a core that ran: its service, cloud link and IPC server were imported.
    assert {"simcore.service.running", "simcore.cloud.link", "simcore.core.ipc.http"} <= loaded
    unwanted = sorted(name for name in loaded if any(name == part or name.startswith(part + ".")
                                                     for part in NOT_IN_A_RUNNING_CORE))
    assert unwanted == [], f"the running core imports: {unwanted}"
