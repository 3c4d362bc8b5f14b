"""simcore.deploy.deployment with local artifacts: the /greengrass/ggc-like layout, versions, status and rollback."""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest

from simcore.deploy.deployment import deploy, rollback
from simcore.deploy.record import group_from_json, group_to_json, load_deployment, read_status
from simcore.errors import DeployError, TemplateError
from simcore.template.loader import load_group

FIXTURES = Path(__file__).parent / "fixtures" / "templates"
SENSOR_ALIAS = "arn:aws:lambda:us-east-1:123456789012:function:rain-edge-sensor-to-shadow:live"


@pytest.fixture
def workspace(tmp_path) -> Path:
    """A copy of the fixture templates with models/tiny.tar.gz built from models/tiny."""
    work = tmp_path / "work"
    shutil.copytree(FIXTURES, work)
    with tarfile.open(work / "models" / "tiny.tar.gz", "w:gz") as tar:
        tar.add(work / "models" / "tiny", arcname=".")
    return work


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / "ggc"


def test_deployment_is_laid_out_like_ggc(workspace, root):
    deployment = deploy(workspace / "sam_group.yaml", None, root)
    folder = root / "deployments" / "1"
    assert deployment.number == 1
    assert deployment.directory == folder.resolve()
    assert os.readlink(root / "current") == "deployments/1"
    assert (folder / "template" / "sam_group.yaml").read_bytes() == (workspace / "sam_group.yaml").read_bytes()
    assert (folder / "lambda" / "rain-edge-sensor-to-shadow" / "sensor" / "handler.py").is_file()
    assert json.loads((folder / "resources" / "rain-model" / "model.json").read_text()) == {"version": "fixture-1"}
    config = json.loads((folder / "config" / "config.json").read_text())
    assert config["coreThing"]["thingName"] == "rain-core"
    assert config["coreThing"]["thingArn"] == deployment.group.core.thing_arn
    assert json.loads((folder / "config" / "parameters.json").read_text())["ThingName"] == "rain-core"
    assert (root / "var" / "log" / "system").is_dir()
    assert (root / "var" / "log" / "user").is_dir()


def test_deployed_group_points_at_the_deployed_code(workspace, root):
    deployment = deploy(workspace / "sam_group.yaml", None, root)
    sensor = deployment.group.function(SENSOR_ALIAS)
    assert sensor.code_dir == deployment.directory / "lambda" / "rain-edge-sensor-to-shadow"
    assert deployment.function_dirs[SENSOR_ALIAS] == sensor.code_dir
    assert deployment.resource_dirs == {"rain-model": deployment.directory / "resources" / "rain-model"}


def test_group_json_rebuilds_the_same_group(workspace, root):
    deploy(workspace / "sam_group.yaml", None, root)
    loaded = load_deployment(root)
    original = load_group(workspace / "sam_group.yaml")
    # Everything but where the code lives is what the template says.
    assert [function.arn for function in loaded.group.functions] == [function.arn for function in original.functions]
    assert loaded.group.subscriptions == original.subscriptions
    assert loaded.group.resources == original.resources
    assert loaded.group.connectors == original.connectors
    assert loaded.group.cores == original.cores
    assert group_from_json(json.loads(json.dumps(group_to_json(original)))) == original


def test_missing_local_device_is_a_warning_in_the_status(workspace, root):
    deployment = deploy(workspace / "sam_group.yaml", {"SensorDevicePath": "/dev/i2c-97"}, root)
    status = read_status(root)
    assert status["DeploymentStatus"] == "Success"
    assert status["DeploymentId"] == deployment.id
    assert status["ErrorMessage"] is None
    assert any("/dev/i2c-97 does not exist" in warning for warning in status["Warnings"])
    assert deployment.warnings == tuple(status["Warnings"])


def test_redeploy_swaps_current_and_keeps_the_previous(workspace, root):
    first = deploy(workspace / "sam_group.yaml", None, root)
    second = deploy(workspace / "sam_group.yaml", {"ThingName": "second"}, root)
    assert second.number == 2
    assert second.id != first.id
    assert os.readlink(root / "current") == "deployments/2"
    assert os.readlink(root / "previous") == "deployments/1"
    assert load_deployment(root).group.core.thing_name == "second"
    assert load_deployment(root, "previous").group.core.thing_name == "rain-core"


def test_rollback_restores_the_previous_and_can_be_undone(workspace, root):
    first = deploy(workspace / "sam_group.yaml", None, root)
    second = deploy(workspace / "sam_group.yaml", {"ThingName": "second"}, root)
    restored = rollback(root)
    assert restored.id == first.id
    assert load_deployment(root).group.core.thing_name == "rain-core"
    status = read_status(root)
    assert (status["DeploymentId"], status["DeploymentType"]) == (first.id, "Rollback")
    assert rollback(root).id == second.id


def test_rollback_without_a_previous_deployment_is_refused(workspace, root):
    deploy(workspace / "sam_group.yaml", None, root)
    with pytest.raises(DeployError, match="no previous deployment"):
        rollback(root)


def test_failed_deploy_keeps_current_and_records_the_failure(workspace, root):
    good = deploy(workspace / "sam_group.yaml", None, root)
    with pytest.raises(DeployError, match="does not exist"):
        deploy(workspace / "sam_group.yaml", {"ModelS3Uri": "models/absent.tar.gz"}, root)
    status = read_status(root)
    assert status["DeploymentStatus"] == "Failure"
    assert "models/absent.tar.gz" in status["ErrorMessage"]
    assert load_deployment(root).id == good.id
    assert not [entry for entry in (root / "deployments").iterdir() if entry.name.startswith(".staging")]


def test_template_error_is_recorded_as_a_failure(workspace, root):
    with pytest.raises(TemplateError, match="Parameter 'ThingName' must match pattern"):
        deploy(workspace / "sam_group.yaml", {"ThingName": "not allowed!"}, root)
    status = read_status(root)
    assert status["DeploymentStatus"] == "Failure"
    assert "Parameter 'ThingName' must match pattern" in status["ErrorMessage"]
    assert not (root / "current").exists()


def test_hostile_model_archive_fails_the_deployment(workspace, root):
    corpus = Path(__file__).parent / "corpus" / "archives" / "traversal.tar"
    with pytest.raises(DeployError, match=r"resource rain-model: archive member '../evil.txt': path traversal"):
        deploy(workspace / "sam_group.yaml", {"ModelS3Uri": f"file://{corpus}"}, root)
    assert not (root / "deployments" / "evil.txt").exists()


def test_model_that_is_not_an_archive_is_refused(workspace, root):
    (workspace / "models" / "model.bin").write_bytes(b"\x00" * 64)
    with pytest.raises(DeployError, match="is not a tar or zip archive"):
        deploy(workspace / "sam_group.yaml", {"ModelS3Uri": "models/model.bin"}, root)


def test_model_folder_and_file_uri_sources(workspace, root):
    deployment = deploy(workspace / "sam_group.yaml", {"ModelS3Uri": "models/tiny"}, root)
    assert (deployment.resource_dirs["rain-model"] / "model.json").is_file()
    uri = (workspace / "models" / "tiny.tar.gz").as_uri()
    deployment = deploy(workspace / "sam_group.yaml", {"ModelS3Uri": uri}, root)
    assert (deployment.resource_dirs["rain-model"] / "model.json").is_file()


def test_unsupported_model_scheme_is_named(workspace, root):
    with pytest.raises(DeployError, match="unsupported model URI scheme 'https'"):
        deploy(workspace / "sam_group.yaml", {"ModelS3Uri": "https://example.com/model.tar.gz"}, root)


def test_old_deployments_are_pruned_but_current_and_previous_stay(workspace, root):
    for _ in range(4):
        deploy(workspace / "sam_group.yaml", None, root, keep=2)
    assert sorted(entry.name for entry in (root / "deployments").iterdir() if entry.name.isdigit()) == ["3", "4"]


def test_zip_code_uri_is_extracted(workspace, root):
    with zipfile.ZipFile(workspace / "sensor.zip", "w") as zipped:
        zipped.write(workspace / "lambdas" / "sensor" / "sensor" / "handler.py", "sensor/handler.py")
    template = (workspace / "sam_group.yaml").read_text().replace("CodeUri: lambdas/sensor", "CodeUri: sensor.zip")
    (workspace / "zip_group.yaml").write_text(template)
    deployment = deploy(workspace / "zip_group.yaml", None, root)
    assert (deployment.function_dirs[SENSOR_ALIAS] / "sensor" / "handler.py").is_file()


def test_one_lambda_under_two_qualifiers_is_copied_once(workspace, root):
    # plain_group.yaml has a secret resource: its value comes from a local file, not Secrets Manager.
    secrets_file = workspace / "secrets.json"
    secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:token-AbCdEf"
    secrets_file.write_text(json.dumps({secret_arn: {"SecretString": "token"}}))
    deployment = deploy(workspace / "plain_group.yaml", {"ThingName": "plain"}, root, secrets_file=secrets_file)
    alias, version = deployment.group.functions
    assert alias.code_dir == version.code_dir
    assert (alias.code_dir / "sensor" / "handler.py").is_file()
    assert deployment.resource_dirs["data"] == Path("/tmp")


def test_load_deployment_without_a_deployment_says_what_to_do(root):
    with pytest.raises(DeployError, match="run `simcore deploy` first"):
        load_deployment(root)


def test_staging_left_by_a_killed_deploy_is_cleaned_up(workspace, root):
    abandoned = root / "deployments" / ".staging-1-killed"
    abandoned.mkdir(parents=True)
    (abandoned / "group.json").write_text("{}")
    deployment = deploy(workspace / "sam_group.yaml", None, root)
    assert deployment.number == 1
    assert not abandoned.exists()


def test_concurrent_deploys_get_distinct_numbers(workspace, root):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(deploy, workspace / "sam_group.yaml", None, root) for _ in range(2)]
        numbers = sorted(future.result().number for future in futures)
    assert numbers == [1, 2]
    assert os.readlink(root / "current") == "deployments/2"
    assert os.readlink(root / "previous") == "deployments/1"
