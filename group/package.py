"""`make package`: the group's deployable artifacts in build/, and the commands that deploy them.

- one zip per Lambda folder (its code root, as CodeUri names it), byte-for-byte reproducible, so an
  unchanged function gets the same S3 key from `aws cloudformation package`;
- the model archive the ML resource points at (`make model` builds it);
- rain-edge-bundle.tar.gz: simcore, the Lambdas, the templates and group/, for the EC2 core stack.
The Lambdas' third-party packages (greengrasssdk, bme680, numpy) are installed on the core, as a v1 core
had them system-wide; the zips hold only the functions' own code.

    python -m group.package [--out build] [--bucket NAME] [--stack-name NAME] [--region REGION]
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import tarfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LAMBDA_FOLDERS = ("sensor_to_shadow", "rain_inference", "reading_to_shadow")
MODEL_ARCHIVE = Path("resources/rain_model/dist/rain-model.tar.gz")
GROUP_TEMPLATE = Path("cloudformation/greengrass-group.yaml")
CORE_TEMPLATE = Path("cloudformation/greengrass-core-ec2.yaml")
BUNDLE_CONTENTS = ("simcore", "lambdas", "group", "cloudformation", "requirements.txt", "requirements-dev.txt",
                   "pyproject.toml", "Makefile", "README.md", str(MODEL_ARCHIVE))
# Build and editor leftovers that never belong in an artifact.
EXCLUDED_NAMES = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".DS_Store"}
EXCLUDED_SUFFIXES = (".pyc", ".pyo")
# A fixed timestamp (the zip format's earliest) keeps archives reproducible.
FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class PackageError(Exception):
    """An artifact cannot be built; the message says what is missing and how to make it."""


@dataclass(frozen=True)
class Artifacts:
    """What `build_artifacts` wrote."""

    function_zips: dict[str, Path]
    model_archive: Path
    bundle: Path


def artifact_files(folder: Path) -> Iterator[Path]:
    """The files under `folder` that belong in an artifact, in a stable order."""
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part in EXCLUDED_NAMES for part in relative.parts) or path.suffix in EXCLUDED_SUFFIXES:
            continue
        if path.is_file():
            yield path


def zip_function(folder: Path, destination: Path) -> Path:
    """Zip a Lambda's code root so the handler's package sits at the top of the archive."""
    if not folder.is_dir():
        raise PackageError(f"Lambda folder {folder} does not exist")
    files = list(artifact_files(folder))
    if not files:
        raise PackageError(f"Lambda folder {folder} holds no files")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            entry = zipfile.ZipInfo(path.relative_to(folder).as_posix(), date_time=FIXED_ZIP_TIME)
            entry.external_attr = 0o100644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, path.read_bytes())
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.write_bytes(buffer.getvalue())
    return destination


def bundle_project(project_root: Path, destination: Path) -> Path:
    """A tar.gz of what the EC2 core needs to install and run simcore with the group."""
    with tarfile.open(destination, "w:gz", format=tarfile.PAX_FORMAT) as archive:
        for name in BUNDLE_CONTENTS:
            source = project_root / name
            if not source.exists():
                raise PackageError(f"{source} is missing from the project; the bundle needs it")
            paths = [source] if source.is_file() else list(artifact_files(source))
            for path in paths:
                info = archive.gettarinfo(str(path), arcname=path.relative_to(project_root).as_posix())
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                info.mtime = 0
                with path.open("rb") as content:
                    archive.addfile(info, content)
    return destination


def build_artifacts(project_root: Path, out_dir: Path) -> Artifacts:
    """Zip the Lambdas, copy the model archive, bundle the project; all into out_dir."""
    model = project_root / MODEL_ARCHIVE
    if not model.is_file():
        raise PackageError(f"{model} is missing: run `make model` first (it trains and exports the model)")
    out_dir.mkdir(parents=True, exist_ok=True)
    zips = {name: zip_function(project_root / "lambdas" / name, out_dir / f"{name}.zip") for name in LAMBDA_FOLDERS}
    model_copy = Path(shutil.copyfile(model, out_dir / model.name))
    bundle = bundle_project(project_root, out_dir / "rain-edge-bundle.tar.gz")
    return Artifacts(function_zips=zips, model_archive=model_copy, bundle=bundle)


def deploy_commands(
    artifacts: Artifacts, *, project_root: Path, bucket: str, stack_name: str, region: str,
) -> list[str]:
    """The AWS CLI commands that upload the artifacts and deploy both stacks, in order."""
    packaged = artifacts.bundle.parent / "greengrass-group.packaged.yaml"
    model_uri = f"s3://{bucket}/{artifacts.model_archive.name}"
    bundle_uri = f"s3://{bucket}/{artifacts.bundle.name}"
    return [
        f"aws s3 cp {artifacts.model_archive} {model_uri} --region {region}",
        f"aws s3 cp {artifacts.bundle} {bundle_uri} --region {region}",
        f"aws cloudformation package --template-file {project_root / GROUP_TEMPLATE} --s3-bucket {bucket}"
        f" --output-template-file {packaged} --region {region}",
        f"aws cloudformation deploy --template-file {packaged} --stack-name {stack_name}"
        f" --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND --region {region}"
        f" --parameter-overrides ModelS3Uri={model_uri}",
        f"python -m group.setup --stack {stack_name} --region {region}"
        f" --out {artifacts.bundle.parent / 'greengrass-setup'}",
        f"aws cloudformation deploy --template-file {project_root / CORE_TEMPLATE} --stack-name {stack_name}-core"
        f" --capabilities CAPABILITY_IAM --region {region} --parameter-overrides SshCidr=<your-ip>/32"
        f" KeyName=<key-pair> BundleS3Uri={bundle_uri} ModelS3Uri={model_uri} GroupStackName={stack_name}",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Build the artifacts and print the deploy commands; 2 with a message when something is missing."""
    parser = argparse.ArgumentParser(prog="python -m group.package", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "build")
    parser.add_argument("--project-root", type=Path, default=PROJECT_ROOT)
    parser.add_argument("--bucket", default="<artifact-bucket>", help="S3 bucket for code, model and bundle")
    parser.add_argument("--stack-name", default="rain-edge")
    parser.add_argument("--region", default="<region>")
    arguments = parser.parse_args(argv)
    try:
        artifacts = build_artifacts(arguments.project_root, arguments.out)
    except (PackageError, OSError) as error:
        print(f"group.package: {error}", file=sys.stderr)
        return 2
    for name, path in artifacts.function_zips.items():
        print(f"{name}: {path}")
    print(f"model: {artifacts.model_archive}\nbundle: {artifacts.bundle}\n\nto deploy:")
    for command in deploy_commands(artifacts, project_root=arguments.project_root, bucket=arguments.bucket,
                                   stack_name=arguments.stack_name, region=arguments.region):
        print(f"  {command}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
