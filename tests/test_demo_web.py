"""The demo's web server: the page, the incremental state endpoint, the summary; localhost only."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from simcore.demo.state import DemoState
from simcore.demo.web import DemoWebServer
from simcore.shadow.engine import ShadowEngine
from simcore.shadow.service import ShadowService

THING = "RainEdgeCore"


@pytest.fixture()
def served():
    state = DemoState(THING, total_records=4)
    web = DemoWebServer(state, 0, {"station": "JFK", "from": "2013-11-01", "to": "2013-11-02", "speed": 24})
    web.start()
    yield state, web
    web.stop()


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def _write_reading(service: ShadowService, seq: int) -> None:
    reported = {"seq": seq, "ts": 1383264000 + 3600 * seq, "temperature": 4.0, "humidity": 60.0 + seq,
                "pressure": 1015.0, "pressure_tendency_3h": -1.0, "observed_rain": False}
    service.handle(f"$aws/things/{THING}/shadow/update", json.dumps({"state": {"reported": reported}}).encode())


def test_page_is_self_contained_html(served) -> None:
    _state, web = served
    status, content_type, body = _get(web.url)
    page = body.decode()
    assert (status, content_type) == (200, "text/html; charset=utf-8")
    assert 'id="chart-temperature"' in page and 'id="chart-rain"' in page and 'id="confusion"' in page
    # No CDN or other outside resource: the demo machine may have no internet.
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in page


def test_state_endpoint_returns_new_items_from_the_given_indexes(served) -> None:
    state, web = served
    service = ShadowService(ShadowEngine())
    service.listeners.append(state.on_local_shadow)
    for seq in (1, 2, 3):
        _write_reading(service, seq)
    status, content_type, body = _get(f"{web.url}api/state?readings=1&predictions=0&metrics=0")
    answer = json.loads(body)
    assert (status, content_type) == (200, "application/json")
    assert [reading["humidity"] for reading in answer["readings"]] == [62.0, 63.0]
    assert answer["readings_next"] == 3
    assert answer["progress"]["total_records"] == 4
    assert answer["run"]["station"] == "JFK"
    assert answer["finished"] is False


def test_bad_index_is_a_400_naming_the_parameter(served) -> None:
    _state, web = served
    status, _type, body = _get(f"{web.url}api/state?readings=-1")
    assert status == 400
    assert json.loads(body) == {"code": "InvalidParameter",
                                "message": "readings must be a non-negative integer, got '-1'"}


def test_summary_is_404_until_the_run_is_over(served) -> None:
    _state, web = served
    status, _type, body = _get(f"{web.url}api/summary")
    assert status == 404 and json.loads(body)["code"] == "NotFinished"
    web.summary = {"outcome": "complete", "messages_lost": 0}
    status, _type, body = _get(f"{web.url}api/summary")
    assert status == 200 and json.loads(body)["messages_lost"] == 0
    assert json.loads(_get(f"{web.url}api/state")[2])["finished"] is True


def test_unknown_path_is_404_and_the_server_listens_on_localhost_only(served) -> None:
    _state, web = served
    assert _get(f"{web.url}nothing-here")[0] == 404
    assert web.url.startswith("http://127.0.0.1:")


def test_unrouted_shadow_outcomes_are_shown_apart_from_dropped_messages(served) -> None:
    state, web = served
    state.set_core_status({"router": {"routed": 12, "dropped_unmatched": 1, "dropped_queue_full": 2,
                                      "unrouted_no_subscription": 40}})
    _status, _type, body = _get(f"{web.url}api/state")
    core = json.loads(body)["core"]
    assert (core["unrouted_no_subscription"], core["dropped"]) == (40, 3)
    _status, _type, page = _get(web.url)
    # The page shows the counter under its own label, filled from its own field, never as a drop.
    assert 'unrouted: no subscription <b id="unrouted">' in page.decode()
    assert 'text("unrouted", core.unrouted_no_subscription)' in page.decode()
