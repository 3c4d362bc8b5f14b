"""MQTT topic rules as Greengrass v1 applies them: what a topic and a subscription filter may be, and matching."""

from __future__ import annotations

from simcore.errors import RoutingError

MAX_TOPIC_BYTES = 256


def validate_topic(topic: str) -> None:
    """Refuse a topic a message cannot be published on (empty, wildcards, too long, NUL)."""
    if not topic:
        raise RoutingError("The topic is empty: a message needs a topic to be published on")
    if "+" in topic or "#" in topic:
        raise RoutingError(f"The topic {topic!r} has a wildcard (+ or #): only subscriptions may have one")
    if "\x00" in topic:
        raise RoutingError("The topic has a NUL character")
    if len(topic.encode("utf-8")) > MAX_TOPIC_BYTES:
        raise RoutingError(f"The topic is longer than {MAX_TOPIC_BYTES} bytes")


def validate_filter(subject: str) -> None:
    """Refuse a subscription subject that is not an MQTT topic filter (`#` last and alone, `+` alone)."""
    if not subject:
        raise RoutingError("A subscription subject is empty")
    levels = subject.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise RoutingError(f"Subscription subject {subject!r}: '#' must be a whole level and the last one")
        if "+" in level and level != "+":
            raise RoutingError(f"Subscription subject {subject!r}: '+' must be a whole level")


def topic_matches(subject: str, topic: str) -> bool:
    """Whether MQTT topic filter `subject` matches `topic` (`+` one level, `#` last: zero or more levels)."""
    filter_levels = subject.split("/")
    topic_levels = topic.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[index]:
            return False
    return len(filter_levels) == len(topic_levels)


def filters_overlap(first: str, second: str) -> bool:
    """Whether some topic matches both MQTT topic filters (a device's SUBSCRIBE and a subscription's subject)."""
    first_levels, second_levels = first.split("/"), second.split("/")
    for index in range(max(len(first_levels), len(second_levels))):
        one = first_levels[index] if index < len(first_levels) else None
        other = second_levels[index] if index < len(second_levels) else None
        if one == "#" or other == "#":
            return True
        if one is None or other is None:
            return False
        if one != "+" and other != "+" and one != other:
            return False
    return True
