"""Differential test: our ShadowEngine against moto's IoT-data shadow (`FakeShadow`), in-process.

Hypothesis drives 10,000 random sequences of updates (desired and/or reported patches with nulls,
nested objects, arrays, `"state": null`, versions current/stale/ahead), mirrors (one section copied into
the other), gets, deletes and bad requests into both, and after every step compares the outcome (accepted,
or the error code), the state sections, the delta and the version. Where moto departs from AWS IoT's
documented semantics, docs/shadow.md ("Divergences from moto", D1-D7) says why ours is right, and the
function named after that entry below excludes exactly that case (for the delta: exactly those entries);
nothing else is excused. Metadata, sizes and nesting limits are not compared (moto models none: D7).
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto.core.exceptions import JsonRESTError
from moto.iot.models import iot_backends
from moto.iotdata.models import iotdata_backends

from simcore.errors import ShadowError
from simcore.shadow.engine import ShadowEngine, json_equal

ACCOUNT, REGION = "123456789012", "us-east-1"
# SHADOW_DIFF_SEQUENCES lowers the count for a quick local run; CI runs the full 10,000.
SEQUENCES = int(os.environ.get("SHADOW_DIFF_SEQUENCES", "10000"))
KEYS = ("a", "b", "c")


def weighted(*choices: tuple[st.SearchStrategy, int]) -> st.SearchStrategy:
    """Draw from one of the strategies, each `weight` times as likely as a weight of 1.

    st.one_of picks among its distinct branches evenly and folds identical ones together, so a weight is
    that many distinct copies of the branch (each behind its own no-op `map`).
    """
    return st.one_of(*(strategy.map(_same) for strategy, weight in choices for _ in range(weight)))


def _same(value: Any) -> Any:
    return value


scalars = st.one_of(
    st.integers(-2, 2), st.booleans(), st.sampled_from(["x", "y"]), st.sampled_from([0.5, 1.0, 2.0])
)
leaves = weighted((scalars, 4), (st.lists(scalars, max_size=2), 1))


def patch_values(depth: int) -> st.SearchStrategy:
    """A value in an update patch: a leaf, or an object whose members may be null (deletes)."""
    if depth == 0:
        return leaves
    children = weighted((patch_values(depth - 1), 4), (st.none(), 1))
    return weighted((leaves, 1), (objects(children), 1))


def objects(members: st.SearchStrategy) -> st.SearchStrategy:
    """Objects over the keys a, b, c (few keys, so updates keep landing on the same ones)."""
    return weighted(
        (st.dictionaries(st.sampled_from(KEYS), members, min_size=1, max_size=3), 6),
        (st.just({}), 1),
    )


sections = objects(weighted((patch_values(2), 4), (st.none(), 1)))
# A null section is rare: when it meets a non-empty section it ends the sequence's comparison (D5).
section_or_null = weighted((sections, 12), (st.none(), 1))
states = weighted(
    (st.fixed_dictionaries({"desired": section_or_null}), 3),
    (st.fixed_dictionaries({"reported": section_or_null}), 3),
    (st.fixed_dictionaries({"desired": section_or_null, "reported": section_or_null}), 2),
    (st.just({}), 1),
    (st.just(None), 1),
)
updates = st.tuples(
    st.just("update"), states, st.sampled_from([None, None, None, None, "current", "stale", "ahead"])
)
BAD_REQUESTS = {
    "invalid-json": '{"state": ',
    "missing-state": '{"desired": {"a": 1}}',
    "state-not-object": '{"state": 5}',
    "invalid-node": '{"state": {"delta": {"a": 1}}}',
}
# "mirror" writes one section's current content into the other (as a device catching up with desired, or
# an app echoing reported), so that later random patches leave desired and reported partly equal.
mirrors = st.tuples(st.just("mirror"), st.sampled_from(["desired", "reported"]))
operations = weighted(
    (updates, 12),
    (mirrors, 3),
    (st.tuples(st.just("get")), 1),
    (st.tuples(st.just("delete")), 1),
    (st.tuples(st.just("bad"), st.sampled_from(sorted(BAD_REQUESTS))), 1),
)
sequences = st.lists(operations, min_size=1, max_size=6)


# --- the documented divergences (docs/shadow.md), each an exact predicate on the inputs ------------------


def d1_without_bool_number_differences(delta: dict, desired: dict, reported: dict, stats: Counter) -> dict:
    """D1: moto compares with Python's ==, where `true` equals `1` (also inside arrays), so it reports no
    delta for such a pair. Returns our delta without exactly those entries."""
    kept = {}
    for key, value in delta.items():
        wanted, have = desired[key], reported.get(key, _MISSING)
        if isinstance(wanted, dict) and isinstance(have, dict):
            nested = d1_without_bool_number_differences(value, wanted, have, stats)
            if nested:
                kept[key] = nested
        elif have is not _MISSING and wanted == have and _boolean_meets_number(wanted, have):
            stats["excluded_d1"] += 1
        else:
            kept[key] = value
    return kept


def _boolean_meets_number(left: Any, right: Any) -> bool:
    """Whether, at the same place in both values, one holds a boolean and the other a number (D1's case only:
    `1` against `1.0` is no excuse, both rules call them equal)."""
    if isinstance(left, list) and isinstance(right, list):
        return any(_boolean_meets_number(a, b) for a, b in zip(left, right, strict=False))
    if isinstance(left, dict) and isinstance(right, dict):
        return any(_boolean_meets_number(left[key], right[key]) for key in left.keys() & right.keys())
    numbers = isinstance(left, (int, float)) and isinstance(right, (int, float))
    return numbers and isinstance(left, bool) != isinstance(right, bool)


def d2_without_empty_objects(delta: dict, desired: dict, reported: dict, stats: Counter) -> dict:
    """D2: moto puts `{}` in the delta for a desired object whose fields all match reported (by its own
    Python ==). Returns moto's delta without exactly those entries."""
    kept = {}
    for key, value in delta.items():
        wanted, have = desired.get(key), reported.get(key)
        if isinstance(wanted, dict) and isinstance(have, dict) and isinstance(value, dict):
            nested = d2_without_empty_objects(value, wanted, have, stats)
            # moto's `{}` may itself sit inside a `{"b": {}}` it built for the same reason, level upon level.
            if not nested and not _python_delta(wanted, have):
                stats["excluded_d2"] += 1
                continue
            kept[key] = nested
        else:
            kept[key] = value
    return kept


def _python_delta(desired: dict, reported: dict) -> dict:
    """The delta by AWS's rule, but with Python's == as moto compares."""
    delta = {}
    for key, wanted in desired.items():
        have = reported.get(key, _MISSING)
        if isinstance(wanted, dict) and isinstance(have, dict):
            nested = _python_delta(wanted, have)
            if nested:
                delta[key] = nested
        elif have is _MISSING or wanted != have:
            delta[key] = wanted
    return delta


_MISSING = object()


def d4_delete_of_a_deleted_shadow(moto_thing: Any) -> bool:
    """D4: moto accepts deleting an already deleted shadow (and bumps its version); AWS answers 404."""
    shadow = moto_thing.thing_shadows.get(None)
    return shadow is not None and shadow.deleted


def d5_null_section_is_ignored(request_state: dict | None, moto_document: dict | None) -> bool:
    """D5: moto ignores `"desired": null` / `"reported": null` instead of deleting the section."""
    if not request_state or moto_document is None:
        return False
    return any(
        name in request_state and request_state[name] is None and moto_document["state"].get(name)
        for name in ("desired", "reported")
    )


# D3 (moto's delete bumps the version) is accounted for exactly: moto's version is ours plus the number of
# deletes moto accepted. D6 (moto crashes on `version` for a shadow that never existed) is never generated.


# --- running one sequence against both ---------------------------------------------------------------


class Moto:
    """moto's iot-data backend, in-process, with a fresh thing per sequence."""

    def __init__(self) -> None:
        self.iot = iot_backends[ACCOUNT][REGION]
        self.data = iotdata_backends[ACCOUNT][REGION]

    def new_thing(self) -> tuple[str, Any]:
        name = f"diff-{uuid.uuid4().hex[:12]}"
        self.iot.create_thing(name, None, None)
        return name, self.iot.describe_thing(name)

    def drop_thing(self, name: str) -> None:
        self.iot.delete_thing(name)

    def document(self, thing: str) -> dict | None:
        try:
            return self.data.get_thing_shadow(thing, None).to_dict()
        except JsonRESTError:
            return None


def outcome_of(call, *args) -> tuple[int | None, Any]:
    """(None, result) when accepted, (code, None) when refused."""
    try:
        return None, call(*args)
    except ShadowError as error:
        return error.http_status, None
    except JsonRESTError as error:
        return error.code, None


def request(state: dict | None, version: int | None) -> str:
    body: dict = {"state": state}
    if version is not None:
        body["version"] = version
    return json.dumps(body)


def chosen_version(mode: str | None, current: int) -> int | None:
    return {None: None, "current": current, "stale": current - 1, "ahead": current + 1}[mode]


def check_sequence(engine: ShadowEngine, moto: Moto, operations_list: list, stats: Counter) -> None:
    thing, moto_thing = moto.new_thing()
    try:
        _check(engine, moto, thing, moto_thing, operations_list, stats)
    finally:
        moto.drop_thing(thing)


def _check(engine, moto, thing, moto_thing, operations_list, stats) -> None:
    ours_version = 0  # the version our store holds for the thing, live or deleted
    moto_deletes = 0  # D3: each delete moto accepts adds one to its versions
    stats["sequences"] += 1
    for operation in operations_list:
        stats["steps"] += 1
        kind = operation[0]
        moto_before = moto.document(thing)
        if kind == "update":
            _, state, mode = operation
            moto_shadow = moto_thing.thing_shadows.get(None)
            if moto_shadow is None:
                mode = None  # D6: never send a version to moto for a shadow it never had
            ours_code, ours = outcome_of(
                engine.update, thing, request(state, chosen_version(mode, ours_version))
            )
            moto_version = chosen_version(mode, moto_shadow.version) if moto_shadow else None
            moto_code, moto_result = outcome_of(
                moto.data.update_thing_shadow, thing, request(state, moto_version), None
            )
            assert ours_code == moto_code, (operation, ours_code, moto_code)
            if ours is not None:
                ours_version = ours.accepted["version"]
                assert moto_result.version == ours_version + moto_deletes
                if d5_null_section_is_ignored(state, moto_before):
                    stats["excluded_d5_sequences"] += 1
                    return  # the two stores now hold different documents for the rest of the sequence
        elif kind == "delete":
            if d4_delete_of_a_deleted_shadow(moto_thing):
                stats["excluded_d4"] += 1
                ours_code, _ = outcome_of(engine.delete, thing)
                assert ours_code == 404
                moto.data.delete_thing_shadow(thing, None)
                moto_deletes += 1
            else:
                ours_code, ours = outcome_of(engine.delete, thing)
                moto_code, _ = outcome_of(moto.data.delete_thing_shadow, thing, None)
                assert ours_code == moto_code
                if ours is not None:
                    moto_deletes += 1
                    assert ours["version"] == ours_version
        elif kind == "mirror":
            source = operation[1]
            target = "reported" if source == "desired" else "desired"
            current = moto_before["state"].get(source, {}) if moto_before else {}
            body = json.dumps({"state": {target: current}})
            ours_code, ours = outcome_of(engine.update, thing, body)
            moto_code, moto_result = outcome_of(moto.data.update_thing_shadow, thing, body, None)
            assert ours_code is None and moto_code is None
            ours_version = ours.accepted["version"]
            assert moto_result.version == ours_version + moto_deletes
        elif kind == "bad":
            ours_code, _ = outcome_of(engine.update, thing, BAD_REQUESTS[operation[1]])
            moto_code, _ = outcome_of(moto.data.update_thing_shadow, thing, BAD_REQUESTS[operation[1]], None)
            assert ours_code == moto_code == 400
        compare_documents(engine, moto, thing, moto_deletes, stats)


def compare_documents(
    engine: ShadowEngine, moto: Moto, thing: str, moto_deletes: int, stats: Counter
) -> None:
    ours_code, ours = outcome_of(engine.get, thing)
    theirs = moto.document(thing)
    assert (ours is None) == (theirs is None), (ours, theirs)
    if ours is None:
        assert ours_code == 404
        return
    assert theirs["version"] == ours["version"] + moto_deletes
    for name in ("desired", "reported"):
        assert json_equal(ours["state"].get(name), theirs["state"].get(name)), f"{name} differs: {(ours, theirs)}"
    desired, reported = ours["state"].get("desired", {}), ours["state"].get("reported", {})
    ours_delta = d1_without_bool_number_differences(ours["state"].get("delta", {}), desired, reported, stats)
    moto_delta = d2_without_empty_objects(theirs["state"].get("delta", {}), desired, reported, stats)
    assert json_equal(ours_delta, moto_delta), f"delta differs: {(ours, theirs)}"
    stats["deltas_compared"] += 1


@pytest.mark.slow
def test_engine_agrees_with_moto_on_10000_random_sequences_except_documented_divergences():
    stats: Counter = Counter()
    moto = Moto()
    with ShadowEngine() as engine:

        @settings(
            max_examples=SEQUENCES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(sequences)
        def run(operations_list: list) -> None:
            check_sequence(engine, moto, operations_list, stats)

        run()
    assert stats["sequences"] >= SEQUENCES
    # The exclusions must stay exceptions: most deltas compared needed no excuse.
    assert stats["excluded_d1"] + stats["excluded_d2"] <= 0.1 * stats["deltas_compared"], stats
    print(dict(stats))


# --- the checker itself: it excuses exactly the documented cases and catches anything else ------------


@pytest.mark.parametrize(
    "operations_list, excluded",
    [
        ([("update", {"desired": {"a": True}, "reported": {"a": 1}}, None)], "excluded_d1"),
        ([("update", {"desired": {"a": {"b": 1}}, "reported": {"a": {"b": 1, "c": 2}}}, None)], "excluded_d2"),
        ([("update", {"reported": {"a": 1}}, None), ("delete",), ("delete",)], "excluded_d4"),
        ([("update", {"desired": {"a": 1}}, None), ("update", {"desired": None}, None)], "excluded_d5_sequences"),
    ],
)
def test_checker_excuses_each_documented_divergence(operations_list, excluded):
    stats: Counter = Counter()
    with ShadowEngine() as engine:
        check_sequence(engine, Moto(), operations_list, stats)
    assert stats[excluded] >= 1


def test_checker_catches_a_delta_that_tells_1_from_1_0(monkeypatch):
    # AWS's delta (and moto's) compares numbers by value; a type-strict rule must not pass as divergence D1.
    import simcore.shadow.engine as shadow_module

    def strict_equal(left: Any, right: Any) -> bool:
        return type(left) is type(right) and left == right

    monkeypatch.setattr(shadow_module, "json_equal", strict_equal)
    sequence = [("update", {"desired": {"a": 1}, "reported": {"a": 1.0}}, None)]
    with ShadowEngine() as engine, pytest.raises(AssertionError, match="delta differs"):
        check_sequence(engine, Moto(), sequence, Counter())


def test_checker_catches_a_delta_that_is_not_nested(monkeypatch):
    import simcore.shadow.engine as shadow_module

    def flat_delta(desired: dict, reported: dict) -> dict:
        return {key: value for key, value in desired.items() if not json_equal(value, reported.get(key))}

    monkeypatch.setattr(shadow_module, "_delta", flat_delta)
    sequence = [("update", {"desired": {"a": {"b": 1, "c": 2}}, "reported": {"a": {"b": 1, "c": 3}}}, None)]
    with ShadowEngine() as engine, pytest.raises(AssertionError, match="^delta differs"):
        check_sequence(engine, Moto(), sequence, Counter())


def test_checker_catches_a_merge_that_replaces_nested_objects(monkeypatch):
    import simcore.shadow.engine as shadow_module

    def shallow_merge(target: dict, target_metadata: dict, patch: dict, now: int) -> None:
        for key, value in patch.items():
            if value is None:
                target.pop(key, None)
                target_metadata.pop(key, None)
            else:
                target[key] = value
                target_metadata[key] = shadow_module._leaf_metadata(value, now)

    monkeypatch.setattr(shadow_module, "_merge", shallow_merge)
    sequence = [("update", {"desired": {"a": {"b": 1}}}, None), ("update", {"desired": {"a": {"c": 1}}}, None)]
    with ShadowEngine() as engine, pytest.raises(AssertionError, match="^desired differs"):
        check_sequence(engine, Moto(), sequence, Counter())
