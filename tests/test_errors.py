"""One error tree: every simcore error maps to an HTTP status, an exit code and an MQTT answer, and the CLI
shows an expected failure as one line, with the right exit code and no traceback."""

from __future__ import annotations

import importlib
import pkgutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import simcore
from simcore import errors
from simcore.cloud.broker import AmqttBroker, BrokerError, BrokerTLS, MosquittoBroker, installed_mosquitto
from simcore.cloud.ca import LocalCA
from simcore.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_NOT_RUNNING,
    QueueFullError,
    RoutingError,
    ShadowError,
    SimcoreError,
)
from simcore.service.control import ControlRefused, ControlServer, call

REPO = Path(__file__).resolve().parent.parent
CLI_GROUP = REPO / "tests" / "fixtures" / "cli" / "group.yaml"
EXIT_CODES = {EXIT_FAILED, EXIT_BAD_INPUT, EXIT_NOT_RUNNING}


def all_error_classes() -> list[type[SimcoreError]]:
    """Every SimcoreError subclass simcore defines, once all its modules (but the Lambdas' side) are imported."""
    for module in pkgutil.walk_packages(simcore.__path__, "simcore."):
        if ".lambda_side" in module.name or module.name == "simcore.__main__":
            continue
        importlib.import_module(module.name)
    found: list[type[SimcoreError]] = []
    pending = [SimcoreError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return [cls for cls in found if cls.__module__.startswith("simcore.")]


def test_every_error_has_a_string_code_and_the_mapping_attributes():
    classes = all_error_classes()
    # The tree reaches the errors of every part, not only those in errors.py.
    names = {cls.__name__ for cls in classes}
    assert {"IPCError", "BrokerError", "SyncUnavailable", "SyncConflict", "ControlError", "CoreConfigError",
            "ConnectorConfigError", "DemoSetupError", "ReplayPeriodError", "ShadowTopicError"} <= names
    for cls in classes:
        assert isinstance(cls.code, str) and cls.code, cls
        assert isinstance(cls.http_status, int) and 400 <= cls.http_status <= 599, cls
        assert cls.exit_code in EXIT_CODES, cls
        assert callable(cls.to_document), cls


def test_errors_docstring_says_where_each_error_lives():
    for cls in all_error_classes():
        if cls.__module__ != "simcore.errors":
            where = cls.__module__.replace(".", "/") + ".py"
            assert cls.__name__ in errors.__doc__ and where in errors.__doc__, (cls, where)


def test_a_shadow_error_has_a_string_code_and_aws_numeric_code_in_its_document():
    error = ShadowError(404, "No shadow exists with name: nobody", "token-1")
    assert (error.code, error.http_status) == ("ResourceNotFoundException", 404)
    assert error.to_document(7) == {"code": 404, "message": "No shadow exists with name: nobody", "timestamp": 7,
                                    "clientToken": "token-1"}
    assert ShadowError(418, "odd").code == "ShadowError"


def test_a_refusal_from_the_core_exits_by_its_status():
    assert ControlRefused("bad topic", http_status=400, code="RoutingError").exit_code == EXIT_BAD_INPUT
    assert ControlRefused("broken", http_status=500).exit_code == EXIT_FAILED


def test_the_control_endpoint_answers_an_error_by_its_status_and_the_client_gets_it_back(tmp_path):
    def refuse(_arguments):
        raise RoutingError("The topic 'a/#' has a wildcard", location="topic")

    def full(_arguments):
        raise QueueFullError("no room")

    server = ControlServer(tmp_path, {"publish": refuse, "full": full})
    server.start()
    try:
        with pytest.raises(ControlRefused, match="wildcard") as refused:
            call(tmp_path, "publish")
        assert (refused.value.http_status, refused.value.code, refused.value.exit_code) == (400, "RoutingError", 3)
        assert refused.value.describe() == "The topic 'a/#' has a wildcard (at topic)"
        with pytest.raises(ControlRefused, match="no room") as throttled:
            call(tmp_path, "full")
        assert (throttled.value.http_status, throttled.value.code) == (429, "QueueFullError")
        with pytest.raises(ControlRefused, match="unknown command") as unknown:
            call(tmp_path, "nothing")
        assert (unknown.value.http_status, unknown.value.code) == (404, "UnknownCommand")
    finally:
        server.stop()


def test_the_cli_line_is_the_message_and_where():
    error = errors.TemplateError("no such resource X", location="Resources.Y")
    assert error.describe() == "no such resource X (at Resources.Y)"
    assert str(error) == "TemplateError: no such resource X (at Resources.Y)"


# -- the broker says what failed and how to fix it --------------------------------------------------------

@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port on 127.0.0.1 this test holds (bound and listening) while it runs."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.fixture
def tls(tmp_path) -> BrokerTLS:
    ca = LocalCA(tmp_path / "certs")
    server = ca.issue_server(file_stem="broker")
    return BrokerTLS(ca.ca_path, server.cert_path, server.key_path)


def test_mosquitto_on_a_taken_port_says_so(tls, tmp_path, taken_port):
    executable = installed_mosquitto()
    if executable is None:
        pytest.skip("mosquitto is not installed")
    broker = MosquittoBroker(tls, tmp_path / "broker", port=taken_port, executable=executable)
    with pytest.raises(BrokerError, match="already in use") as refused:
        broker.start()
    assert "--port 0" in refused.value.message and not broker.running


def test_amqtt_on_a_taken_port_says_so(tls, tmp_path, taken_port):
    pytest.importorskip("amqtt")
    broker = AmqttBroker(tls, tmp_path / "broker", port=taken_port)
    try:
        with pytest.raises(BrokerError, match="already in use") as refused:
            broker.start()
    finally:
        broker.stop()
    assert "--port 0" in refused.value.message


def test_a_missing_mosquitto_says_to_install_it(tls, tmp_path):
    broker = MosquittoBroker(tls, tmp_path / "broker", executable=str(tmp_path / "no-mosquitto"))
    with pytest.raises(BrokerError, match="install mosquitto"):
        broker.start()


# -- the CLI: one line, the right exit code, no traceback ------------------------------------------------

def simcore_cli(*args: str) -> subprocess.CompletedProcess:
    """The CLI in a fresh process, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "simcore", *args], capture_output=True, text=True, timeout=120,
                          cwd=REPO)


def assert_one_line(finished: subprocess.CompletedProcess, exit_code: int, *words: str) -> str:
    """The command failed with `exit_code` and said so in one `simcore: ...` line holding `words`."""
    assert finished.returncode == exit_code, finished.stderr
    assert "Traceback" not in finished.stderr, finished.stderr
    lines = finished.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("simcore: "), finished.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def test_cloud_start_on_a_taken_port_is_one_line(tmp_path, taken_port):
    finished = simcore_cli("cloud", "start", "--port", str(taken_port), "--state-dir", str(tmp_path / "cloud"))
    assert_one_line(finished, EXIT_FAILED, f"127.0.0.1:{taken_port}", "already in use", "--port 0")


def test_deploy_of_a_missing_template_is_one_line(tmp_path):
    missing = tmp_path / "no-such-template.yaml"
    finished = simcore_cli("deploy", str(missing), "--root", str(tmp_path / "root"))
    assert_one_line(finished, EXIT_BAD_INPUT, str(missing))


def test_run_without_a_deployment_is_one_line(tmp_path):
    finished = simcore_cli("run", "--root", str(tmp_path / "root"))
    assert_one_line(finished, EXIT_BAD_INPUT, "no current deployment", "simcore deploy")


def test_run_on_a_taken_ipc_port_is_one_line(tmp_path, taken_port):
    root = tmp_path / "root"
    deployed = simcore_cli("deploy", str(CLI_GROUP), "--param", "ThingName=errors-core", "--root", str(root))
    assert deployed.returncode == 0, deployed.stderr
    finished = simcore_cli("run", "--ipc-port", str(taken_port), "--root", str(root))
    assert_one_line(finished, EXIT_FAILED, f"127.0.0.1:{taken_port}", "--ipc-port")


@pytest.mark.parametrize(
    "command", [["cloud", "start", "--port", "0", "--state-dir"], ["deploy", str(CLI_GROUP), "--root"]]
)
def test_a_folder_that_cannot_be_made_is_one_line(tmp_path, command):
    # Below a regular file nothing can be created, whoever runs the test (root included).
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    finished = simcore_cli(*command, str(blocker / "state"))
    assert_one_line(finished, EXIT_FAILED, str(blocker), "check the path")
