"""One function cannot starve another: each function's share of the work queue, bounded in items and bytes.

The end-to-end test floods a stalled function with Event invokes through the real greengrasssdk (a client
process holding another function's token) while the shadow service routes update documents to a third
function, a real worker, which must receive every one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from lambdas_fixtures.harness import PY38, function_arn, make_function, make_group
from support.recorders import RecordingCloud
from support.waiting import wait_until

from simcore.core.assemble import Core
from simcore.core.work_queue import INVOKE_ROOM_BYTES, WorkItem, WorkQueue
from simcore.errors import QueueFullError
from simcore.group import CLOUD, SHADOW_SERVICE

A = function_arn("a")
B = function_arn("b")
CALLER = function_arn("caller")
MB = 1024 * 1024
RUNTIME_DIR = Path(__file__).resolve().parents[1] / "simcore" / "lambda_side"


def routed(target: str, size: int = 10) -> WorkItem:
    return WorkItem(target, b"x" * size, "ctx", subject="t")


def invoked(target: str, size: int = 10) -> WorkItem:
    return WorkItem(target, b"x" * size, "", caller=CALLER)


# -- the queue's bounds --------------------------------------------------------------------------------------


def test_each_function_gets_an_equal_share_of_items_and_a_full_one_leaves_the_other_room():
    queue = WorkQueue(max_items=8, max_bytes=64 * MB, targets=[A, B])
    for _ in range(4):
        queue.put(routed(A))
    with pytest.raises(QueueFullError, match=rf"The queue share of {A} is full \(4 of 4 items"):
        queue.put(routed(A))
    for _ in range(4):
        queue.put(routed(B))
    assert (queue.pending(A), queue.pending(B)) == (4, 4)
    assert queue.refused[A] == 1 and queue.refused[B] == 0


def test_queued_bytes_never_exceed_the_byte_bound():
    queue = WorkQueue(max_items=1024, max_bytes=4 * INVOKE_ROOM_BYTES, targets=[A, B])
    refused = 0
    for _ in range(40):
        try:
            queue.put(routed(A, MB))
        except QueueFullError as error:
            assert "bytes" in error.message
            refused += 1
        assert queue.queued_bytes <= queue.max_bytes
    assert queue.peak_bytes <= queue.share_bytes <= queue.max_bytes
    assert refused == 40 - queue.pending(A) > 0
    # Taking an item gives its bytes back.
    held = queue.queued_bytes
    item = queue.take(A, 0)
    assert queue.queued_bytes == held - item.size


def test_direct_invokes_fill_at_most_half_a_share_so_routed_messages_keep_room():
    queue = WorkQueue(max_items=8, targets=[A, B])  # a share of 4 items; invokes may take 2
    queue.put(invoked(A))
    queue.put(invoked(A))
    with pytest.raises(QueueFullError, match=rf"Invokes of {A} fill their part of its queue share \(2 of 2 items"):
        queue.put(invoked(A))
    queue.put(routed(A))
    queue.put(routed(A))
    assert queue.pending(A) == 4


def test_an_empty_share_always_has_room_for_one_invoke_at_lambdas_6_mb_limit():
    queue = WorkQueue(targets=[function_arn(f"f{index}") for index in range(40)])
    assert queue.invoke_bytes >= INVOKE_ROOM_BYTES
    queue.put(WorkItem(function_arn("f0"), b"x" * 6 * MB, "c" * 4096, caller=CALLER))
    assert queue.pending(function_arn("f0")) == 1


def test_an_item_put_back_after_a_crash_is_kept_even_over_the_share():
    queue = WorkQueue(max_items=2, targets=[A, B])
    queue.put(routed(A))
    item = queue.take(A, 0)
    queue.put(routed(A))
    queue.put_back(item)  # accepted earlier: never dropped
    assert queue.pending(A) == 2 and queue.queued_bytes == 2 * item.size


def test_a_queue_that_knows_no_functions_keeps_one_shared_bound():
    queue = WorkQueue(max_items=3)
    for target in (A, A, B):
        queue.put(routed(target))
    with pytest.raises(QueueFullError, match=r"The work queue is full \(3 of 3 items\)"):
        queue.put(routed(B))


# -- end to end: a flood through greengrasssdk ---------------------------------------------------------------

VICTIM = function_arn("victim")
BYSTANDER = function_arn("bystander")
FLOODER = function_arn("flooder")
THING = "test-core"
DOCUMENTS = f"$aws/things/{THING}/shadow/update/documents"

FLOOD_CLIENT = """
import json, sys
import greengrasssdk
client = greengrasssdk.client("lambda")
count, size, target = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
payload = json.dumps("x" * (size - 2)).encode()  # a JSON string: the stalled handler gets it
outcomes = {}
for index in range(count):
    try:
        client.invoke(FunctionName=target, InvocationType="Event", Payload=payload)
        outcome = "accepted"
    except Exception as raised:
        outcome = str(raised)
    outcomes[outcome] = outcomes.get(outcome, 0) + 1
    if index == 0:
        print("started", flush=True)
print(json.dumps(outcomes), flush=True)
"""


@pytest.fixture
def flooded_core(tmp_path):
    group = make_group(
        [
            make_function("victim", "flood", "blocker.function_handler", pinned=True, timeout_s=300),
            make_function("bystander", "compat", "echo.function_handler", timeout_s=30),
            make_function("flooder", "compat", "echo.function_handler"),
        ],
        [(SHADOW_SERVICE, DOCUMENTS, BYSTANDER), (BYSTANDER, "echo/routed", CLOUD)],
    )
    cloud = RecordingCloud()
    core = Core(group, runtime_root=tmp_path / "core", cloud=cloud)
    core.start()
    core.recording = cloud
    yield core
    core.stop()


def _start_flood(core: Core, count: int, size: int) -> subprocess.Popen:
    interpreter = str(PY38) if PY38.exists() else sys.executable
    environment = {**os.environ, "MY_FUNCTION_ARN": FLOODER, "GG_DAEMON_PORT": str(core.ipc_port),
                   "AWS_CONTAINER_AUTHORIZATION_TOKEN": core.issue_token(FLOODER), "PYTHONPATH": str(RUNTIME_DIR)}
    process = subprocess.Popen([interpreter, "-c", FLOOD_CLIENT, str(count), str(size), VICTIM], env=environment,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout.readline().strip() == "started"
    return process


@pytest.mark.parametrize(("count", "size"), [(3000, MB), (1500, 1024)], ids=["3000-invokes-of-1-MB", "1500-small"])
def test_a_flood_of_invokes_at_one_function_loses_nothing_routed_to_another(flooded_core, count, size):
    core = flooded_core
    flood = _start_flood(core, count, size)
    try:
        # The stalled victim's share is full: the flood is being refused from here on.
        wait_until(lambda: core.work_queue.refused[VICTIM] > 0, timeout_s=120, message="the victim's share to fill")
        updates = 30
        for reading in range(updates):
            answer = json.loads(core.shadow_request(
                f"$aws/things/{THING}/shadow/update", json.dumps({"state": {"reported": {"n": reading}}}).encode()
            ))
            assert answer["state"]["reported"] == {"n": reading}
        outcomes = json.loads(flood.communicate(timeout=600)[0])
    finally:
        flood.kill()
    seen = core.recording.wait_for("echo/routed", updates, timeout=60)
    readings = sorted(json.loads(payload)["event"]["current"]["state"]["reported"]["n"] for payload in seen)
    assert readings == list(range(updates))
    counters = core.router.counters()
    assert counters["per_target"][BYSTANDER].get("dropped_queue_full", 0) == 0
    # Every refused invoke was answered TooManyRequestsException (429) and counted; none vanished.
    refused = {text: n for text, n in outcomes.items() if text != "accepted"}
    assert refused and all("HTTP Error 429" in text for text in refused), outcomes
    assert sum(outcomes.values()) == count
    assert sum(refused.values()) == core.status()["ipc"]["throttled_invokes"][VICTIM]
    # The victim's queue stayed within its invoke half of one share, in items and in bytes.
    queue = core.work_queue
    assert queue.pending(VICTIM) <= queue.invoke_items
    assert queue.pending_bytes(VICTIM) <= queue.invoke_bytes
    assert queue.peak_bytes <= queue.max_bytes
    assert outcomes["accepted"] == queue.pending(VICTIM) + 1  # + the one the stalled worker holds
