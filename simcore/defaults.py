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
# The core's MQTT server for the group's devices: its certificate, signed by the group CA, is valid this many
# days (v1's default; 7 to 30) and renewed before it expires. Discovery's port is AWS's (8443).
DEFAULT_SERVER_CERT_DAYS = 7
DEFAULT_DISCOVERY_PORT = 8443

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
# `runtime.maxWorkItemCount`: queued work items for all functions together (v1's figure); a core shares it out
# equally among its functions, and an item that does not fit is refused (429) or, routed BestEffort, dropped
# and counted.
DEFAULT_MAX_WORK_ITEMS = 1024
# The work queue's byte bound: payload and client-context bytes queued for all functions together. Each
# function gets an equal share of this and of `maxWorkItemCount` (at least two 6 MB invokes' worth), so one
# flooded function cannot take another's room. See docs/isolation.md "Work queue".
DEFAULT_MAX_WORK_BYTES = 64 * 1024 * 1024

# The IPC server's connection limits (docs/isolation.md "IPC"). A connection that has not yet shown a valid
# token holds one of the few admission slots; once authenticated it moves to a caller slot.
DEFAULT_IPC_ADMISSION_SLOTS = 64
DEFAULT_IPC_CALLER_SLOTS = 256
# Seconds a connection may take to send a whole request (request line, headers and body), counted from
# when the server starts waiting for it; an idle kept-alive connection is closed after as long.
DEFAULT_IPC_READ_TIMEOUT_S = 10.0
# Bytes of request bodies being read at once, across every connection (each body reserves its length).
DEFAULT_IPC_BODY_BUDGET_BYTES = 64 * 1024 * 1024

# AWS's size limits, enforced at deploy with AWS's numbers (docs/deploy.md cites where each comes from).
# A template body CloudFormation accepts from S3 ("Template may not exceed 1000000 bytes in size."); one passed
# directly in a request (TemplateBody) may hold only 51,200 bytes, but `aws cloudformation deploy` uploads a
# bigger one to S3, so the S3 limit is the one a template can reach.
CFN_TEMPLATE_MAX_BYTES = 1_000_000
CFN_TEMPLATE_BODY_MAX_BYTES = 51_200
# A Lambda function's code, unzipped ("Unzipped size must be smaller than 262144000 bytes"); a zip uploaded
# directly may hold 50 MB (52,428,800 bytes), one uploaded through S3 (as `aws cloudformation package` does) more.
LAMBDA_CODE_UNZIPPED_MAX_BYTES = 262_144_000
LAMBDA_ZIP_DIRECT_UPLOAD_MAX_BYTES = 52_428_800

# Worker starts: a function whose workers fail this many times in a row before they ever ask for work (the
# interpreter cannot run, the handler cannot be imported) is marked failed; its queued work is set aside as
# poison instead of waiting for a worker that never comes. With the 0.1 s backoff doubling, 5 failed starts
# take about 1.5 s plus the starts themselves.
DEFAULT_MAX_FAILED_STARTS = 5

# The Lambda `Runtime`s simcore can run: Python 3 (its runtime in simcore/lambda_side needs nothing newer than
# 3.4; Greengrass v1 offered python3.7 and python3.8). python2.7 cannot run it, and other languages have no
# runtime here. Group 1 is the minor version.
SUPPORTED_RUNTIME_PATTERN = r"python3\.(\d+)"

# The stream manager (`GGStreamManager`, docs/stream-manager.md). v1's defaults: port 8088, client
# authentication on, 5 exporter threads, S3 parts of 5 MiB (also S3's minimum), no bandwidth limit.
STREAM_MANAGER_PORT = 8088
STREAM_MANAGER_THREAD_POOL_SIZE = 5
STREAM_MANAGER_MIN_PART_SIZE_BYTES = 5_242_880
# simcore's own bounds (v1 documents none): connections, one request's bytes (a message is at most 16 MiB),
# requests served at once per connection, streams, the bytes all Memory streams may hold together, and how
# long a new connection may take to complete its handshake.
STREAM_MANAGER_MAX_CONNECTIONS = 128
STREAM_MANAGER_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
STREAM_MANAGER_MAX_IN_FLIGHT = 64
STREAM_MANAGER_MAX_STREAMS = 1024
STREAM_MANAGER_MEMORY_BUDGET_BYTES = 256 * 1024 * 1024
STREAM_MANAGER_HANDSHAKE_TIMEOUT_S = 10.0
# The ML inference connectors' runtime (Python 3.8 with mxnet, as the v1 connectors bundled MXNet): a venv
# of its own (`make venv-mxnet`), or the interpreter this variable names. A model server gets this long to
# load its model before a request waiting for it is answered with a timeout.
ML_CONNECTOR_RUNTIME_ENV = "SIMCORE_ML_CONNECTOR_PYTHON"
ML_CONNECTOR_VENV = ".venv-mxnet"
ML_CONNECTOR_STARTUP_S = 120.0
# The token exchange service (docs/credentials.md). Credentials are served from its cache until this long before
# they expire (botocore refreshes a container provider's credentials 15 minutes before, so the core's are
# renewed first), or half their lifetime for credentials shorter-lived than twice that.
DEFAULT_TES_REFRESH_BEFORE_S = 1200.0
# A failed fetch is answered from the cache for a while, so a broken upstream is not asked again on every
# Lambda's retry: longer for a refusal (4xx: a configuration problem), shorter for an outage.
DEFAULT_TES_REFUSAL_HOLD_S = 60.0
DEFAULT_TES_FAILURE_HOLD_S = 10.0
# How long one fetch from the AWS IoT credentials provider may take (connect, TLS, answer).
DEFAULT_TES_FETCH_TIMEOUT_S = 5.0
# The role alias the group's template creates for its group role (`<ThingName>-GroupRoleAlias`), and the one the
# stand-in cloud's credentials provider serves.
ROLE_ALIAS_SUFFIX = "-GroupRoleAlias"

# Fleet deployments through AWS IoT Jobs (docs/fleet.md). A bundle unpacks to at most 1 GiB (code and model);
# the download of one is bounded by the same number. A job document holds at most 32 KB (IoT Jobs' limit);
# statusDetails keys are 1-128 [a-zA-Z0-9:_-], values 1-1024 characters (the Jobs data API's limits).
BUNDLE_MAX_BYTES = 1024 * 1024 * 1024
JOB_DOCUMENT_MAX_BYTES = 32 * 1024
JOB_STATUS_DETAIL_MAX_CHARS = 1024
# After a swap, the new version's pinned Lambdas must stay up this long (no failed start, no restart) for the
# deployment to count as a success; a Lambda that fails to start is marked failed within about 2 s (above).
DEFAULT_SWAP_SETTLE_S = 4.0
# Seconds the old version's work queue may take to drain before its Lambdas are stopped for a swap (what is
# left then is handed to the new version's functions of the same ARN).
DEFAULT_SWAP_DRAIN_S = 2.0
# Inbound cloud messages held while the Lambdas are swapped, delivered to whichever version then runs.
DEFAULT_SWAP_HELD_MESSAGES = 10_000
# How long a presigned bundle URL stays valid (IoT Jobs' presignedUrlConfig.expiresInSec: 60-3600).
DEFAULT_PRESIGNED_URL_EXPIRY_S = 3600
