"""The tests' own `wait_until`: it returns what the predicate gave, or fails naming what was awaited."""

from __future__ import annotations

import pytest
from support.waiting import wait_until


def test_the_first_truthy_value_is_returned():
    answers = iter([None, [], ["pid"]])
    assert wait_until(lambda: next(answers), 5, message="a pid") == ["pid"]


def test_a_timeout_names_what_was_awaited():
    with pytest.raises(AssertionError, match=r"timed out after 0\.05 s waiting for the core to start"):
        wait_until(lambda: False, 0.05, message="the core to start")


def test_a_callable_message_shows_the_state_at_the_deadline():
    seen = []
    with pytest.raises(AssertionError, match=r"waiting for 3 items \(saw 2\)"):
        wait_until(lambda: seen.append(1) if len(seen) < 2 else False, 0.05,
                   message=lambda: f"3 items (saw {len(seen)})")
