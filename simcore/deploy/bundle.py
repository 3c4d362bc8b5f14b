"""A group bundle: everything a remote core needs to deploy a group, in one deterministic zip.

```
bundle.zip
  manifest.json            format, groupVersionId, template, parameters, region/account/stack, files (sha256)
  files/<relative path>    the template, each function's code, each local ML resource
```
A template that declares `ThingName` gets each core's own thing name there when that core deploys it
(`thingParameter` in the manifest): one bundle serves a whole fleet, every core its own thing.
Paths under `files/` keep their places relative to one another (relative to the nearest folder above the
template and every file packed), so a template's `CodeUri: ../lambdas/x` and a parameter such as
`ModelS3Uri=../resources/model.tar.gz` still resolve inside the bundle; a parameter that named an absolute
local path is rewritten to the bundled copy's path relative to the template. `s3://` and SageMaker resources
stay URIs: the core fetches them itself.

Deterministic: entries sorted, every timestamp 1980-01-01, modes 0644/0755 only, JSON with sorted keys, one
compression level, so the same inputs give the same bytes. The group version id is the SHA-256 of the
manifest's content without it (32 hex digits): the same group gives the same id on every machine.

`open_bundle` extracts a bundle with the archive rules deploy enforces (`simcore.deploy.archive`: no
traversal, no links, size and ratio limits), then checks every file against the manifest's checksums and
refuses a file the manifest does not list.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simcore.checksums import file_sha256
from simcore.defaults import BUNDLE_MAX_BYTES
from simcore.deploy.archive import ExtractionLimits, extract_archive
from simcore.deploy.fetch import local_source
from simcore.errors import DeployError

MANIFEST = "manifest.json"
FILES = "files"
BUNDLE_FORMAT = 1
THING_PARAMETER = "ThingName"
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_SKIPPED = ("__pycache__", ".pytest_cache")
BUNDLE_LIMITS = ExtractionLimits(max_member_bytes=BUNDLE_MAX_BYTES, max_total_bytes=BUNDLE_MAX_BYTES,
                                 total_limit=f"a bundle holds at most {BUNDLE_MAX_BYTES} bytes unpacked")


@dataclass(frozen=True)
class OpenedBundle:
    """A bundle extracted and verified: where its template lies and the parameters to deploy it with."""

    manifest: dict[str, Any]
    directory: Path

    @property
    def group_version_id(self) -> str:
        """The group version this bundle deploys."""
        return str(self.manifest["groupVersionId"])

    @property
    def template_path(self) -> Path:
        """The bundled template."""
        return self.directory / FILES / self.manifest["template"]

    def parameters_for(self, thing: str) -> dict[str, str]:
        """The template parameters to deploy the bundle with on the core of `thing`."""
        parameters = dict(self.manifest["parameters"])
        if self.manifest.get("thingParameter"):
            parameters[self.manifest["thingParameter"]] = thing
        return parameters


def _walk(path: Path) -> Iterator[Path]:
    """Regular files under `path` (or `path` itself), sorted, without caches and compiled files."""
    if path.is_file():
        yield path
        return
    for entry in sorted(path.rglob("*")):
        if any(part in _SKIPPED for part in entry.relative_to(path).parts) or entry.suffix == ".pyc":
            continue
        if entry.is_symlink():
            raise DeployError(f"{entry} is a symbolic link; a bundle holds regular files only")
        if entry.is_file():
            yield entry


def _local_inputs(template_path: Path, parameters: Mapping[str, str], template_kw: Mapping[str, Any]
                  ) -> tuple[list[Path], dict[str, Path], dict[str, Any]]:
    """The paths to pack (the template first), the ML resources' local sources by parameter name, and the
    resolution's identity (region, account, stack)."""
    # Here, not at the top: a core opening a bundle (`open_bundle`) must not load the template machinery.
    from simcore.template.loader import resolve_template

    loaded = resolve_template(template_path, parameters, **template_kw)
    group = loaded.group
    paths = [template_path]
    for function in group.functions:
        paths.append(Path(function.code_dir).resolve())
    by_parameter: dict[str, Path] = {}
    for resource in group.resources:
        if resource.kind != "ml_s3":
            continue
        local = local_source(resource.source, template_path.parent)
        if local is None:
            continue
        if not local.exists():
            raise DeployError(f"resource {resource.id}: {local} does not exist; the bundle cannot include it")
        paths.append(local.resolve())
        for name, value in parameters.items():
            if value == resource.source:
                by_parameter[name] = local.resolve()
    identity = {"region": group.region, "accountId": group.account_id, "stackName": loaded.resolved.stack_name,
                # Each core of a fleet deploys the group as its own thing: it fills this parameter with its name.
                "thingParameter": THING_PARAMETER if THING_PARAMETER in loaded.parameters else None}
    return paths, by_parameter, identity


def build_bundle(template_path: str | Path, parameters: Mapping[str, str] | None, output: str | Path,
                 **template_kw: Any) -> dict[str, Any]:
    """Write the bundle of the group `template_path` defines to `output`; returns its manifest.

    `template_kw` goes to the template loader (region, account_id, stack_name). Raises TemplateError for a bad
    template, DeployError when a file to pack is missing or is a link.
    """
    template_path = Path(template_path).resolve()
    given = dict(parameters or {})
    paths, by_parameter, identity = _local_inputs(template_path, given, template_kw)
    base = Path(os.path.commonpath([template_path.parent, *(p if p.is_dir() else p.parent for p in paths)]))
    files: dict[str, Path] = {}
    for path in paths:
        for file in _walk(path):
            files[file.relative_to(base).as_posix()] = file
    for name, local in by_parameter.items():  # absolute paths would name the publisher's machine
        given[name] = os.path.relpath(local, template_path.parent)
    manifest: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "template": template_path.relative_to(base).as_posix(),
        "parameters": dict(sorted(given.items())),
        **identity,
        "files": {name: file_sha256(files[name]) for name in sorted(files)},
    }
    manifest["groupVersionId"] = _canonical_digest(manifest)
    output = Path(output)
    temporary = output.with_name(f".{output.name}.partial")
    with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        _add(archive, MANIFEST, _canonical(manifest), executable=False)
        for name in sorted(files):
            source = files[name]
            _add(archive, f"{FILES}/{name}", source.read_bytes(), executable=bool(source.stat().st_mode & 0o111))
    os.replace(temporary, output)
    return manifest


def _canonical(data: Mapping[str, Any]) -> bytes:
    return (json.dumps(data, sort_keys=True, indent=1) + "\n").encode()


def _canonical_digest(manifest: Mapping[str, Any]) -> str:
    content = {key: value for key, value in manifest.items() if key != "groupVersionId"}
    return hashlib.sha256(_canonical(content)).hexdigest()[:32]


def _add(archive: zipfile.ZipFile, name: str, data: bytes, *, executable: bool) -> None:
    info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = ((0o100755 if executable else 0o100644) & 0xFFFF) << 16
    info.create_system = 3  # unix, whatever the machine: the modes above are unix modes
    archive.writestr(info, data, compresslevel=6)


def open_bundle(bundle_path: str | Path, destination: str | Path,
                limits: ExtractionLimits = BUNDLE_LIMITS) -> OpenedBundle:
    """Extract `bundle_path` into `destination` (which must not exist) and verify it against its manifest.

    DeployError names what is wrong: not a zip, an unsafe member, no or a bad manifest, a file whose
    checksum differs, a file the manifest does not list, or a group version id that does not match.
    """
    destination = Path(destination)
    extract_archive(Path(bundle_path), destination, limits)
    try:
        manifest = json.loads((destination / MANIFEST).read_text())
    except FileNotFoundError:
        raise DeployError("the bundle has no manifest.json; make it with `simcore bundle`") from None
    except ValueError as error:
        raise DeployError(f"the bundle's manifest.json is not JSON: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise DeployError(f"the bundle's manifest.json is not a format {BUNDLE_FORMAT} simcore manifest")
    listed = manifest.get("files")
    if not isinstance(listed, dict) or manifest.get("template") not in listed:
        raise DeployError("the bundle's manifest lists no files or not its template")
    present = {path.relative_to(destination / FILES).as_posix()
               for path in (destination / FILES).rglob("*") if path.is_file()} if (destination / FILES).is_dir() \
        else set()
    for name in sorted(present - set(listed)):
        raise DeployError(f"the bundle holds {name}, which its manifest does not list")
    for name, expected in sorted(listed.items()):
        path = destination / FILES / name
        if not path.is_file():
            raise DeployError(f"the bundle's manifest lists {name}, which the bundle does not hold")
        actual = file_sha256(path)
        if actual != expected:
            raise DeployError(f"checksum mismatch for {name}: manifest {expected[:12]}..., file {actual[:12]}...")
    if _canonical_digest(manifest) != manifest.get("groupVersionId"):
        raise DeployError("the bundle's groupVersionId does not match its manifest's content")
    return OpenedBundle(manifest, destination)
