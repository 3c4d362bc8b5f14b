"""`simcore bundle`: the same inputs give the same bytes; a bundle opens only when every file is the manifest's;
and a crash in the middle of a swap leaves the core on a whole version."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from conftest import REPO_ROOT

from simcore.checksums import file_sha256
from simcore.cli.main import main
from simcore.deploy.bundle import build_bundle, open_bundle
from simcore.deploy.deployment import deploy
from simcore.deploy.record import load_deployment
from simcore.errors import DeployError
from simcore.service.fleet_job import SWAP_FILE, recover_interrupted_swap

RAIN = REPO_ROOT / "cloudformation" / "greengrass-group.yaml"
RAIN_PARAMETERS = {"ModelS3Uri": "../resources/rain_model/dist/rain-model.tar.gz", "SensorSource": "replay:JFK"}
FLEET = REPO_ROOT / "tests" / "fixtures" / "fleet" / "group.yaml"


def test_the_rain_group_bundles_to_the_same_bytes_twice_with_code_model_and_manifest(tmp_path, capsys):
    assert main(["bundle", str(RAIN), "-o", str(tmp_path / "a.zip"),
                 *(f"--param={key}={value}" for key, value in RAIN_PARAMETERS.items())]) == 0
    assert "group version" in capsys.readouterr().out
    second = build_bundle(RAIN, RAIN_PARAMETERS, tmp_path / "b.zip")
    assert file_sha256(tmp_path / "a.zip") == file_sha256(tmp_path / "b.zip")
    names = zipfile.ZipFile(tmp_path / "a.zip").namelist()
    assert names[0] == "manifest.json" and names == ["manifest.json", *sorted(names[1:])]
    assert "files/cloudformation/greengrass-group.yaml" in names
    assert "files/resources/rain_model/dist/rain-model.tar.gz" in names
    assert any(name.startswith("files/lambdas/rain_inference/rain_inference/") for name in names)
    assert not any("__pycache__" in name for name in names)
    assert second["thingParameter"] == "ThingName"
    opened = open_bundle(tmp_path / "a.zip", tmp_path / "open")
    assert opened.group_version_id == second["groupVersionId"]
    assert opened.parameters_for("Pi-7")["ThingName"] == "Pi-7"
    # Another parameter is another group version.
    assert build_bundle(RAIN, {**RAIN_PARAMETERS, "ReplaySpeed": "7"}, tmp_path / "c.zip")["groupVersionId"] \
        != second["groupVersionId"]


def test_an_absolute_model_path_is_packed_and_named_relative_to_the_template(tmp_path):
    model = REPO_ROOT / "resources" / "rain_model" / "dist" / "rain-model.tar.gz"
    manifest = build_bundle(RAIN, {**RAIN_PARAMETERS, "ModelS3Uri": str(model)}, tmp_path / "abs.zip")
    assert manifest["parameters"]["ModelS3Uri"] == "../resources/rain_model/dist/rain-model.tar.gz"


def _rewrite(source: Path, target: Path, change) -> None:
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            data = change(info.filename, old.read(info))
            if data is not None:
                new.writestr(info, data)


@pytest.mark.parametrize(("change", "refusal"), [
    (lambda name, data: data + b"#" if name.endswith("handler.py") else data, "checksum mismatch"),
    (lambda name, data: None if name.endswith("handler.py") else data, "does not hold"),
    (lambda name, data: None if name == "manifest.json" else data, "no manifest"),
    (lambda name, data: data.replace(b'"GroupVersion": "2"', b'"GroupVersion": "3"') if name == "manifest.json"
     else data, "groupVersionId does not match"),
])
def test_a_bundle_that_is_not_its_manifest_is_refused(tmp_path, change, refusal):
    build_bundle(FLEET, {"GroupVersion": "2"}, tmp_path / "good.zip")
    _rewrite(tmp_path / "good.zip", tmp_path / "bad.zip", change)
    with pytest.raises(DeployError, match=refusal):
        open_bundle(tmp_path / "bad.zip", tmp_path / "open")


def test_a_file_the_manifest_does_not_list_is_refused(tmp_path):
    build_bundle(FLEET, {"GroupVersion": "2"}, tmp_path / "good.zip")
    with zipfile.ZipFile(tmp_path / "good.zip", "a") as archive:
        archive.writestr("files/versioned/versioned/extra.py", "print('smuggled')\n")
    with pytest.raises(DeployError, match="does not list"):
        open_bundle(tmp_path / "good.zip", tmp_path / "open")


def test_a_swap_interrupted_by_a_crash_is_undone_at_the_next_start(tmp_path):
    """kill -9 between the new version becoming current and it proving it runs: `simcore run` first puts the
    version that ran back (the swap record survived); without a record nothing changes."""
    root = tmp_path / "core"
    deploy(FLEET, {"GroupVersion": "1"}, root)
    assert recover_interrupted_swap(root) is None
    (root / SWAP_FILE).parent.mkdir(parents=True, exist_ok=True)
    (root / SWAP_FILE).write_text(json.dumps({"from": 1, "job": "j"}))
    deploy(FLEET, {"GroupVersion": "2"}, root)  # the crash came after this
    assert recover_interrupted_swap(root) == 1
    assert load_deployment(root).number == 1 and not (root / SWAP_FILE).exists()
    # A crash before the new version became current: the record names the current one; it stays.
    (root / SWAP_FILE).write_text(json.dumps({"from": 1, "job": "j"}))
    assert recover_interrupted_swap(root) is None and load_deployment(root).number == 1
