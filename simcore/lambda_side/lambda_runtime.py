"""The Python Lambda runtime of each worker: `python lambda_runtime.py --handler pkg.module.func`.

It imports the handler's module once (for a pinned function that is at core start, so module-level threads
are the function's long-lived work), then serves work forever: get_work, build the event and context, call
the handler, post the result or the handler's error. Logging goes to stderr in the core's line format;
simcore writes it into the function's log file. Python 3.7+ standard library only: it runs inside the
Lambda's own interpreter and must never import simcore. It imports as little as it can before the handler
(no argparse: 1.1 MiB of each worker for one flag, bench/footprint.py).
"""

import base64
import contextlib
import importlib
import json
import logging
import os
import sys
import time
import traceback

ENCODING_JSON = "json"
TIMEOUT_VARIABLE = "SIMCORE_FUNCTION_TIMEOUT_MS"
STATE_FD_VARIABLE = "SIMCORE_STATE_FD"


class CoreLineFormatter(logging.Formatter):
    """`[2019-08-28T16:21:01.581Z][INFO]-file.py:12,message`, every line of a multi-line record prefixed."""

    converter = time.gmtime
    # The core's level names: Python's WARNING and CRITICAL are WARN and FATAL there.
    level_names = {"WARNING": "WARN", "CRITICAL": "FATAL"}

    def format(self, record):
        message = record.getMessage()
        if record.exc_info:
            message = message + "\n" + self.formatException(record.exc_info)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", self.converter(record.created))
        prefix = "[{}.{:03d}Z][{}]-{}:{},".format(
            stamp,
            int(record.msecs),
            self.level_names.get(record.levelname, record.levelname),
            record.filename,
            record.lineno,
        )
        return "\n".join(prefix + line for line in message.splitlines() or [""])


def configure_logging(level_name):
    """Route the root logger to stderr in the core's line format at `level_name`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(CoreLineFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level_name.upper(), logging.INFO))


runtime_logger = logging.getLogger("lambda_runtime")


class ClientContext:
    """`context.client_context`: what the invoker sent (`custom` has `subject` and `source` when routed)."""

    def __init__(self, client=None, custom=None, env=None):
        self.client = client
        self.custom = custom
        self.env = env

    def __repr__(self):
        return "ClientContext(client={!r}, custom={!r}, env={!r})".format(self.client, self.custom, self.env)


class LambdaContext:
    """The handler's `context`, shaped like AWS Lambda's Python context object."""

    def __init__(self, function_arn, invocation_id, client_context, timeout_ms):
        self.aws_request_id = invocation_id
        self.invoked_function_arn = function_arn
        name, version = _name_and_version(function_arn)
        self.function_name = name
        self.function_version = version
        self.identity = None
        self.client_context = client_context
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self._deadline = time.monotonic() + timeout_ms / 1000.0 if timeout_ms else None

    def get_remaining_time_in_millis(self):
        """Milliseconds left before the core times this invocation out (0 when past it)."""
        if self._deadline is None:
            return 0
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _name_and_version(function_arn):
    """(name, qualifier) of a function ARN; the qualifier defaults to `$LATEST` as in AWS Lambda."""
    parts = function_arn.split(":")
    if len(parts) >= 8:
        return parts[6], parts[7]
    if len(parts) == 7:
        return parts[6], "$LATEST"
    return function_arn, "$LATEST"


def decode_client_context(encoded):
    """The client context header (base64 of a JSON object) as a ClientContext; empty if absent or bad."""
    if not encoded:
        return ClientContext()
    try:
        fields = json.loads(base64.b64decode(encoded).decode("utf-8"))
    except (ValueError, TypeError) as error:
        runtime_logger.warning("Ignoring a client context that is not base64 JSON: %s", error)
        return ClientContext()
    if not isinstance(fields, dict):
        return ClientContext()
    return ClientContext(fields.get("client"), fields.get("custom"), fields.get("env"))


def build_event(payload, encoding_type):
    """The handler's event: parsed JSON (`{}` for an empty body) or the raw bytes for `binary`."""
    if encoding_type != ENCODING_JSON:
        return payload
    if not payload:
        return {}
    return json.loads(payload.decode("utf-8"))


def encode_result(result, encoding_type):
    """The handler's return value as result bytes: JSON (None → `null`), bytes passed through for `binary`."""
    if encoding_type != ENCODING_JSON and isinstance(result, (bytes, bytearray)):
        return bytes(result)
    return json.dumps(result).encode("utf-8")


def report_import_started():
    """Tell the core (one byte on the pipe it passed in SIMCORE_STATE_FD) that the handler's import begins.

    From then on the core shows the worker `running`, even if module-level code never returns. The pipe is
    closed and the variable removed before the import, so the Lambda's code and its children never see either.
    """
    text = os.environ.pop(STATE_FD_VARIABLE, "")
    if not text.isdigit():
        return
    descriptor = int(text)
    try:
        os.write(descriptor, b"i")
    except OSError as error:
        runtime_logger.debug("Could not report the import start to the core: %s", error)
    finally:
        with contextlib.suppress(OSError):
            os.close(descriptor)


def load_handler(handler_path):
    """Import `pkg.module` of `pkg.module.func` and return `func`."""
    module_name, _, function_name = handler_path.rpartition(".")
    if not module_name:
        raise ValueError("Handler {!r} is not of the form module.function".format(handler_path))
    module = importlib.import_module(module_name)
    try:
        return getattr(module, function_name)
    except AttributeError:
        message = "Module {!r} has no handler function {!r}".format(module_name, function_name)
        raise ValueError(message) from None


def serve(ipc, function_arn, handler, encoding_type, timeout_ms):
    """Serve work items for `function_arn` forever."""
    from greengrass_ipc_python_sdk.ipc_client import WorkItem

    while True:
        work = ipc.get_work(function_arn)
        if work.invocation_id is None:
            continue
        context = LambdaContext(
            function_arn, work.invocation_id, decode_client_context(work.client_context), timeout_ms
        )
        try:
            event = build_event(work.payload, encoding_type)
            result = encode_result(handler(event, context), encoding_type)
        except Exception as error:
            logging.getLogger().error(
                "Function %s failed handling invocation %s:\n%s",
                function_arn,
                work.invocation_id,
                traceback.format_exc().rstrip(),
            )
            message = str(error) or type(error).__name__
            ipc.post_handler_err(function_arn, work.invocation_id, message)
            continue
        ipc.post_work_result(function_arn, WorkItem(work.invocation_id, result, None))


def hide_from_other_processes_of_this_user():
    """Make this process non-dumpable (Linux `prctl(PR_SET_DUMPABLE, 0)`).

    Functions that share a user (every one runs as `ggc_user` by default, as on a v1 core) could otherwise
    read each other's `/proc/<pid>/environ`, which holds the worker's IPC token, and its memory. A
    non-dumpable process's `/proc/<pid>` files belong to root, so only root reads them. Elsewhere: no-op.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(4, 0, 0, 0, 0) == 0  # 4: PR_SET_DUMPABLE
    except (OSError, AttributeError):
        return False


USAGE = "usage: lambda_runtime.py --handler pkg.module.function"


def parse_handler(argv):
    """The `--handler pkg.module.function` (or `--handler=...`) of `argv`; SystemExit(2) with the usage if absent."""
    handler = None
    index = 0
    while index < len(argv):
        argument = argv[index]
        if argument == "--handler" and index + 1 < len(argv):
            handler, index = argv[index + 1], index + 2
        elif argument.startswith("--handler="):
            handler, index = argument.split("=", 1)[1], index + 1
        else:
            sys.stderr.write("{}\nlambda_runtime.py: unexpected argument {!r}\n".format(USAGE, argument))
            raise SystemExit(2)
    if not handler:
        sys.stderr.write("{}\nlambda_runtime.py: --handler is required\n".format(USAGE))
        raise SystemExit(2)
    return handler


def main(argv=None):
    """Entry point: parse `--handler`, import it, serve work."""
    # First of all: the token in this process's environment is another function's way in.
    hide_from_other_processes_of_this_user()
    handler_path = parse_handler(sys.argv[1:] if argv is None else list(argv))

    configure_logging(os.environ.get("LOG_LEVEL", "INFO"))
    # The code directory is the worker's cwd; put it first, as Lambda does with its task root.
    code_dir = os.getcwd()
    if code_dir not in sys.path:
        sys.path.insert(0, code_dir)
    function_arn = os.environ.get("MY_FUNCTION_ARN")
    if not function_arn:
        runtime_logger.error("MY_FUNCTION_ARN is not set: refusing to run greengrasssdk in mock mode")
        return 2

    from greengrass_ipc_python_sdk.ipc_client import IPCClient, IPCException

    report_import_started()
    try:
        handler = load_handler(handler_path)
    except Exception:
        runtime_logger.error("Cannot load handler %s:\n%s", handler_path, traceback.format_exc().rstrip())
        return 1
    sys.stdout.flush()
    timeout_ms = int(os.environ.get(TIMEOUT_VARIABLE, "0") or 0)
    encoding_type = os.environ.get("ENCODING_TYPE", ENCODING_JSON)
    try:
        serve(IPCClient(), function_arn, handler, encoding_type, timeout_ms)
    except IPCException as error:
        runtime_logger.error("Lost the core's IPC server: %s", error)
        return 3
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
