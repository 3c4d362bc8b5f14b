"""`simcore group deploy|status|cancel --standin`: the commands a user types, against the stand-in's jobs (boto3
against its control plane, the bundle to its local AWS's S3); and their one-line errors."""

from __future__ import annotations

import json

import boto3
from conftest import REPO_ROOT

from simcore.cli.main import main
from simcore.cloud.jobs_standin import read_jobs_settings, start_jobs

FLEET = REPO_ROOT / "tests" / "fixtures" / "fleet" / "group.yaml"


def test_deploy_status_and_cancel_from_the_command_line(cloud, moto_server, tmp_path, capsys):
    jobs = start_jobs(cloud, moto_server)
    try:
        settings = read_jobs_settings(cloud.state_dir)
        assert oct((cloud.state_dir / "jobs.json").stat().st_mode & 0o777) == "0o600"
        iot = boto3.client("iot", region_name="us-east-1", endpoint_url=moto_server,
                           aws_access_key_id="AKIATEST", aws_secret_access_key="x")
        iot.create_thing(thingName="cli-fleet-1")
        bundle = tmp_path / "b.zip"
        assert main(["bundle", str(FLEET), "--param", "GroupVersion=5", "-o", str(bundle)]) == 0
        standin = ["--standin", str(cloud.state_dir)]
        assert main(["group", "deploy", str(bundle), "--targets", "cli-fleet-1", "--job-id", "cli-job",
                     "--rollout", "50%/min", "--abort-on-failure-rate", "20", *standin]) == 0
        assert "job cli-job: group version" in capsys.readouterr().out
        s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_server,
                          aws_access_key_id="AKIATEST", aws_secret_access_key="x")
        version = json.loads(jobs.model.job("cli-job").document)["groupVersionId"]
        assert s3.get_object(Bucket=settings["bucket"], Key=f"bundles/{version}.zip")["Body"].read() == \
            bundle.read_bytes()
        described = jobs.model.describe_job("cli-job")
        assert described["jobExecutionsRolloutConfig"] == {"maximumPerMinute": 1}
        assert described["abortConfig"]["criteriaList"][0]["thresholdPercentage"] == 20
        assert main(["group", "status", "cli-job", *standin]) == 0
        shown = capsys.readouterr().out
        assert "job cli-job: IN_PROGRESS" in shown and "cli-fleet-1" in shown and "QUEUED" in shown
        assert main(["group", "cancel", "cli-job", *standin]) == 0
        assert main(["group", "status", "cli-job", "--watch", *standin]) == 0  # returns: the job has ended
        watched = capsys.readouterr().out
        assert "cli-fleet-1" in watched and "CANCELED" in watched and "job cli-job: CANCELED" in watched
        assert main(["group", "status", "cli-job", "--json", *standin]) == 0
        status = json.loads(capsys.readouterr().out)
        assert status["status"] == "CANCELED" and status["things"][0]["status"] == "CANCELED"
        assert main(["group", "status", "no-such-job", *standin]) == 1
        assert "ResourceNotFoundException" in capsys.readouterr().err
        assert main(["group", "deploy", str(bundle), "--targets", "no-such-thing", *standin]) == 1
        assert "no thing or thing group named no-such-thing" in capsys.readouterr().err
        assert main(["group", "deploy", str(bundle), "--targets", "cli-fleet-1", "--rollout", "fast", *standin]) == 3
        error = capsys.readouterr().err
        assert error.startswith("simcore: --rollout 'fast'") and error.count("\n") == 1
    finally:
        jobs.stop()


def test_fleet_commands_say_what_they_miss(tmp_path, capsys):
    assert main(["group", "status", "j", "--standin", str(tmp_path)]) == 3
    assert "simcore cloud start --jobs" in capsys.readouterr().err
    assert main(["group", "status", "j"]) == 3
    assert "--bucket" in capsys.readouterr().err
    assert main(["run", "--jobs", "--root", str(tmp_path / "core")]) == 3
    assert "give --config" in capsys.readouterr().err
    assert main(["fleet", "down", "--fleet-dir", str(tmp_path / "none")]) == 3
    assert "no fleet is up" in capsys.readouterr().err
