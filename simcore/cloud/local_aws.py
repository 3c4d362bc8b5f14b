"""The stand-in cloud's local AWS: moto in server mode, a real HTTP endpoint on loopback only.

One moto server answers every service the group uses (S3, CloudWatch, DynamoDB, Kinesis, IoT...), told apart
by the request's signature, as moto's server does. Clients reach it with botocore's own `endpoint_url` (or the
`AWS_ENDPOINT_URL` setting); it accepts any credentials, so it is a development stand-in, never a security
boundary: it binds to 127.0.0.1 and nothing else.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import urllib.request
from types import TracebackType

from moto.server import ThreadedMotoServer

LOOPBACK = "127.0.0.1"


class LocalAws:
    """A moto server on a loopback port (0: the system picks a free one) for as long as it is started."""

    _running = 0  # started and not stopped, in this process
    _running_lock = threading.Lock()

    def __init__(self, port: int = 0) -> None:
        self._server = ThreadedMotoServer(ip_address=LOOPBACK, port=port, verbose=False)
        self._endpoint: str | None = None

    def start(self) -> str:
        """Start serving and return the endpoint URL (`http://127.0.0.1:<port>`)."""
        # werkzeug logs every request at INFO: a busy exporter would flood the stand-in's log.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server.start()
        with LocalAws._running_lock:
            LocalAws._running += 1
        host, port = self._server.get_host_and_port()
        self._endpoint = f"http://{host}:{port}"
        return self._endpoint

    @property
    def endpoint(self) -> str:
        """The endpoint URL; only once started."""
        if self._endpoint is None:
            raise RuntimeError("the local AWS is not started")
        return self._endpoint

    def reset(self) -> None:
        """Forget every resource of every service (moto's own reset call), as a fresh account."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def stop(self) -> None:
        """Stop serving; the data is gone with it.

        moto keeps its resources in memory, per process, not per server: without the reset, the next local AWS
        started in this process (a second demo run in one test session) would find this one's buckets. Only the
        last one serving in the process resets: the others' resources are the same ones."""
        if self._endpoint is not None:
            with LocalAws._running_lock:
                LocalAws._running -= 1
                last = LocalAws._running == 0
            if last:  # another one still serving shares the resources: keep them
                with contextlib.suppress(OSError):
                    self.reset()
            self._server.stop()
            self._endpoint = None

    def __enter__(self) -> LocalAws:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()


def serve_until_stdin_closes() -> None:
    """Run a local AWS in this process, print its endpoint on one line, and stop when stdin reaches its end.

    A parent that wants moto's state kept apart from its own (moto's backends are per process) starts this
    as a child and holds the pipe; the child ends with the pipe, even when the parent is killed.
    """
    with LocalAws() as local_aws:
        print(local_aws.endpoint, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    serve_until_stdin_closes()
