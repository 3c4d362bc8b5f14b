"""A new demo replays its period from the first record, even on the shadows an interrupted demo left.

The sensor Lambda resumes an unfinished replay after the last reading its shadow holds when it restarts
(`reported.replay` names the replay): right for a core that crashed, wrong for a new `simcore demo`, whose
summary scores the whole period. Before the core starts, the demo removes that marker from the local
shadow and from the stand-in's, so the sensor starts at the period's first record; `seq` still goes on
from the shadow's, so it never repeats.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from simcore.cloud.standin import cloud_shadow_get, cloud_shadow_update
from simcore.errors import ShadowError
from simcore.shadow.service import ShadowHandler

log = logging.getLogger(__name__)

FORGET_REPLAY = {"state": {"reported": {"replay": None}}}


def forget_replay_position(local: ShadowHandler, cloud_config: Path, certs_dir: Path, thing: str) -> None:
    """Delete `reported.replay` from the local and the cloud shadow of `thing`, where it is set."""
    topic = f"$aws/things/{thing}/shadow"
    local_document = json.loads(local.handle(f"{topic}/get", b"").response)
    if "replay" in ((local_document.get("state") or {}).get("reported") or {}):
        local.handle(f"{topic}/update", json.dumps(FORGET_REPLAY).encode())
        log.info("demo: the local shadow of %s forgets its replay position; the replay starts afresh", thing)
    try:
        cloud_document = cloud_shadow_get(cloud_config, thing, certs_dir=certs_dir)
    except ShadowError as error:
        if error.http_status == 404:
            return
        raise
    if "replay" in ((cloud_document.get("state") or {}).get("reported") or {}):
        cloud_shadow_update(cloud_config, thing, FORGET_REPLAY, certs_dir=certs_dir)
