"""Shadow sync between the core's local shadows and the cloud's, for every thing with `SyncShadow`.

Local `reported` goes up, cloud `desired` comes down; both sides keep their own version numbers, and the
sync remembers, per thing, the local and cloud versions and the state it last left both sides in (the
"base"). Every sync of a thing is a three-way merge, the rule of Greengrass v2's shadow manager
(`SyncNodeMerger`), applied field by field:

- a field changed on one side only since the last sync takes that side's value (deletions included);
- a field changed on both sides takes the value of the side that owns its section: `reported` is owned
  by the device (local wins), `desired` by the cloud (cloud wins);
- objects are merged key by key; arrays and scalars are replaced whole;
- "changed" is JSON equality as the shadow's delta uses it (`simcore.shadow.engine.json_equal`): `1` is `1.0`,
  `true` is not `1`.

The merged state is then written to whichever side differs from it, each write conditioned on the
version just read (a concurrent edit gives 409 and the sync runs again), so both sides converge. The one
exception is the local `desired` patch, written unconditioned so a local shadow that never stops changing
still takes the cloud's desired state (`_patch_local` says why that loses nothing).
A shadow deleted on one side is deleted on the other if the other has not changed since the last sync;
otherwise the surviving side is copied back (a delete never destroys an edit the deleter did not see).

Triggers: an accepted local update (a `ShadowService` listener), a cloud `update/documents` or
`delete/accepted` message, and a full sync of every thing after each (re)connection. Cloud requests
wait at most `timeout_s` (`system.shadowSyncTimeout`, default 5 s) for their accepted/rejected answer.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simcore.defaults import DEFAULT_SHADOW_SYNC_TIMEOUT_S as DEFAULT_SYNC_TIMEOUT_S
from simcore.errors import ShadowError, SimcoreError
from simcore.group import Group
from simcore.private import private_file
from simcore.shadow.engine import json_equal
from simcore.shadow.service import ShadowService
from simcore.shadow.wal import bound_wal

RETRY_DELAY_S = 1.0
SECTIONS = ("desired", "reported")
OWNER = {"desired": "cloud", "reported": "local"}
MISSING: Any = object()

log = logging.getLogger(__name__)

LocalRequest = Callable[[str, bytes], bytes]


class SyncUnavailable(SimcoreError):
    """The cloud did not answer (offline, or no reply within the sync timeout); the sync will retry."""

    code = "SyncUnavailable"
    http_status = 503


class SyncConflict(SimcoreError):
    """A side changed between read and write (409); the sync runs again at once."""

    code = "SyncConflict"
    http_status = 409


# -- the merge rule ------------------------------------------------------------------------------------

def _same(left: Any, right: Any) -> bool:
    """Equal JSON values (the delta's rule), where MISSING (no such node) equals only itself."""
    if left is MISSING or right is MISSING:
        return left is right
    return json_equal(left, right)


def merge_three_way(local: Any, cloud: Any, base: Any, owner: str) -> Any:
    """The merged value of one node; MISSING when the node should not exist. `owner` is local or cloud."""
    if local is MISSING and cloud is MISSING:
        return MISSING
    if all(isinstance(value, dict) for value in (local, cloud, base)):
        merged: dict = {}
        for key in list(local) + [key for key in cloud if key not in local]:
            value = merge_three_way(local.get(key, MISSING), cloud.get(key, MISSING),
                                    base.get(key, MISSING), owner)
            if value is not MISSING:
                merged[key] = value
        return merged
    local_changed = not _same(local, base)
    cloud_changed = not _same(cloud, base)
    if local_changed and not cloud_changed:
        return local
    if cloud_changed and not local_changed:
        return cloud
    return local if owner == "local" else cloud


def merge_states(local: dict, cloud: dict, base: dict) -> dict:
    """Merge `{desired, reported}` states; each section by its owner's rule. Empty sections are dropped."""
    merged = {}
    for section in SECTIONS:
        value = merge_three_way(local.get(section, {}), cloud.get(section, {}), base.get(section, {}),
                                OWNER[section])
        if isinstance(value, dict) and value:
            merged[section] = value
    return merged


def state_patch(current: dict, target: dict) -> dict:
    """The shadow update `state` that turns `current` into `target` (null deletes a key)."""
    patch: dict = {}
    for key in list(current) + [key for key in target if key not in current]:
        now, wanted = current.get(key, MISSING), target.get(key, MISSING)
        if wanted is MISSING:
            patch[key] = None
        elif isinstance(now, dict) and isinstance(wanted, dict):
            nested = state_patch(now, wanted)
            if nested:
                patch[key] = nested
        elif not _same(now, wanted):
            patch[key] = wanted
    return patch


def _sections(document: dict | None) -> dict:
    """`{desired, reported}` of a shadow document (without `delta`); {} for no document."""
    if document is None:
        return {}
    state = document.get("state") or {}
    return {section: state[section] for section in SECTIONS if isinstance(state.get(section), dict)}


def synced_things(group: Group) -> list[str]:
    """The things whose shadows sync: the core and every device with `SyncShadow` true, in group order."""
    things = [core.thing_name for core in group.cores if core.sync_shadow]
    return things + [device.thing_name for device in group.devices if device.sync_shadow]


def _unpublished(service: ShadowService) -> LocalRequest:
    """A local request served by `service`, its outcome topics dropped (there is no router to route them)."""
    return lambda topic, payload: service.handle(topic, payload).response


# -- what the sync remembers ---------------------------------------------------------------------------

@dataclass
class SyncRecord:
    """Per thing: versions on both sides at the last sync and the state both were left in (None: never)."""

    local_version: int | None = None
    cloud_version: int | None = None
    base: dict | None = None


class SyncStore:
    """SyncRecords in memory, or in an SQLite file so a restarted core merges against the right base."""

    def __init__(self, path: Path | None = None):
        self._records: dict[str, SyncRecord] = {}
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        if path is not None:
            private_file(path)  # 0600 before SQLite makes its -wal/-shm with the same mode
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            bound_wal(self._db)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS sync (thing TEXT PRIMARY KEY, local_version INTEGER,"
                " cloud_version INTEGER, base TEXT)"
            )
            for thing, local_version, cloud_version, base in self._db.execute("SELECT * FROM sync"):
                self._records[thing] = SyncRecord(local_version, cloud_version,
                                                  None if base is None else json.loads(base))

    def get(self, thing: str) -> SyncRecord:
        """The thing's record (a fresh one when it was never synced)."""
        with self._lock:
            record = self._records.get(thing, SyncRecord())
            return SyncRecord(record.local_version, record.cloud_version, record.base)

    def put(self, thing: str, record: SyncRecord) -> None:
        """Remember the thing's record."""
        with self._lock:
            self._records[thing] = record
            if self._db is not None:
                self._db.execute(
                    "INSERT OR REPLACE INTO sync VALUES (?, ?, ?, ?)",
                    (thing, record.local_version, record.cloud_version,
                     None if record.base is None else json.dumps(record.base)),
                )

    def close(self) -> None:
        """Close the file, if any."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


# -- the sync ------------------------------------------------------------------------------------------

@dataclass
class SyncStats:
    """Counters: completed syncs, writes to each side, conflicts retried, failed attempts."""

    syncs: int = 0
    local_writes: int = 0
    cloud_writes: int = 0
    conflicts: int = 0
    failures: int = 0
    last_error: str = ""
    pending: list[str] = field(default_factory=list)


class ShadowSync:
    """Keeps the local shadows of `things` and their cloud shadows converged.

    `engine` is the local ShadowEngine (read with `get`); `local_request(topic, payload) -> response bytes`
    applies a change locally through the shadow service, so Lambdas see the delta/documents it publishes
    (default: a `ShadowService` on `engine` whose outcome topics go nowhere). `link` is the CloudLink.
    Register `on_local_change` as a ShadowService listener. Call `start()` after building, `stop()` at shutdown.
    """

    def __init__(self, link, engine, things: Iterable[str], *, local_request: LocalRequest | None = None,
                 timeout_s: float = DEFAULT_SYNC_TIMEOUT_S, store: SyncStore | None = None):
        self.link = link
        self.engine = engine
        self.things = list(dict.fromkeys(things))
        self.timeout_s = timeout_s
        self.store = store or SyncStore()
        self.local_request = local_request or _unpublished(ShadowService(engine))
        self.stats = SyncStats()
        self._condition = threading.Condition()
        self._dirty: dict[str, None] = {}  # ordered set of things waiting for a sync
        self._busy = False
        self._stopping = threading.Event()
        self._waiters: dict[str, tuple[threading.Event, list]] = {}
        self._thread: threading.Thread | None = None

    # -- wiring ------------------------------------------------------------------------------------

    def start(self) -> None:
        """Subscribe to the cloud shadow topics of every synced thing and start the sync thread."""
        for thing in self.things:
            for operation in ("get", "update", "delete"):
                self.link.subscribe(f"$aws/things/{thing}/shadow/{operation}/+", self._on_cloud_message)
        self.link.add_connection_listener(self._on_connection)
        self._thread = threading.Thread(target=self._run, name="shadow-sync", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the sync thread (pending syncs run again at the next start: full sync on connect)."""
        self._stopping.set()
        with self._condition:
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def on_local_change(self, thing: str, result: Any = None) -> None:
        """ShadowService listener: a local update or delete was accepted."""
        if thing in self.things:
            self.request_sync(thing)

    def request_sync(self, *things: str) -> None:
        """Sync these things (all synced things when none are named) as soon as the cloud is reachable."""
        with self._condition:
            for thing in things or self.things:
                self._dirty[thing] = None
            self._condition.notify_all()

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no sync is pending or running (the cloud reachable); whether that happened in time."""
        with self._condition:
            return self._condition.wait_for(lambda: not self._dirty and not self._busy, timeout_s)

    def _on_connection(self, connected: bool) -> None:
        if connected:
            self.request_sync()  # full sync after every (re)connection

    # -- cloud messages ----------------------------------------------------------------------------

    def _on_cloud_message(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        if len(parts) != 6:
            return
        thing, operation, outcome = parts[2], parts[4], parts[5]
        try:
            document = json.loads(payload)
        except ValueError:
            log.warning("shadow sync: ignoring a non-JSON message on %s", topic)
            return
        if not isinstance(document, dict):
            return
        token = document.get("clientToken")
        if outcome in ("accepted", "rejected") and isinstance(token, str):
            with self._condition:
                waiter = self._waiters.get(token)
            if waiter is not None:
                waiter[1].append((outcome, document))
                waiter[0].set()
                return
        if operation == "update" and outcome == "documents":
            current = document.get("current")
            version = current.get("version") if isinstance(current, dict) else None
            if version is None or version != self.store.get(thing).cloud_version:
                self.request_sync(thing)
        elif operation == "delete" and outcome == "accepted":
            self.request_sync(thing)

    def _cloud_request(self, thing: str, operation: str, body: dict) -> tuple[str, dict]:
        """Send one shadow request to the cloud and wait for its answer: (`accepted`|`rejected`, document)."""
        token = uuid.uuid4().hex
        event: threading.Event = threading.Event()
        answer: list = []
        with self._condition:
            self._waiters[token] = (event, answer)
        try:
            payload = json.dumps({**body, "clientToken": token}).encode()
            if not self.link.send_now(f"$aws/things/{thing}/shadow/{operation}", payload, self.timeout_s):
                raise SyncUnavailable("the cloud link is not connected")
            if not event.wait(self.timeout_s):
                raise SyncUnavailable(f"no answer to {operation} for {thing} within {self.timeout_s} s")
            return answer[0]
        finally:
            with self._condition:
                self._waiters.pop(token, None)

    # -- local side --------------------------------------------------------------------------------

    def _local_get(self, thing: str) -> dict | None:
        try:
            return self.engine.get(thing)
        except ShadowError as error:
            if error.http_status == 404:
                return None
            raise

    def _local_write(self, thing: str, operation: str, body: dict) -> int | None:
        """Apply an update/delete locally; the new version (None after a delete)."""
        response = json.loads(self.local_request(f"$aws/things/{thing}/shadow/{operation}",
                                                 json.dumps(body).encode()))
        if "code" in response and "message" in response:
            if response["code"] == 409:
                raise SyncConflict(f"local shadow of {thing} changed during the sync")
            if operation == "delete" and response["code"] == 404:
                return None
            raise ShadowError(int(response["code"]), str(response["message"]))
        self.stats.local_writes += 1
        return None if operation == "delete" else int(response["version"])

    def _cloud_write(self, thing: str, operation: str, body: dict) -> int | None:
        outcome, document = self._cloud_request(thing, operation, body)
        if outcome == "rejected":
            code = document.get("code")
            if code == 409:
                raise SyncConflict(f"cloud shadow of {thing} changed during the sync")
            if operation == "delete" and code == 404:
                return None
            raise ShadowError(int(code or 400), str(document.get("message", "rejected")))
        self.stats.cloud_writes += 1
        return None if operation == "delete" else int(document["version"])

    # -- the sync loop -----------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            with self._condition:
                self._condition.wait_for(lambda: self._stopping.is_set()
                                         or (self._dirty and self.link.connected), timeout=0.5)
                if self._stopping.is_set():
                    return
                if not self._dirty or not self.link.connected:
                    continue
                thing = next(iter(self._dirty))
                del self._dirty[thing]
                self._busy = True
            retry_after = 0.0
            try:
                self.sync_thing(thing)
                self.stats.syncs += 1
            except SyncConflict as conflict:
                self.stats.conflicts += 1
                log.info("shadow sync: %s; syncing again", conflict)
                self.request_sync(thing)
            except (SyncUnavailable, ShadowError, ValueError, KeyError) as error:
                self.stats.failures += 1
                self.stats.last_error = f"{thing}: {error}"
                log.warning("shadow sync of %s failed: %s; retrying", thing, error)
                self.request_sync(thing)
                retry_after = RETRY_DELAY_S
            finally:
                with self._condition:
                    self._busy = False
                    self.stats.pending = list(self._dirty)
                    self._condition.notify_all()
            if retry_after:
                self._stopping.wait(retry_after)

    def sync_thing(self, thing: str) -> None:
        """One full sync of one thing: read both sides, merge against the base, write what differs."""
        record = self.store.get(thing)
        outcome, cloud_answer = self._cloud_request(thing, "get", {})
        if outcome == "rejected" and cloud_answer.get("code") != 404:
            raise SyncUnavailable(
                f"cloud get refused: {cloud_answer.get('code')} {cloud_answer.get('message')}"
            )
        cloud_document = cloud_answer if outcome == "accepted" else None
        cloud_version = None if cloud_document is None else int(cloud_document["version"])
        # The local side is read after the cloud's round trip, just before the merge: a busy local shadow
        # then has only the merge's own time to change in, not a network round trip.
        local_document = self._local_get(thing)
        local_version = None if local_document is None else int(local_document["version"])

        if record.base is not None and local_version == record.local_version \
                and cloud_version == record.cloud_version:
            return  # nothing changed on either side since the last sync
        if local_document is None and cloud_document is None:
            self.store.put(thing, SyncRecord(None, None, None))
            return
        one_side_gone = local_document is None or cloud_document is None
        if record.base is not None and one_side_gone and self._propagate_delete(
            thing, record, local_version, cloud_version
        ):
            return
        base = record.base if record.base is not None else {}
        if local_document is None or cloud_document is None:
            base = {}  # the deleted side is recreated from the surviving one
        merged = merge_states(_sections(local_document), _sections(cloud_document), base)
        local_patch = {section: patch for section in SECTIONS
                       if (patch := state_patch(_sections(local_document).get(section, {}),
                                                merged.get(section, {})))}
        cloud_patch = {section: patch for section in SECTIONS
                       if (patch := state_patch(_sections(cloud_document).get(section, {}),
                                                merged.get(section, {})))}
        if local_document is None:
            local_version = self._local_write(thing, "update", {"state": merged})
        elif local_patch:
            local_version = self._patch_local(thing, local_version, local_patch)
        if cloud_patch or cloud_document is None:
            body: dict = {"state": cloud_patch or merged}
            if cloud_document is not None:
                body["version"] = cloud_version
            cloud_version = self._cloud_write(thing, "update", body)
        self.store.put(thing, SyncRecord(local_version, cloud_version, merged))
        log.info("shadow sync: %s in sync (local version %s, cloud version %s)", thing, local_version,
                 cloud_version)

    def _patch_local(self, thing: str, read_version: int | None, patch: dict) -> int | None:
        """Write the merge's local patch; the local version to remember for the next sync.

        The `desired` part goes without a version condition. It names only fields the cloud changed since
        the last sync (the cloud owns desired: on a field both sides changed the cloud wins anyway), so a
        local write in between loses nothing, and a shadow updated hundreds of times a second still gets
        the cloud's change. When such a write did land in between, the version read is remembered, not the
        one written, so the next sync merges again. The `reported` part (the device's own) stays conditioned
        on the version: a concurrent reading is never overwritten (409, and the sync runs again).
        """
        version = read_version
        if "desired" in patch:
            written = self._local_write(thing, "update", {"state": {"desired": patch["desired"]}})
            uninterrupted = read_version is not None and written == read_version + 1
            if "reported" not in patch:
                return written if uninterrupted else read_version
            if not uninterrupted:
                raise SyncConflict(f"local shadow of {thing} changed during the sync (desired written)")
            version = written
        return self._local_write(thing, "update", {"state": {"reported": patch["reported"]}, "version": version})

    def _propagate_delete(self, thing: str, record: SyncRecord, local_version: int | None,
                          cloud_version: int | None) -> bool:
        """A shadow gone on one side: delete it on the other if that side is unchanged; whether done."""
        if local_version is None and cloud_version == record.cloud_version:
            self._cloud_write(thing, "delete", {})
        elif cloud_version is None and local_version == record.local_version:
            self._local_write(thing, "delete", {})
        else:
            return False
        self.store.put(thing, SyncRecord(None, None, None))
        log.info("shadow sync: %s deleted on both sides", thing)
        return True
