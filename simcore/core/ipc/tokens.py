"""IPC tokens: random bearer tokens, each naming the function (and worker process) it was issued to."""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    """Who is calling: the function the token was issued to and, for a worker process, its worker id."""

    function_arn: str
    worker_id: str | None = None


class TokenRegistry:
    """Random tokens (secrets.token_hex) mapped to callers; a worker's token dies with the worker."""

    def __init__(self) -> None:
        self._callers: dict[str, Caller] = {}
        self._lock = threading.Lock()

    def issue(self, function_arn: str, worker_id: str | None = None) -> str:
        """A new token for `function_arn` (and one worker process of it)."""
        token = secrets.token_hex(32)
        with self._lock:
            self._callers[token] = Caller(function_arn, worker_id)
        return token

    def revoke(self, token: str) -> None:
        """Forget a token (its worker stopped)."""
        with self._lock:
            self._callers.pop(token, None)

    def lookup(self, token: str | None) -> Caller | None:
        """The caller a token belongs to, or None."""
        if not token:
            return None
        return self._callers.get(token)
