"""A deployment job on the core: the bundle a job document names, downloaded, verified, deployed beside the
running version and swapped in, or rolled back with the reason.

The job document (`simcore group deploy` writes it):
`{"operation": "simcore-group-deploy", "groupVersionId": ..., "bundle": {"url": ..., "sha256": ..., "size": ...}}`,
with `url` a presigned S3 URL (IoT Jobs substitutes `${aws:iot:s3-presigned-url:...}` when the core fetches it).

Steps, each a `statusDetails` `step` on failure: the group version already running → SUCCEEDED at once, without
redeploying; download (at most the bundle's declared size, itself at most BUNDLE_MAX_BYTES) and SHA-256 check;
`open_bundle` (the archive rules, each file's checksum); `simcore deploy` in a child process (a new numbered
version on disk, `current` swapped atomically, `previous` kept; the template machinery stays out of the
running core); the swap of the running Lambdas (`RunningCore.swap`), which rolls back
to the previous version when the new one does not run. A cancellation seen before the swap stops the job and
puts the previous version back as current.

A swap in progress is recorded in `<root>/var/swap.json`; `recover_interrupted_swap` (run by `simcore run`
before it loads the deployment) puts the previous version back when that file survives a crash (kill -9 in the
middle of a swap), so a core always comes back on a whole version that ran, and the job is then done again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from simcore.cloud.jobs_agent import JobOutcome, JobRun
from simcore.defaults import BUNDLE_MAX_BYTES
from simcore.errors import DeployError, SimcoreError
from simcore.private import private_dir

OPERATION = "simcore-group-deploy"
SWAP_FILE = Path("var") / "swap.json"
DOWNLOAD_TIMEOUT_S = 60.0
DEPLOY_TIMEOUT_S = 600.0

log = logging.getLogger(__name__)


def _failed(step: str, reason: str) -> JobOutcome:
    return JobOutcome("FAILED", {"step": step, "reason": reason})


def group_version_of(deployment_directory: Path) -> str | None:
    """The group version id the deployment in `deployment_directory` was made from (None: not from a bundle)."""
    try:
        return json.loads((deployment_directory / "deployment.json").read_text()).get("GroupVersionId")
    except (OSError, ValueError):
        return None


def download(url: str, target: Path, expected_sha256: str, size: int) -> None:
    """Fetch `url` into `target`, at most `size` bytes, and check its SHA-256; DeployError otherwise."""
    import urllib.request  # on a job only: a core without one never loads the HTTP client

    if size > BUNDLE_MAX_BYTES:
        raise DeployError(f"the bundle declares {size} bytes; a core takes at most {BUNDLE_MAX_BYTES}")
    if not url.startswith(("https://", "http://127.0.0.1", "http://localhost")):
        raise DeployError("the bundle URL must be https (or a loopback stand-in)")
    digest = hashlib.sha256()
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, open(target, "wb") as out:
            while chunk := response.read(1024 * 1024):
                received += len(chunk)
                if received > size:
                    raise DeployError(f"the bundle is larger than the {size} bytes the job declares")
                digest.update(chunk)
                out.write(chunk)
    except OSError as error:
        raise DeployError(f"cannot download the bundle: {error}") from None
    if received != size or digest.hexdigest() != expected_sha256:
        raise DeployError(f"checksum mismatch: the bundle downloaded ({received} bytes, sha256 "
                          f"{digest.hexdigest()[:12]}...) is not the one the job names ({size} bytes, sha256 "
                          f"{expected_sha256[:12]}...)")


def recover_interrupted_swap(root: Path) -> int | None:
    """Put the previous version back when a swap was interrupted (its record survived); the number now current."""
    record_path = Path(root) / SWAP_FILE
    if not record_path.exists():
        return None
    try:
        record = json.loads(record_path.read_text())
    except ValueError:
        record = {}
    current = Path(root) / "current"
    number = None
    if current.is_symlink() and Path(os.readlink(current)).name != str(record.get("from")):
        from simcore.deploy.deployment import rollback  # only after a crash: a running core never loads it

        number = rollback(Path(root)).number
        log.warning("a swap from deployment %s was interrupted: deployment %s is current again",
                    record.get("from"), number)
    record_path.unlink(missing_ok=True)
    return number


class DeploymentJobs:
    """The jobs agent's handler for one `RunningCore`."""

    def __init__(self, running: Any, *, settle_s: float | None = None):
        self.running = running
        self.settle_s = settle_s

    def __call__(self, run: JobRun) -> JobOutcome:
        """Do the job; its outcome."""
        document = run.document
        if document.get("operation") != OPERATION:
            return JobOutcome("REJECTED", {"reason": f"not a {OPERATION} job"})
        bundle = document.get("bundle")
        wanted = document.get("groupVersionId")
        if not isinstance(bundle, dict) or not isinstance(wanted, str):
            return JobOutcome("REJECTED", {"reason": "the job document names no bundle or groupVersionId"})
        deployment = self.running.deployment
        if group_version_of(deployment.directory) == wanted:
            return JobOutcome("SUCCEEDED", {"groupVersionId": wanted, "deployment": str(deployment.number),
                                            "detail": "already running"})
        work = private_dir(deployment.root / "var" / "jobs") / run.job_id
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        try:
            return self._deploy(run, bundle, wanted, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _deploy(self, run: JobRun, bundle: dict[str, Any], wanted: str, work: Path) -> JobOutcome:
        from simcore.deploy.bundle import open_bundle  # on the first job only: the template code is heavy

        try:
            download(str(bundle.get("url")), work / "bundle.zip", str(bundle.get("sha256")), int(bundle.get("size", 0)))
            opened = open_bundle(work / "bundle.zip", work / "bundle")
        except (SimcoreError, ValueError) as error:
            return _failed("verify", str(error))
        if opened.group_version_id != wanted:
            return _failed("verify", f"the bundle is group version {opened.group_version_id}, the job names {wanted}")
        if run.cancelled.is_set():
            return JobOutcome("REJECTED", {"reason": "cancelled"})
        previous = self.running.deployment
        root = previous.root
        record = root / SWAP_FILE
        # Before the new version can become current: a crash from here on finds the record.
        record.write_text(json.dumps({"from": previous.number, "job": run.job_id}))
        try:
            try:
                new = self._deploy_beside(opened, root)
            except SimcoreError as error:
                return _failed("deploy", error.describe())
            if run.cancelled.is_set():
                from simcore.deploy.deployment import rollback

                rollback(root)
                return JobOutcome("REJECTED", {"reason": "cancelled"})
            settle = {} if self.settle_s is None else {"settle_s": self.settle_s}
            reason = self.running.swap(new, cancelled=run.cancelled, **settle)
        finally:
            record.unlink(missing_ok=True)
        if reason is not None:
            return _failed("start", f"{reason}; rolled back to deployment {previous.number}")
        return JobOutcome("SUCCEEDED", {"groupVersionId": wanted, "deployment": str(new.number)})

    def _deploy_beside(self, opened: Any, root: Path) -> Any:
        """`simcore deploy` of the bundle as this core's thing, in a child process: the template machinery
        (cfn-lint, 60 MB) is loaded there and leaves with it, never in the running core."""
        from simcore.deploy.record import load_deployment

        manifest = opened.manifest
        thing = self.running.core_config.core_thing.name
        command = [sys.executable, "-m", "simcore", "deploy", str(opened.template_path), "--root", str(root),
                   "--group-version-id", opened.group_version_id, "--region", manifest["region"],
                   "--account-id", manifest["accountId"], "--stack-name", manifest["stackName"]]
        for name, value in sorted(opened.parameters_for(thing).items()):
            command += ["--param", f"{name}={value}"]
        for runtime, path in sorted(self.running.options.interpreters.items()):
            command += ["--runtime", f"{runtime}={path}"]
        package_parent = str(Path(__file__).resolve().parents[2])
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=DEPLOY_TIMEOUT_S,
                                    env={**os.environ, "PYTHONPATH": package_parent}, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise DeployError(f"the deployment took more than {DEPLOY_TIMEOUT_S:g} s") from None
        if result.returncode != 0:
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            reason = lines[-1] if lines else f"simcore deploy exited with code {result.returncode}"
            raise DeployError(reason.removeprefix("simcore: "))
        deployment = load_deployment(root)
        if group_version_of(deployment.directory) != opened.group_version_id:
            raise DeployError("the new deployment is not current after `simcore deploy`")
        return deployment
