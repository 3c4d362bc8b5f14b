"""ShadowEngine: AWS IoT Device Shadow semantics (merge, null, delta, version, metadata, limits, errors)."""

from __future__ import annotations

import json

import pytest

from simcore.errors import ShadowError
from simcore.shadow.engine import ShadowEngine


class FakeClock:
    """A clock the test moves by hand, so metadata timestamps can be told apart."""

    def __init__(self, now: float = 1_700_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def engine(clock: FakeClock) -> ShadowEngine:
    with ShadowEngine(clock=clock) as shadow_engine:
        yield shadow_engine


def update(engine: ShadowEngine, state: object, **extra: object):
    return engine.update("thing-1", json.dumps({"state": state, **extra}))


def refused(call, *args, match: str) -> ShadowError:
    """The ShadowError `call(*args)` raises, its text matching `match`."""
    with pytest.raises(ShadowError, match=match) as caught:
        call(*args)
    return caught.value


def test_first_update_creates_the_shadow_at_version_1(engine):
    result = update(engine, {"reported": {"temperature": 21.5}})
    assert result.accepted["version"] == 1
    assert engine.version("thing-1") == 1
    assert engine.get("thing-1")["state"] == {"reported": {"temperature": 21.5}}
    assert engine.things() == ["thing-1"]


def test_update_merges_only_the_fields_it_names(engine):
    update(engine, {"reported": {"temperature": 21.5, "humidity": 40}})
    update(engine, {"reported": {"humidity": 45}, "desired": {"interval": 60}})
    assert engine.get("thing-1")["state"]["reported"] == {"temperature": 21.5, "humidity": 45}
    assert engine.get("thing-1")["state"]["desired"] == {"interval": 60}


def test_nested_objects_merge_key_by_key(engine):
    update(engine, {"desired": {"lights": {"color": {"r": 1, "g": 2}, "on": True}}})
    update(engine, {"desired": {"lights": {"color": {"g": 5}}}})
    assert engine.get("thing-1")["state"]["desired"] == {"lights": {"color": {"r": 1, "g": 5}, "on": True}}


def test_arrays_are_replaced_whole(engine):
    update(engine, {"desired": {"colors": ["RED", "GREEN", "BLUE"]}})
    update(engine, {"desired": {"colors": ["RED"]}})
    assert engine.get("thing-1")["state"]["desired"] == {"colors": ["RED"]}


def test_null_deletes_a_key_and_its_metadata(engine):
    update(engine, {"reported": {"a": 1, "b": {"c": 2, "d": 3}}})
    update(engine, {"reported": {"a": None, "b": {"c": None}}})
    document = engine.get("thing-1")
    assert document["state"]["reported"] == {"b": {"d": 3}}
    assert document["metadata"]["reported"] == {"b": {"d": {"timestamp": 1_700_000_000}}}


def test_null_section_deletes_the_section(engine):
    update(engine, {"desired": {"a": 1}, "reported": {"a": 2}})
    update(engine, {"desired": None})
    document = engine.get("thing-1")
    assert document["state"] == {"reported": {"a": 2}}
    assert "desired" not in document["metadata"]


def test_section_emptied_by_nulls_disappears(engine):
    update(engine, {"desired": {"a": 1}, "reported": {"b": 2}})
    update(engine, {"desired": {"a": None}})
    assert engine.get("thing-1")["state"] == {"reported": {"b": 2}}


def test_null_state_empties_the_document_but_keeps_the_shadow(engine):
    update(engine, {"desired": {"a": 1}, "reported": {"a": 2}})
    result = update(engine, None)
    assert result.accepted["state"] is None
    document = engine.get("thing-1")
    assert document["state"] == {}
    assert document["metadata"] == {}
    assert document["version"] == 2


def test_null_inside_a_new_object_stores_no_null(engine):
    update(engine, {"reported": {"a": {"b": None, "c": 1}}})
    assert engine.get("thing-1")["state"]["reported"] == {"a": {"c": 1}}


def test_delta_holds_desired_keys_that_reported_lacks_or_differs_on(engine):
    update(engine, {"desired": {"color": "RED", "state": "STOP"}})
    update(engine, {"reported": {"color": "GREEN", "engine": "ON"}})
    assert engine.get("thing-1")["state"]["delta"] == {"color": "RED", "state": "STOP"}


def test_delta_keeps_the_path_to_a_nested_difference(engine):
    update(engine, {"desired": {"lights": {"color": {"r": 255, "g": 255, "b": 255}}}})
    update(engine, {"reported": {"lights": {"color": {"r": 255, "g": 0, "b": 255}}}})
    assert engine.get("thing-1")["state"]["delta"] == {"lights": {"color": {"g": 255}}}


def test_delta_disappears_when_reported_catches_up(engine):
    update(engine, {"desired": {"interval": 60}})
    result = update(engine, {"reported": {"interval": 60}})
    assert result.delta is None
    assert "delta" not in engine.get("thing-1")["state"]


def test_an_update_that_changes_neither_section_publishes_no_delta_but_counts_a_version(engine):
    update(engine, {"desired": {"interval": 0.001}, "reported": {"interval": 60}})
    repeated = update(engine, {"reported": {"interval": 60}})
    assert repeated.delta is None  # nothing changed: AWS sends /delta only when the state changes
    assert repeated.accepted["version"] == 2
    assert engine.get("thing-1")["state"]["delta"] == {"interval": 0.001}  # the delta itself stands
    changed = update(engine, {"reported": {"seq": 1}})
    assert changed.delta["state"] == {"interval": 0.001}  # a real change with a pending delta: published


def test_delta_tells_true_from_1_but_not_1_from_1_0(engine):
    update(engine, {"desired": {"flag": True, "count": 1}, "reported": {"flag": 1, "count": 1.0}})
    assert engine.get("thing-1")["state"]["delta"] == {"flag": True}


def test_delta_of_a_matching_nested_object_is_left_out(engine):
    update(engine, {"desired": {"a": {"b": 1}}, "reported": {"a": {"b": 1, "extra": 2}}})
    assert "delta" not in engine.get("thing-1")["state"]


def test_update_result_has_the_delta_document_with_desired_metadata(engine, clock):
    update(engine, {"desired": {"a": 1, "b": 2}})
    clock.now += 10
    result = update(engine, {"reported": {"a": 1}}, clientToken="tok")
    assert result.delta == {
        "state": {"b": 2},
        "metadata": {"b": {"timestamp": 1_700_000_000}},
        "version": 2,
        "timestamp": 1_700_000_010,
        "clientToken": "tok",
    }


def test_update_accepted_echoes_the_request_state_with_its_metadata(engine):
    result = update(engine, {"desired": {"a": None, "b": [1, 2]}}, clientToken="c-1")
    assert result.accepted == {
        "state": {"desired": {"a": None, "b": [1, 2]}},
        "metadata": {"desired": {"a": {"timestamp": 1_700_000_000}, "b": [{"timestamp": 1_700_000_000}] * 2}},
        "version": 1,
        "timestamp": 1_700_000_000,
        "clientToken": "c-1",
    }


def test_update_documents_hold_previous_and_current(engine, clock):
    update(engine, {"reported": {"t": 1}})
    clock.now += 5
    result = update(engine, {"reported": {"t": 2}}, clientToken="x")
    assert result.documents == {
        "previous": {
            "state": {"reported": {"t": 1}},
            "metadata": {"reported": {"t": {"timestamp": 1_700_000_000}}},
            "version": 1,
        },
        "current": {
            "state": {"reported": {"t": 2}},
            "metadata": {"reported": {"t": {"timestamp": 1_700_000_005}}},
            "version": 2,
        },
        "timestamp": 1_700_000_005,
        "clientToken": "x",
    }


def test_first_update_documents_have_no_previous(engine):
    assert update(engine, {"reported": {"t": 1}}).documents["previous"] is None


def test_metadata_timestamps_follow_each_leaf(engine, clock):
    update(engine, {"reported": {"a": 1, "b": {"c": 1, "d": 1}}})
    clock.now += 30
    update(engine, {"reported": {"b": {"c": 2}}})
    metadata = engine.get("thing-1")["metadata"]["reported"]
    assert metadata == {
        "a": {"timestamp": 1_700_000_000},
        "b": {"c": {"timestamp": 1_700_000_030}, "d": {"timestamp": 1_700_000_000}},
    }


def test_metadata_follows_a_value_that_changes_type(engine, clock):
    update(engine, {"reported": {"a": {"b": 1}}})
    clock.now += 1
    update(engine, {"reported": {"a": [1, 2]}})
    assert engine.get("thing-1")["metadata"]["reported"]["a"] == [{"timestamp": 1_700_000_001}] * 2


def test_get_includes_delta_and_echoes_client_token(engine):
    update(engine, {"desired": {"a": 1}})
    document = engine.get("thing-1", client_token="get-1")
    assert document["state"] == {"desired": {"a": 1}, "delta": {"a": 1}}
    assert document["clientToken"] == "get-1"
    assert document["version"] == 1
    assert document["timestamp"] == 1_700_000_000


def test_get_of_an_unknown_thing_is_404(engine):
    error = refused(engine.get, "nobody", match="No shadow exists with name: nobody")
    assert (error.http_status, error.message) == (404, "No shadow exists with name: nobody")


def test_update_with_matching_version_is_accepted(engine):
    update(engine, {"reported": {"a": 1}})
    assert update(engine, {"reported": {"a": 2}}, version=1).accepted["version"] == 2


def test_update_with_stale_version_is_rejected_409(engine):
    update(engine, {"reported": {"a": 1}})
    update(engine, {"reported": {"a": 2}})
    error = refused(lambda: update(engine, {"reported": {"a": 3}}, version=1), match="Version conflict")
    assert (error.http_status, error.message) == (409, "Version conflict")
    assert engine.get("thing-1")["state"]["reported"] == {"a": 2}
    assert engine.version("thing-1") == 2


def test_version_conflict_echoes_the_client_token(engine):
    update(engine, {"reported": {"a": 1}})
    with pytest.raises(ShadowError, match="Version conflict") as caught:
        update(engine, {"reported": {"a": 3}}, version=7, clientToken="tok-9")
    assert caught.value.to_document(5) == {
        "code": 409,
        "message": "Version conflict",
        "timestamp": 5,
        "clientToken": "tok-9",
    }


def test_version_0_creates_a_new_shadow(engine):
    assert update(engine, {"reported": {"a": 1}}, version=0).accepted["version"] == 1


def test_delete_returns_the_version_and_removes_the_shadow(engine):
    update(engine, {"reported": {"a": 1}})
    update(engine, {"reported": {"a": 2}})
    assert engine.delete("thing-1", b'{"clientToken": "d-1"}') == {
        "version": 2,
        "timestamp": 1_700_000_000,
        "clientToken": "d-1",
    }
    assert refused(engine.get, "thing-1", match="No shadow exists").http_status == 404
    assert engine.version("thing-1") is None
    assert engine.things() == []


def test_delete_of_a_missing_shadow_is_404(engine):
    update(engine, {"reported": {"a": 1}})
    engine.delete("thing-1")
    error = refused(engine.delete, "thing-1", match="No shadow exists with name: thing-1")
    assert (error.http_status, error.message) == (404, "No shadow exists with name: thing-1")


def test_a_shadow_recreated_after_delete_continues_the_version(engine):
    update(engine, {"reported": {"a": 1}})
    update(engine, {"reported": {"a": 2}})
    engine.delete("thing-1")
    result = update(engine, {"desired": {"b": 1}})
    assert result.accepted["version"] == 3
    assert result.documents["previous"] is None
    assert engine.get("thing-1")["state"]["desired"] == {"b": 1}
    assert "reported" not in engine.get("thing-1")["state"]


def test_client_token_of_64_bytes_is_accepted_and_65_refused(engine):
    assert update(engine, {"reported": {"a": 1}}, clientToken="t" * 64).accepted["clientToken"] == "t" * 64
    error = refused(lambda: update(engine, {"reported": {"a": 1}}, clientToken="t" * 65), match="Invalid clientToken")
    assert (error.http_status, error.message, error.client_token) == (400, "Invalid clientToken", None)


def test_document_of_exactly_the_limit_is_accepted_and_one_byte_more_refused(clock):
    with ShadowEngine(max_document_bytes=100, clock=clock) as small:
        small.update("t", json.dumps({"state": {"reported": {"a": "x" * 40}}}))
        # The compact JSON of the section, {"a":"x…","b":"y…"}, is what counts: fill it to exactly 100 bytes.
        fill = 100 - len(json.dumps({"a": "x" * 40, "b": ""}, separators=(",", ":")))
        error = refused(small.update, "t", json.dumps({"state": {"reported": {"b": "y" * (fill + 1)}}}),
                        match="exceeds the maximum size")
        assert (error.http_status, error.message) == (413, "The payload exceeds the maximum size allowed")
        small.update("t", json.dumps({"state": {"reported": {"b": "y" * fill}}}))
        assert small.get("t")["state"]["reported"]["b"] == "y" * fill


def test_request_body_over_the_limit_is_refused_413_before_parsing(clock):
    with ShadowEngine(max_document_bytes=100, clock=clock) as small:
        error = refused(small.update, "t", b'{"state": {}}' + b" " * 100, match="exceeds the maximum size")
        assert error.http_status == 413
        assert small.version("t") is None


def test_merged_document_over_the_limit_is_refused_413(clock):
    with ShadowEngine(max_document_bytes=200, clock=clock) as small:
        small.update("t", json.dumps({"state": {"reported": {"a": "x" * 120}}}))
        error = refused(small.update, "t", json.dumps({"state": {"desired": {"b": "y" * 120}}}),
                        match="exceeds the maximum size")
        assert error.http_status == 413
        assert small.version("t") == 1


def test_nesting_of_6_is_accepted_and_7_refused(engine):
    # The section object is level 1: six levels of keys fit, seven do not.
    six = {"l1": {"l2": {"l3": {"l4": {"l5": {"l6": 1}}}}}}
    update(engine, {"reported": six})
    seven = {"l1": {"l2": {"l3": {"l4": {"l5": {"l6": {"l7": 1}}}}}}}
    error = refused(lambda: update(engine, {"reported": seven}), match="too many levels of nesting")
    assert (error.http_status, error.message) == (400, "JSON contains too many levels of nesting; maximum is 6")


def test_payload_may_be_bytes_str_or_dict(engine):
    engine.update("thing-1", b'{"state": {"reported": {"a": 1}}}')
    engine.update("thing-1", '{"state": {"reported": {"b": 2}}}')
    engine.update("thing-1", {"state": {"reported": {"c": 3}}})
    assert engine.get("thing-1")["state"]["reported"] == {"a": 1, "b": 2, "c": 3}


def test_dict_payload_with_nan_is_invalid_json(engine):
    error = refused(engine.update, "thing-1", {"state": {"reported": {"a": float("nan")}}}, match="Invalid JSON")
    assert (error.http_status, error.message) == (400, "Invalid JSON")


def test_invalid_thing_name_is_refused(engine):
    assert refused(engine.get, "bad thing", match="Invalid thing name").http_status == 400
    assert refused(engine.update, "x" * 129, b'{"state": {}}', match="Invalid thing name").http_status == 400


def test_returned_documents_do_not_alias_the_store(engine):
    result = update(engine, {"reported": {"a": [1]}})
    result.documents["current"]["state"]["reported"]["a"].append(2)
    engine.get("thing-1")["state"]["reported"]["a"].append(3)
    assert engine.get("thing-1")["state"]["reported"] == {"a": [1]}
