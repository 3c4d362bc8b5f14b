"""logger_settings: the group's LoggerDefinition as it applies to a local core."""

from __future__ import annotations

import pytest

from simcore.core.logs import DEFAULT_LEVEL, DEFAULT_SPACE_KB, logger_settings
from simcore.errors import RuntimeConfigError
from simcore.group import Group, Logger


def _group(*loggers: Logger) -> Group:
    return Group(name="rain", region="us-east-1", account_id="123456789012", loggers=loggers)


def test_file_system_loggers_set_level_and_space_per_component() -> None:
    settings = logger_settings(_group(
        Logger("SystemFs", "FileSystem", "GreengrassSystem", "WARN", 64),
        Logger("LambdaFs", "FileSystem", "Lambda", "DEBUG", 256),
    ))
    system = settings.system
    assert (system.level, system.space_kb, system.logger_id) == ("WARN", 64, "SystemFs")
    assert settings.for_component("Lambda").level == "DEBUG"
    assert settings.for_component("Lambda").space_kb == 256
    assert settings.notices == ()


def test_cloudwatch_loggers_have_no_local_effect_and_are_announced() -> None:
    group = _group(
        Logger("LambdaFs", "FileSystem", "Lambda", "INFO", 128),
        Logger("LambdaCw", "AWSCloudWatch", "Lambda", "ERROR"),
        Logger("SystemFs", "FileSystem", "GreengrassSystem", "INFO", 128),
    )
    offline = logger_settings(group)
    assert offline.lambda_.level == "INFO"  # the CloudWatch logger's ERROR does not touch local logs
    assert len(offline.notices) == 1
    assert "LambdaCw" in offline.notices[0] and "no AWS link" in offline.notices[0]
    assert "not shipped" in offline.notices[0]
    linked = logger_settings(group, cloud_link=True)
    assert "no AWS link" not in linked.notices[0]
    assert "does not ship CloudWatch Logs" in linked.notices[0]


def test_a_component_without_a_file_system_logger_gets_the_v1_defaults_and_a_notice() -> None:
    settings = logger_settings(_group(Logger("SystemFs", "FileSystem", "GreengrassSystem", "ERROR", 32)))
    assert (settings.lambda_.level, settings.lambda_.space_kb) == (DEFAULT_LEVEL, DEFAULT_SPACE_KB)
    assert settings.lambda_.logger_id is None
    assert any("no FileSystem logger for Lambda" in notice for notice in settings.notices)


def test_missing_space_means_the_default() -> None:
    settings = logger_settings(_group(Logger("LambdaFs", "FileSystem", "Lambda", "INFO", None)))
    assert settings.lambda_.space_kb == DEFAULT_SPACE_KB


@pytest.mark.parametrize(
    ("loggers", "message"),
    [
        ((Logger("Loud", "FileSystem", "Lambda", "LOUD", 10),), "unknown log level 'LOUD'"),
        ((Logger("Tiny", "FileSystem", "Lambda", "INFO", 0),), "Space must be a positive number"),
        ((Logger("A", "FileSystem", "Lambda", "INFO", 10), Logger("B", "FileSystem", "Lambda", "INFO", 10)),
         "two FileSystem loggers for component Lambda: A and B"),
    ],
)
def test_bad_loggers_are_named(loggers: tuple[Logger, ...], message: str) -> None:
    with pytest.raises(RuntimeConfigError, match=message) as caught:
        logger_settings(_group(*loggers))
    assert caught.value.location == loggers[-1].id


def test_unknown_component_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown logger component"):
        logger_settings(_group()).for_component("Connector")
