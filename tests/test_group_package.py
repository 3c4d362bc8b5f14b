"""group.package (`make package`): reproducible Lambda zips, the model archive, the EC2 bundle, the commands."""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path

import pytest

from group import package


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A small project tree shaped like this one."""
    root = tmp_path / "project"
    for folder in package.LAMBDA_FOLDERS:
        code = root / "lambdas" / folder / folder
        code.mkdir(parents=True)
        (code / "__init__.py").write_text("")
        (code / "handler.py").write_text("def function_handler(event, context):\n    return event\n")
        (code / "__pycache__").mkdir()
        (code / "__pycache__" / "handler.cpython-38.pyc").write_bytes(b"\x00")
    for name in ("simcore", "group", "cloudformation"):
        (root / name).mkdir()
        (root / name / "placeholder.txt").write_text(name)
    for name in ("requirements.txt", "requirements-dev.txt", "pyproject.toml", "Makefile", "README.md"):
        (root / name).write_text(name)
    model = root / package.MODEL_ARCHIVE
    model.parent.mkdir(parents=True)
    model.write_bytes(b"model-bytes")
    return root


def test_each_lambda_zip_holds_its_package_at_the_top_without_bytecode(project: Path, tmp_path: Path) -> None:
    artifacts = package.build_artifacts(project, tmp_path / "build")
    for folder in package.LAMBDA_FOLDERS:
        with zipfile.ZipFile(artifacts.function_zips[folder]) as archive:
            assert sorted(archive.namelist()) == [f"{folder}/__init__.py", f"{folder}/handler.py"]


def test_zips_are_reproducible(project: Path, tmp_path: Path) -> None:
    first = package.build_artifacts(project, tmp_path / "a").function_zips["rain_inference"].read_bytes()
    second = package.build_artifacts(project, tmp_path / "b").function_zips["rain_inference"].read_bytes()
    assert first == second


def test_the_model_archive_is_copied_and_the_bundle_holds_what_the_core_installs(
    project: Path, tmp_path: Path,
) -> None:
    artifacts = package.build_artifacts(project, tmp_path / "build")
    assert artifacts.model_archive.read_bytes() == b"model-bytes"
    with tarfile.open(artifacts.bundle) as bundle:
        names = set(bundle.getnames())
    assert {"Makefile", "requirements.txt", "simcore/placeholder.txt", "group/placeholder.txt",
            "lambdas/rain_inference/rain_inference/handler.py", str(package.MODEL_ARCHIVE)} <= names
    assert not any(name.endswith(".pyc") for name in names)


def test_a_missing_model_says_to_run_make_model(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    (project / package.MODEL_ARCHIVE).unlink()
    assert package.main(["--project-root", str(project), "--out", str(tmp_path / "build")]) == 2
    assert "run `make model` first" in capsys.readouterr().err


def test_the_printed_commands_package_and_deploy_the_group_with_its_model(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    arguments = ["--project-root", str(project), "--out", str(tmp_path / "build"), "--bucket", "my-artifacts",
                 "--stack-name", "rain", "--region", "eu-west-1"]
    assert package.main(arguments) == 0
    printed = capsys.readouterr().out
    assert f"aws cloudformation package --template-file {project / package.GROUP_TEMPLATE}" in printed
    assert "--capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND" in printed
    assert "--parameter-overrides ModelS3Uri=s3://my-artifacts/rain-model.tar.gz" in printed
    assert "python -m group.setup --stack rain --region eu-west-1" in printed
