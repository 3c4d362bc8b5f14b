"""What bench/footprint.py and bench/start_time.py share: the rain group run by `simcore run`, as a user runs it.

- the stand-in cloud (`start_standin`: local CA, mutual-TLS broker, cloud shadow service) in the bench process;
- `cloudformation/greengrass-group.yaml` deployed in replay mode (`SensorSource=replay:JFK`) with the committed
  model resource, each run under a fresh root;
- `python -m simcore run --config <the stand-in's config.json>` as a child process, the Lambdas on the
  Python 3.8 of `.venv-py38` when it exists (as `make demo` runs them), else on simcore's own interpreter;
- a cloud-side subscriber (its own certificate) that timestamps every prediction on `rain/<thing>/inference/output`;
- memory read from `/proc/<pid>/smaps_rollup` (Rss and Pss), and the floors: bare interpreters that only sleep.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

TEMPLATE = REPO_ROOT / "cloudformation" / "greengrass-group.yaml"
MODEL_ARCHIVE = REPO_ROOT / "resources" / "rain_model" / "dist" / "rain-model.tar.gz"
PY38 = REPO_ROOT / ".venv-py38" / "bin" / "python"
THING = "BenchCore"
STATION = "JFK"
# The demo's period; its first reading has a 3 h tendency from the pre-roll, so it is predicted at once.
REPLAY_FROM, REPLAY_TO = "2013-11-01", "2013-12-31"
CONNECT_DEADLINE_S = 30.0
STOP_DEADLINE_S = 30.0
# The floors print this once the interpreter is up, so their memory is read while they sleep.
FLOOR_READY = "ready"


def worker_interpreter() -> str:
    """The Lambdas' interpreter: .venv-py38's Python 3.8 when built, else this one (as simcore falls back)."""
    return str(PY38) if PY38.exists() else sys.executable


def worker_python_label() -> str:
    """Which interpreter runs the workers, for the report."""
    if PY38.exists():
        return "Python 3.8 (.venv-py38)"
    return f"Python {sys.version_info.major}.{sys.version_info.minor} (no .venv-py38 here)"


@dataclass(frozen=True)
class Memory:
    """One process's resident memory (MiB): RSS counts shared pages whole, PSS splits them among sharers."""

    rss: float
    pss: float


def memory(pid: int) -> Memory:
    """Rss and Pss of `pid` from /proc/<pid>/smaps_rollup."""
    fields: dict[str, float] = {}
    with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as rollup:
        for line in rollup:
            name, _, rest = line.partition(":")
            if name in ("Rss", "Pss"):
                fields[name] = int(rest.split()[0]) / 1024  # kB
    return Memory(fields["Rss"], fields["Pss"])


def children(pid: int) -> list[int]:
    """The direct child processes of `pid` (the core's Lambda workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("PPid:") and int(line.split()[1]) == pid:
                found.append(int(entry.name))
    return found


def handler_of(pid: int) -> str:
    """The `--handler` a worker process runs (its cmdline), or '' if it has none."""
    try:
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return ""
    return arguments[arguments.index("--handler") + 1] if "--handler" in arguments[:-1] else ""


def free_port() -> int:
    """A loopback port free right now (the core binds it a moment later; a bench, not a test, takes the risk)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class FloorProcess:
    """A bare interpreter that only sleeps: `python -c 'import time; time.sleep(60)'` (plus a ready line)."""

    def __init__(self, interpreter: str):
        code = f"import sys, time; sys.stdout.write('{FLOOR_READY}\\n'); sys.stdout.flush(); time.sleep(60)"
        self.process = subprocess.Popen([interpreter, "-c", code], stdout=subprocess.PIPE, text=True)
        if self.process.stdout.readline().strip() != FLOOR_READY:
            raise RuntimeError(f"{interpreter} did not start")

    def memory(self) -> Memory:
        return memory(self.process.pid)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


class Predictions:
    """The cloud subscriber: arrival times (monotonic) of the predictions, and of its own probe."""

    def __init__(self, cloud, name: str):
        from simcore.cloud.link import CloudLink

        self.arrivals: list[float] = []
        self.probe_heard = threading.Event()
        self.changed = threading.Condition()
        self.link = CloudLink(cloud.client_settings(name))
        self.link.subscribe(f"rain/{THING}/#", self._on_message)
        self.link.start()
        if not self.link.wait_connected(CONNECT_DEADLINE_S):
            self.link.stop()
            raise TimeoutError("the bench's cloud subscriber did not connect to the stand-in")
        # Subscribed once it hears its own probe: a prediction sent before that would be missed.
        deadline = time.monotonic() + CONNECT_DEADLINE_S
        while not self.probe_heard.is_set():
            if time.monotonic() > deadline:
                self.link.stop()
                raise TimeoutError("the bench's cloud subscriber never heard its own probe")
            self.link.send_now(f"rain/{THING}/bench/probe", b"probe", 1.0)
            self.probe_heard.wait(0.2)

    def _on_message(self, topic: str, _payload: bytes) -> None:
        arrived = time.monotonic()
        if topic.endswith("/bench/probe"):
            self.probe_heard.set()
            return
        if topic.endswith("/inference/output"):
            with self.changed:
                self.arrivals.append(arrived)
                self.changed.notify_all()

    def wait_first(self, timeout_s: float) -> float | None:
        """When the first prediction arrived (monotonic), or None if none within `timeout_s`."""
        with self.changed:
            self.changed.wait_for(lambda: self.arrivals, timeout_s)
            return self.arrivals[0] if self.arrivals else None

    def count_between(self, start: float, end: float) -> int:
        with self.changed:
            return sum(1 for arrived in self.arrivals if start <= arrived < end)

    def stop(self) -> None:
        self.link.stop()


def deploy_rain_group(root: Path, replay_speed: float) -> None:
    """The group template deployed under `root`: replay of JFK at `replay_speed` data hours per second."""
    from simcore.deploy.deployment import deploy

    if not MODEL_ARCHIVE.is_file():
        raise FileNotFoundError(f"{MODEL_ARCHIVE} is missing: build it with `make model`")
    deploy(TEMPLATE, {"ThingName": THING, "ModelS3Uri": str(MODEL_ARCHIVE),
                      "SensorSource": f"replay:{STATION}:{REPLAY_FROM}:{REPLAY_TO}",
                      "ReplaySpeed": f"{replay_speed:g}"}, root)


class CoreProcess:
    """`python -m simcore run` on a deployed root, linked to the stand-in cloud, its output in a file."""

    def __init__(self, root: Path, cloud, log_path: Path, ipc_port: int = 0):
        command = [sys.executable, "-m", "simcore", "run", "--root", str(root), "--config", str(cloud.config_path),
                   "--certs-dir", str(cloud.certs_dir), "--ipc-port", str(ipc_port),
                   "--runtime", f"python3.8={worker_interpreter()}"]
        self.log_path = log_path
        self.log = log_path.open("w")
        self.started = time.monotonic()
        self.process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.process.pid

    def workers(self) -> dict[str, int]:
        """The worker processes by handler (`sensor_to_shadow.handler.function_handler`: pid)."""
        return {handler_of(pid): pid for pid in children(self.pid) if handler_of(pid)}

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"`simcore run` exited {self.process.returncode}; its log ends:\n"
                               + self.log_path.read_text()[-3000:])

    def stop(self) -> None:
        """SIGTERM (a clean stop, as Ctrl-C), then SIGKILL to the whole session if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_DEADLINE_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


def start_cloud(state_dir: Path):
    """The stand-in cloud on a free port."""
    from simcore.cloud.standin import start_standin

    return start_standin(state_dir, 0, THING)
