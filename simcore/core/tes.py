"""The token exchange service: AWS credentials for the Lambdas, cached, from one credential source.

Each worker's botocore finds `AWS_CONTAINER_CREDENTIALS_FULL_URI` (`http://localhost:<ipc port>` + `TES_PATH`)
and `AWS_CONTAINER_AUTHORIZATION_TOKEN` (its IPC token) in its environment; its container credential provider
GETs that URL with the token as `Authorization`. The IPC server checks the token from the headers, then asks
`TokenExchange.answer()`, which serves the source's credentials from a cache (docs/credentials.md):

- credentials are kept until `refresh_before_s` before they expire (half their lifetime when shorter), so a
  worker never gets credentials that botocore would refresh at once, nor ones already expired;
- a failed fetch is kept too (`refusal_hold_s` after the upstream refused, `failure_hold_s` after any other
  failure): every worker asking meanwhile gets the same error without the upstream being asked again, except
  that credentials in hand are served until they actually expire while their refresh fails;
- one fetch at a time: workers asking together wait for the same answer.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from simcore.defaults import DEFAULT_TES_FAILURE_HOLD_S, DEFAULT_TES_REFRESH_BEFORE_S, DEFAULT_TES_REFUSAL_HOLD_S
from simcore.errors import SimcoreError

log = logging.getLogger(__name__)

TES_PATH = "/2016-11-01/credentialprovider/"
# What a worker's environment names; botocore accepts plain http only to loopback hosts, `localhost` among them.
CREDENTIALS_URI_FORM = "http://localhost:{port}" + TES_PATH
NOTHING_CONFIGURED = (
    "no AWS credentials for the Lambdas: set coreThing.credentialsEndpoint and coreThing.roleAlias in "
    "config.json (the AWS IoT credentials provider, `aws iot describe-endpoint --endpoint-type "
    "iot:CredentialProvider` and the group's role alias), or, for development, run simcore with AWS "
    "credentials in its environment or profile"
)


class CredentialsError(SimcoreError):
    """The Lambdas' credentials could not be had. `upstream_status` is the source's HTTP status, if it answered.

    Answered to the worker as 502 (the source refused or answered nonsense) or 503 (no source, or unreachable).
    """

    code = "CredentialsUnavailable"
    http_status = 503

    def __init__(self, message: str, *, upstream_status: int | None = None, http_status: int | None = None):
        super().__init__(message, http_status=http_status)
        self.upstream_status = upstream_status


def credentials_uri(ipc_port: int) -> str:
    """The `AWS_CONTAINER_CREDENTIALS_FULL_URI` of a worker of a core whose IPC server is on `ipc_port`."""
    return CREDENTIALS_URI_FORM.format(port=ipc_port)


@dataclass(frozen=True)
class AwsCredentials:
    """Temporary AWS credentials; `expiration` is timezone-aware (UTC)."""

    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: datetime

    def container_document(self) -> dict[str, str]:
        """The JSON botocore's container provider reads: AccessKeyId, SecretAccessKey, Token, Expiration."""
        return {
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
            "Token": self.session_token,
            "Expiration": self.expiration.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


class CredentialSource(Protocol):
    """Where credentials come from: `describe()` says it in one line, `fetch()` gets fresh ones or raises
    CredentialsError."""

    def describe(self) -> str: ...

    def fetch(self) -> AwsCredentials: ...


class NoCredentialSource:
    """No source configured: every request answers the error that says what to configure."""

    def describe(self) -> str:
        """One line for the core's log."""
        return "none configured"

    def fetch(self) -> AwsCredentials:
        """Always CredentialsError (503) naming what to configure."""
        raise CredentialsError(NOTHING_CONFIGURED)


class TokenExchange:
    """The cache in front of one CredentialSource (policy in the module docstring)."""

    def __init__(
        self,
        source: CredentialSource,
        *,
        refresh_before_s: float = DEFAULT_TES_REFRESH_BEFORE_S,
        refusal_hold_s: float = DEFAULT_TES_REFUSAL_HOLD_S,
        failure_hold_s: float = DEFAULT_TES_FAILURE_HOLD_S,
        clock: Callable[[], float] = time.time,
    ):
        self.source = source
        self.refresh_before_s = refresh_before_s
        self.refusal_hold_s = refusal_hold_s
        self.failure_hold_s = failure_hold_s
        self._clock = clock
        self._lock = threading.Lock()
        self._credentials: AwsCredentials | None = None
        self._refresh_at = 0.0
        self._failure: CredentialsError | None = None
        self._failure_until = 0.0
        self._counters = {"served": 0, "fetched": 0, "fetch_failures": 0, "answered_from_failure_cache": 0}

    def credentials(self) -> AwsCredentials:
        """Credentials to hand out now; CredentialsError (possibly the cached one) when there are none."""
        with self._lock:
            now = self._clock()
            if self._credentials is not None and now < self._refresh_at:
                self._counters["served"] += 1
                return self._credentials
            if self._failure is not None and now < self._failure_until:
                self._counters["answered_from_failure_cache"] += 1
                return self._still_valid(self._failure, now)
            try:
                fetched = self._fetch(now)
            except CredentialsError as error:
                self._remember_failure(error, now)
                return self._still_valid(error, now)
            self._counters["fetched"] += 1
            self._failure = None
            self._credentials = fetched
            expires = fetched.expiration.timestamp()
            self._refresh_at = expires - min(self.refresh_before_s, (expires - now) / 2)
            self._counters["served"] += 1
            return fetched

    def _fetch(self, now: float) -> AwsCredentials:
        try:
            fetched = self.source.fetch()
        except CredentialsError:
            raise
        except Exception as error:  # a source's unexpected failure still answers the worker, and is cached
            log.exception("fetching AWS credentials from %s failed", self.source.describe())
            raise CredentialsError(f"fetching AWS credentials failed: {error}") from error
        if fetched.expiration.timestamp() <= now:
            raise CredentialsError(f"{self.source.describe()} returned credentials that have already expired "
                                   f"({fetched.expiration.isoformat()})", http_status=502)
        return fetched

    def _still_valid(self, failure: CredentialsError, now: float) -> AwsCredentials:
        """While a refresh fails, the credentials in hand are served until they expire; then the failure is."""
        if self._credentials is not None and now < self._credentials.expiration.timestamp():
            self._counters["served"] += 1
            return self._credentials
        raise failure

    def _remember_failure(self, error: CredentialsError, now: float) -> None:
        self._counters["fetch_failures"] += 1
        refused = error.upstream_status is not None and 400 <= error.upstream_status < 500
        self._failure = error
        self._failure_until = now + (self.refusal_hold_s if refused else self.failure_hold_s)
        log.warning("AWS credentials for the Lambdas unavailable (%s): %s", self.source.describe(), error.message)

    def answer(self) -> bytes:
        """The body of a 200 answer to a worker: the container document as JSON. CredentialsError otherwise."""
        return json.dumps(self.credentials().container_document()).encode()

    def counters(self) -> dict[str, int]:
        """How many requests were served, fetches made and failed, and answered from the failure cache."""
        with self._lock:
            return dict(self._counters)
