"""The defaults simcore shares, each declared once (a leaf: it imports nothing).

The CLI, `RunOptions`, deploy, the template loader, the stand-in cloud, `group.setup` and the demo import
them from here, so a flag's default and the library's default cannot drift apart. The v1 values come from
the core's documented defaults (see docs/cloud.md and docs/deploy.md).
"""

from __future__ import annotations

# Where a template is resolved when the command line names no stack: any syntactically valid values do,
# and a local stand-in cloud (which has no account) uses the same ones so the config's thing ARN is the
# one the group names for its core.
DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT_ID = "123456789012"
DEFAULT_STACK_NAME = "rain-edge"
# The core thing the template, the stand-in cloud and the demo name by default (template ThingName).
DEFAULT_THING_NAME = "RainEdgeCore"

# AWS IoT's MQTT over TLS port, and the HTTPS port where MQTT needs ALPN `x-amzn-mqtt-ca`.
DEFAULT_MQTT_PORT = 8883
ALPN_PORT = 443
# `coreThing.keepAlive`: the MQTT keep-alive a v1 core uses, in seconds.
DEFAULT_KEEP_ALIVE_S = 600

# The cloud spooler. A v1 core spools in memory by default; simcore defaults to FileSystem storage, which
# survives a restart (what `simcore run` has always done). 2.5 MB is the v1 core's default size.
DEFAULT_SPOOL_STORAGE = "FileSystem"
DEFAULT_SPOOL_MAX_BYTES = 2_621_440

# SQLite write-ahead logs (shadows, spool, sync state): checkpointed every 64 pages (256 KB at SQLite's
# 4 KB page) instead of SQLite's 1000 (4 MB), and truncated back to 256 KB after a checkpoint when a
# long reader let one grow past it.
WAL_AUTOCHECKPOINT_PAGES = 64
WAL_SIZE_LIMIT_BYTES = 262_144

# `system.shadowSyncTimeout`: how long shadow sync waits for the cloud's accepted/rejected answer.
DEFAULT_SHADOW_SYNC_TIMEOUT_S = 5.0
# `runtime.maxWorkItemCount`: queued work items for all functions together; excess items are dropped.
DEFAULT_MAX_WORK_ITEMS = 1024
