"""Both templates pass cfn-lint (the real resource specification) and checkov, offline, with zero findings.

The only suppressions are the ones the issue allows, each with its reason in the template: the python3.8
deprecation and the Greengrass v1 sunset for cfn-lint; the AWS-Lambda-only checks for checkov. A copy
of the group template without its cfn-lint suppressions shows the linter finds exactly those, and no more.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from cfnlint.decode import cfn_yaml

PROJECT = Path(__file__).resolve().parents[1]
TEMPLATES = [PROJECT / "cloudformation" / "greengrass-group.yaml",
             PROJECT / "cloudformation" / "greengrass-core-ec2.yaml"]
# The runtime deprecation at each of its dates (deprecated, creation blocked, update blocked).
RUNTIME_DEPRECATION = {"W2531", "E2531", "E2533"}
SERVICE_SUNSET = "W3696"
# A v1 system function's ARN (GGStreamManager) has no region or account, against the resource spec's pattern.
SYSTEM_FUNCTION_ARN = "E1160"
# checkov checks about functions that run in AWS Lambda (the issue: skip them per resource, with the reason).
LAMBDA_ONLY_CHECKS = {"CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_363"}


def cfn_lint(template: Path) -> list[dict]:
    """cfn-lint's findings as JSON (its own command line, in a subprocess)."""
    command = [sys.executable, "-c", "import sys; from cfnlint.runner import main; sys.exit(main())",
               "--format", "json", str(template)]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode in (0, 2, 4, 6, 8, 10, 12, 14), completed.stderr
    return json.loads(completed.stdout or "[]")


def checkov_command() -> str:
    """checkov lives in its own venv (it pins boto3 and packaging apart from requirements.txt)."""
    for candidate in (os.environ.get("CHECKOV"), str(PROJECT / ".venv-checkov" / "bin" / "checkov"),
                      shutil.which("checkov")):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail("checkov is not installed: python3.11 -m venv .venv-checkov && "
                ".venv-checkov/bin/pip install -r cloudformation/requirements-checkov.txt")


@functools.cache
def checkov(template: Path) -> dict:
    """checkov's JSON report for one template (run once per template per session: it takes seconds)."""
    completed = subprocess.run(
        [checkov_command(), "--skip-download", "--framework", "cloudformation", "--output", "json",
         "--file", str(template)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert completed.stdout, completed.stderr
    report = json.loads(completed.stdout)
    assert report["check_type"] == "cloudformation", report
    return report


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda path: path.name)
def test_cfn_lint_finds_nothing(template: Path) -> None:
    findings = cfn_lint(template)
    assert findings == [], [f"{f['Rule']['Id']} {f['Message']}" for f in findings]


def test_cfn_lint_suppressions_are_exactly_the_two_allowed_ones() -> None:
    template = cfn_yaml.load(str(TEMPLATES[0]))
    assert template["Metadata"]["cfn-lint"]["config"]["ignore_checks"] == [SERVICE_SUNSET]
    ignored_by_resource = {
        logical_id: set(body.get("Metadata", {}).get("cfn-lint", {}).get("config", {}).get("ignore_checks", []))
        for logical_id, body in template["Resources"].items()
    }
    assert {k: v for k, v in ignored_by_resource.items() if v} == {
        "SensorToShadowFunction": RUNTIME_DEPRECATION, "RainInferenceFunction": RUNTIME_DEPRECATION,
        "ReadingToShadowFunction": RUNTIME_DEPRECATION, "FunctionDefinition": {SYSTEM_FUNCTION_ARN}}
    assert "Metadata" not in cfn_yaml.load(str(TEMPLATES[1])) or \
        "cfn-lint" not in cfn_yaml.load(str(TEMPLATES[1]))["Metadata"]


def test_without_its_suppressions_cfn_lint_reports_only_the_runtime_and_the_sunset(tmp_path: Path) -> None:
    # Each suppressed code becomes a rule id that does not exist, so the ignore lists stay well-formed.
    unsuppressed = "\n".join(
        line.replace(line.strip(), "- W9999")
        if line.strip() in {f"- {code}" for code in (*RUNTIME_DEPRECATION, SERVICE_SUNSET, SYSTEM_FUNCTION_ARN)}
        else line
        for line in TEMPLATES[0].read_text().splitlines()
    )
    assert unsuppressed.count("- W9999") == 11
    copy = tmp_path / "cloudformation" / TEMPLATES[0].name
    copy.parent.mkdir()
    copy.write_text(unsuppressed)
    found = Counter(finding["Rule"]["Id"] for finding in cfn_lint(copy))
    # One sunset warning per AWS::Greengrass::* resource, one deprecation per core-run function.
    assert found[SERVICE_SUNSET] == 8
    runtime = {code: count for code, count in found.items() if code in RUNTIME_DEPRECATION}
    assert sum(runtime.values()) == 3 and len(runtime) == 1, found
    assert found[SYSTEM_FUNCTION_ARN] == 1  # the GGStreamManager entry
    assert set(found) == {SERVICE_SUNSET, SYSTEM_FUNCTION_ARN, *runtime}


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda path: path.name)
def test_checkov_offline_has_no_failed_check(template: Path) -> None:
    report = checkov(template)
    failed = report["results"].get("failed_checks", [])
    assert failed == [], [(f["check_id"], f["resource"]) for f in failed]
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] > 20


def test_checkov_skips_are_only_lambda_checks_on_functions_with_a_reason() -> None:
    skipped = checkov(TEMPLATES[0])["results"].get("skipped_checks", [])
    by_resource: dict[str, set[str]] = {}
    for skip in skipped:
        assert skip["check_id"] in LAMBDA_ONLY_CHECKS, skip["check_id"]
        assert skip["resource"].startswith("AWS::Serverless::Function."), skip["resource"]
        assert len(skip["check_result"]["suppress_comment"]) > 30
        by_resource.setdefault(skip["resource"].split(".", 1)[1], set()).add(skip["check_id"])
    # (checkov resolves conditions with the parameters' defaults: ReadingToShadowFunction, SensorMode=device
    # only, is not scanned; its skips are the sensor Lambda's.) The core's functions skip all four; the
    # custom resources' functions (which do run in AWS Lambda) run a current runtime, so the
    # deprecated-runtime check applies to them and passes.
    assert by_resource == {
        "SensorToShadowFunction": LAMBDA_ONLY_CHECKS, "RainInferenceFunction": LAMBDA_ONLY_CHECKS,
        "ThingCertificateFunction": LAMBDA_ONLY_CHECKS - {"CKV_AWS_363"},
        "DeploymentResetFunction": LAMBDA_ONLY_CHECKS - {"CKV_AWS_363"},
    }
    assert checkov(TEMPLATES[1])["summary"]["skipped"] == 0
