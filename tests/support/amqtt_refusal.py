"""An amqtt authentication plugin that refuses every session (tests/test_cloud_failures.py's refusing broker)."""

from __future__ import annotations

from dataclasses import dataclass

from amqtt.plugins.base import BaseAuthPlugin


class RefuseEveryonePlugin(BaseAuthPlugin):
    """Refuse every session, whatever its username or certificate."""

    @dataclass
    class Config:
        """No options."""

    async def authenticate(self, *, session) -> bool:  # type: ignore[override]
        """False: not authorized."""
        return False
