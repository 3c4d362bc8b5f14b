"""A worker's environment (precedence documented in simcore/core/environment.py) and its interpreter choice."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from lambdas_fixtures.harness import make_function, make_group
from support.interpreters import version_script

from simcore.core.environment import function_environment
from simcore.core.interpreters import resolve_interpreter
from simcore.errors import RuntimeConfigError

RUNTIME = Path("/opt/runtime")


def environment_of(function, **overrides):
    settings = {
        "token": "t0k",
        "ipc_port": 8123,
        "runtime_dir": RUNTIME,
        "host_environment": {"PATH": "/bin", "HOME": "/root", "AWS_SECRET_ACCESS_KEY": "leak", "PYTHONPATH": "/x"},
    }
    settings.update(overrides)
    return function_environment(function, make_group([function]), **settings)


def test_the_facts_variables_are_all_set():
    function = make_function("f", "faults", "faults.relay", encoding_type="binary")
    environment = environment_of(function)
    assert environment["MY_FUNCTION_ARN"] == function.arn
    assert environment["AWS_CONTAINER_AUTHORIZATION_TOKEN"] == "t0k"
    assert environment["GG_DAEMON_PORT"] == "8123"
    assert environment["SHADOW_FUNCTION_ARN"] == "arn:aws:lambda:::function:GGShadowService"
    assert environment["ROUTER_FUNCTION_ARN"] == "arn:aws:lambda:::function:GGRouter"
    assert environment["SECRETS_MANAGER_FUNCTION_ARN"] == "arn:aws:lambda:::function:GGSecretManager:1"
    assert environment["GGC_MAX_INTERFACE_VERSION"] == "1.5"
    assert environment["ENCODING_TYPE"] == "binary"
    assert environment["AWS_REGION"] == environment["AWS_DEFAULT_REGION"] == "us-east-1"
    assert environment["AWS_IOT_THING_NAME"] == "test-core"
    assert environment["LOG_LEVEL"] == "INFO"


def test_only_a_few_host_variables_pass_and_pythonpath_is_the_cores():
    function = make_function("f", "faults", "faults.relay")
    environment = environment_of(function)
    assert environment["PATH"] == "/bin"
    assert "AWS_SECRET_ACCESS_KEY" not in environment
    assert environment["PYTHONPATH"] == os.pathsep.join([str(RUNTIME), str(function.code_dir)])


def test_function_variables_override_defaults_and_isolation_rewrites_override_them():
    function = make_function(
        "f", "faults", "faults.relay", environment={"LOG_LEVEL": "DEBUG", "MODEL_DIR": "/ml/rain", "THING_NAME": "t"}
    )
    environment = environment_of(function, env_rewrites={"MODEL_DIR": "/deploy/resources/rain"})
    assert environment["LOG_LEVEL"] == "DEBUG"
    assert environment["THING_NAME"] == "t"
    assert environment["MODEL_DIR"] == "/deploy/resources/rain"


def test_a_function_setting_a_reserved_variable_gets_an_error_naming_it():
    function = make_function("f", "faults", "faults.relay", environment={"MY_FUNCTION_ARN": "x", "GG_DAEMON_PORT": "1"})
    with pytest.raises(RuntimeConfigError, match="GG_DAEMON_PORT, MY_FUNCTION_ARN"):
        environment_of(function)


def test_interpreter_order_explicit_then_variable_then_venv(tmp_path):
    venv_python = version_script(tmp_path / ".venv-py38" / "bin" / "python", "3.8")
    explicit = {"python3.8": sys.executable}
    assert resolve_interpreter("python3.8", explicit, environ={}, search_dirs=[tmp_path]) == (sys.executable, None)
    assert (
        resolve_interpreter("python3.8", {}, environ={"SIMCORE_PYTHON38": sys.executable}, search_dirs=[tmp_path])[0]
        == sys.executable
    )
    assert resolve_interpreter("python3.8", {}, environ={}, search_dirs=[tmp_path]) == (str(venv_python), None)


def test_interpreter_falls_back_to_simcores_own_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    interpreter, warning = resolve_interpreter("python3.1", {}, environ={}, search_dirs=[tmp_path])
    assert interpreter == sys.executable
    assert "No interpreter for python3.1" in warning


@pytest.mark.parametrize("runtime", ["nodejs12.x", "java8", "python"])
def test_non_python_runtimes_are_a_clear_error(runtime):
    with pytest.raises(RuntimeConfigError, match="not a Python runtime"):
        resolve_interpreter(runtime)


def test_an_explicit_interpreter_that_does_not_exist_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeConfigError, match="not an executable"):
        resolve_interpreter("python3.8", {"python3.8": str(tmp_path / "nope")})


def test_a_core_whose_function_sets_a_reserved_variable_does_not_start(tmp_path):
    from simcore.core.assemble import Core

    function = make_function("f", "faults", "faults.relay", pinned=True, environment={"PYTHONPATH": "/x"})
    core = Core(make_group([function]), runtime_root=tmp_path / "ggc")
    with pytest.raises(RuntimeConfigError, match="PYTHONPATH"):
        core.start()
    assert core.status()["running"] is False
    assert core.status()["functions"][function.arn]["starts"] == 0
