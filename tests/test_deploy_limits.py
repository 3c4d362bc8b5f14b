"""Deploy refuses what AWS refuses, and never hangs: a ReDoS-proof AllowedPattern; template, code and model limits.

Each refusal names AWS's limit (or the reason) and where it is; nothing here is timed: the linear-time matcher
is proved by the engine in use (RE2), and pytest-timeout is only the backstop for a hang.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import socket
import tarfile
import zipfile
from pathlib import Path

import pytest

from simcore.cli.main import main
from simcore.defaults import CFN_TEMPLATE_MAX_BYTES
from simcore.deploy.archive import MiB, extract_archive
from simcore.deploy.deployment import CODE_LIMITS, deploy
from simcore.deploy.record import read_status
from simcore.errors import DeployError, TemplateError
from simcore.template.loader import load_group, load_parameters
from simcore.template.patterns import compile_allowed_pattern

CORPUS = Path(__file__).parent / "corpus" / "templates"
BASE = CORPUS / "parameter_pattern.yaml"
FIXTURES = Path(__file__).parent / "fixtures" / "templates"


# -- AllowedPattern ---------------------------------------------------------------------------------------


def test_allowed_pattern_is_matched_by_re2_so_an_exponential_pattern_answers_in_one_pass():
    pattern = compile_allowed_pattern("^(a+)+$", "ThingName", "Parameters.ThingName.AllowedPattern")
    assert pattern.engine == "RE2"
    assert pattern.matches("a" * 10_000)
    assert not pattern.matches("a" * 10_000 + "b")  # hours (2^10000 paths) for a backtracking engine


def test_a_template_parameter_with_the_redos_pattern_is_refused_naming_the_parameter(tmp_path):
    template = tmp_path / "redos.yaml"
    template.write_text(BASE.read_text().replace("AllowedPattern: '[a-z-]+'", "AllowedPattern: '^(a+)+$'"))
    value = "a" * 10_000 + "b"
    with pytest.raises(TemplateError, match=re.escape("Parameter 'ThingName' must match pattern ^(a+)+$")) as raised:
        load_group(template, {"ThingName": value})
    assert raised.value.location == "Parameters.ThingName"


@pytest.mark.parametrize(
    "pattern",
    [r"(a)\1", "(?=a)a", "(?<!b)a", "a*+", "(?>a)", r"\p{javaLowerCase}"],
    ids=["backreference", "lookahead", "lookbehind", "possessive", "atomic", "java-class"],
)
def test_java_constructs_re2_cannot_run_in_linear_time_are_refused_by_name(pattern):
    with pytest.raises(TemplateError, match="is not a pattern simcore can match") as raised:
        compile_allowed_pattern(pattern, "P", "Parameters.P.AllowedPattern")
    assert raised.value.location == "Parameters.P.AllowedPattern"
    assert "backreferences, lookahead/lookbehind" in raised.value.message


@pytest.mark.parametrize(("pattern", "value"), [(r"\Qa.b\E", "a.b"), ("(?i)abc", "ABC"), (r"[0-9]{1,3}", "255")])
def test_the_java_syntax_re2_shares_matches_the_whole_value(pattern, value):
    compiled = compile_allowed_pattern(pattern, "P", "Parameters.P")
    assert compiled.matches(value)
    assert not compiled.matches(value + "x")


# -- the template file ------------------------------------------------------------------------------------


def _padded(tmp_path: Path, size: int) -> Path:
    """The corpus base template padded with a trailing comment to exactly `size` bytes."""
    text = BASE.read_text().encode()
    text += b"\n#" + b"x" * (size - len(text) - 3) + b"\n"
    assert len(text) == size
    (tmp_path / "fixtures").symlink_to(CORPUS.parent.parent / "fixtures", target_is_directory=True)
    folder = tmp_path / "corpus" / "templates"
    folder.mkdir(parents=True)
    path = folder / "padded.yaml"
    path.write_bytes(text)
    return path


def test_a_template_of_exactly_aws_1_mb_loads(tmp_path):
    assert load_group(_padded(tmp_path, CFN_TEMPLATE_MAX_BYTES)).name == "corpus"


def test_a_template_one_byte_over_aws_1_mb_is_refused_with_aws_limit_named(tmp_path):
    path = _padded(tmp_path, CFN_TEMPLATE_MAX_BYTES + 1)
    with pytest.raises(TemplateError, match=re.escape("Template may not exceed 1000000 bytes in size.")) as raised:
        load_group(path)
    assert raised.value.location == str(path)
    assert "51,200 bytes when passed directly" in raised.value.message


@pytest.mark.parametrize("kind", ["fifo", "device", "socket"])
def test_a_template_or_parameters_file_that_is_not_a_regular_file_is_refused_without_reading(tmp_path, kind):
    path = tmp_path / "special"
    if kind == "fifo":
        os.mkfifo(path)  # opening it for reading would wait for a writer forever
    elif kind == "device":
        path = Path("/dev/zero")  # reading it never ends
    else:
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(str(path))
    with pytest.raises(TemplateError, match="not a regular file") as raised:
        load_group(path)
    assert raised.value.location == str(path)
    with pytest.raises(TemplateError, match="cannot read parameters file: not a regular file"):
        load_parameters(path)


def test_the_cli_refuses_an_oversized_template_in_one_line_with_exit_3(tmp_path, capsys):
    path = _padded(tmp_path, CFN_TEMPLATE_MAX_BYTES + 1)
    assert main(["deploy", str(path), "--root", str(tmp_path / "root")]) == 3
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("simcore: template is over 1,000,000 bytes")
    assert "Traceback" not in error


# -- a function's code and a model's source ---------------------------------------------------------------


@pytest.fixture
def workspace(tmp_path) -> Path:
    """A copy of the fixture templates with models/tiny.tar.gz built from models/tiny."""
    work = tmp_path / "work"
    shutil.copytree(FIXTURES, work)
    with tarfile.open(work / "models" / "tiny.tar.gz", "w:gz") as tar:
        tar.add(work / "models" / "tiny", arcname=".")
    return work


SMALL_CODE_LIMITS = dataclasses.replace(CODE_LIMITS, max_member_bytes=MiB, max_total_bytes=MiB)


def test_code_is_held_to_aws_lambdas_250_mb_unzipped_by_default():
    assert CODE_LIMITS.max_total_bytes == 262_144_000
    assert "Unzipped size must be smaller than 262144000 bytes" in CODE_LIMITS.total_limit


def test_a_code_folder_over_the_budget_is_refused_at_the_file_that_passes_it(workspace, tmp_path):
    sensor = workspace / "lambdas" / "sensor"
    for name in ("big_a.bin", "big_b.bin", "big_c.bin"):
        (sensor / name).write_bytes(b"\x01" * (600 * 1024))
    root = tmp_path / "ggc"
    with pytest.raises(DeployError, match=re.escape("'big_b.bin'")) as raised:
        deploy(workspace / "sam_group.yaml", None, root, code_limits=SMALL_CODE_LIMITS)
    message = raised.value.message
    assert message.startswith("function sensor-to-shadow: ") and f"beyond {MiB} bytes" in message
    assert "Unzipped size must be smaller than 262144000 bytes" in message
    assert raised.value.location == str(sensor / "big_b.bin")
    assert read_status(root)["DeploymentStatus"] == "Failure"
    assert not [entry for entry in (root / "deployments").iterdir() if entry.name.startswith(".")]


def test_a_zip_of_code_that_expands_over_the_budget_is_refused_naming_aws_limit(workspace, tmp_path):
    with zipfile.ZipFile(workspace / "sensor.zip", "w", zipfile.ZIP_DEFLATED) as zipped:
        for name in ("a.bin", "b.bin"):
            zipped.writestr(name, os.urandom(600 * 1024))  # random: no compression ratio to trip first
    template = (workspace / "sam_group.yaml").read_text().replace("CodeUri: lambdas/sensor", "CodeUri: sensor.zip")
    (workspace / "zip_group.yaml").write_text(template)
    with pytest.raises(DeployError, match=re.escape("archive member 'b.bin': archive expands beyond")) as raised:
        deploy(workspace / "zip_group.yaml", None, tmp_path / "ggc", code_limits=SMALL_CODE_LIMITS)
    assert "Unzipped size must be smaller than 262144000 bytes" in raised.value.message


def test_a_code_folder_holding_a_fifo_or_a_link_out_of_it_is_refused(workspace, tmp_path):
    sensor = workspace / "lambdas" / "sensor"
    os.mkfifo(sensor / "pipe")
    with pytest.raises(DeployError, match="'pipe' in .*: device file, FIFO or other special file"):
        deploy(workspace / "sam_group.yaml", None, tmp_path / "ggc")
    (sensor / "pipe").unlink()
    (sensor / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(DeployError, match="symbolic link to '/etc/passwd' leaves the folder"):
        deploy(workspace / "sam_group.yaml", None, tmp_path / "ggc")


def _special(tmp_path: Path, kind: str) -> tuple[Path, str]:
    if kind == "device":
        return Path("/dev/zero"), "character device"
    path = tmp_path / kind
    if kind == "fifo":
        os.mkfifo(path)
        return path, "FIFO"
    socket.socket(socket.AF_UNIX).bind(str(path))
    return path, "socket"


@pytest.mark.parametrize("kind", ["device", "fifo", "socket"])
def test_a_model_source_that_is_a_device_fifo_or_socket_is_refused_before_it_is_opened(workspace, tmp_path, kind):
    path, name = _special(tmp_path, kind)
    root = tmp_path / "ggc"
    with pytest.raises(DeployError, match=f"resource rain-model: model source .* is a {name}, not a regular file"):
        deploy(workspace / "sam_group.yaml", {"ModelS3Uri": path.as_uri()}, root)
    assert read_status(root)["DeploymentStatus"] == "Failure"


@pytest.mark.parametrize("kind", ["device", "fifo"])
def test_extraction_refuses_a_special_file_even_when_handed_one_directly(tmp_path, kind):
    path, _ = _special(tmp_path, kind)
    with pytest.raises(DeployError, match="is not a regular file"):
        extract_archive(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_cli_refuses_dev_zero_as_a_model_in_one_line_with_exit_3(workspace, tmp_path, capsys):
    arguments = ["deploy", str(workspace / "sam_group.yaml"), "--param", "ModelS3Uri=file:///dev/zero"]
    assert main([*arguments, "--root", str(tmp_path / "ggc")]) == 3
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert error.startswith("simcore: resource rain-model: model source 'file:///dev/zero' is a character device")


def test_one_code_file_over_the_budget_is_refused_naming_aws_limit_before_it_is_all_copied(workspace, tmp_path):
    sensor = workspace / "lambdas" / "sensor"
    with open(sensor / "blob.bin", "wb") as blob:
        blob.truncate(3 * MiB)  # sparse: 3 MiB to read, nothing on disk
    with pytest.raises(DeployError, match=re.escape(f"'blob.bin' in {sensor}: over {MiB} bytes")) as raised:
        deploy(workspace / "sam_group.yaml", None, tmp_path / "ggc", code_limits=SMALL_CODE_LIMITS)
    assert "Unzipped size must be smaller than 262144000 bytes" in raised.value.message
