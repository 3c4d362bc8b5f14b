"""The amqtt fallback's policy check: the things' IoT policies, evaluated exactly (`IotPolicy.allows`).

`PolicyTopicPlugin` answers amqtt's topic checks (publish, subscribe, receive) from the JSON file the stand-in's
`PolicyAcl` writes beside mosquitto's ACL file (`{"policies": {thing: document}, "full_access": [identity]}`),
read again whenever it changes. The identity is the client certificate's CN, which the fallback broker puts in
the session's username as mosquitto's `use_identity_as_username` does. An identity with neither a policy nor full
access may do nothing, as with mosquitto's ACL file. A denial is logged as mosquitto logs it ("Denied PUBLISH
from <client id>"). Imported only by the fallback (it imports amqtt).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amqtt.plugins.base import BaseTopicPlugin

from simcore.cloud.iot_policy import IotPolicy

log = logging.getLogger(__name__)

_ACTIONS = {"publish": ("iot:Publish", "PUBLISH"), "subscribe": ("iot:Subscribe", "SUBSCRIBE"),
            "receive": ("iot:Receive", "RECEIVE")}


class PolicyTopicPlugin(BaseTopicPlugin):
    """amqtt topic filtering by the things' IoT policies (module docstring)."""

    @dataclass
    class Config:
        """`acl_json`: the file the stand-in's PolicyAcl writes."""

        acl_json: str = ""

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self._path = Path(getattr(self.context.config, "acl_json", "") or "")
        self._stamp: tuple[int, int] | None = None
        self._policies: dict[str, IotPolicy] = {}
        self._full: set[str] = set()

    def _load(self) -> None:
        try:
            status = os.stat(self._path)
        except OSError:
            self._policies, self._full = {}, set()
            return
        stamp = (status.st_mtime_ns, status.st_size)
        if stamp == self._stamp:
            return
        document = json.loads(self._path.read_text())
        self._policies = {thing: IotPolicy(policy) for thing, policy in document.get("policies", {}).items()}
        self._full = set(document.get("full_access", []))
        self._stamp = stamp

    async def topic_filtering(self, *, session: Any = None, topic: str | None = None,
                              action: Any = None) -> bool:
        """Whether the session's identity may do `action` on `topic` under its thing's policy."""
        self._load()
        identity = getattr(session, "username", None) or ""
        if identity in self._full:
            return True
        name = getattr(action, "value", str(action)).lower()
        iot_action, verb = _ACTIONS.get(name, ("", name.upper()))
        policy = self._policies.get(identity)
        client_id = getattr(session, "client_id", "") or ""
        if policy is not None and iot_action and policy.allows(iot_action, topic or "", thing=identity,
                                                               client_id=client_id):
            return True
        log.info("Denied %s from %s (%s, topic '%s')", verb, client_id, identity, topic,
                 extra={"acl_json": str(self._path)})
        return False
