"""Where the token exchange service gets credentials, in order (docs/credentials.md): the AWS IoT credentials
provider named by config.json, else the environment/profile simcore runs with (development), else none.

`IotCredentialsProvider` is AWS's documented call: `GET https://<endpoint>/role-aliases/<alias>/credentials`
over mutual TLS with the core's certificate, the core's thing in `x-amzn-iot-thingname`; its answer
`{"credentials": {accessKeyId, secretAccessKey, sessionToken, expiration}}`. `EnvironmentCredentials` asks
botocore's default chain of the core's own process (loaded only when first asked, so `simcore run` does not
load botocore otherwise).
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

from simcore.core.tes import AwsCredentials, CredentialsError, CredentialSource, NoCredentialSource
from simcore.defaults import DEFAULT_TES_FETCH_TIMEOUT_S

THING_NAME_HEADER = "x-amzn-iot-thingname"
# An answer is a few hundred bytes; nothing bigger is read from the endpoint.
MAX_ANSWER_BYTES = 64 * 1024
# What botocore reports for long-term keys, which have no expiry: they are handed out for this long at a time.
STATIC_CREDENTIALS_LIFETIME = timedelta(hours=1)
# Variables and files that tell whether the process could have credentials of its own (for the start warning).
CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_WEB_IDENTITY_TOKEN_FILE")


@dataclass(frozen=True)
class IotCredentialsProvider:
    """The AWS IoT credentials provider at `endpoint` (`host[:port]`), assuming `role_alias` as `thing_name`."""

    endpoint: str
    role_alias: str
    thing_name: str
    cert_path: Path
    key_path: Path
    ca_path: Path
    timeout_s: float = DEFAULT_TES_FETCH_TIMEOUT_S

    def describe(self) -> str:
        """One line for the core's log."""
        return f"the AWS IoT credentials provider {self.endpoint}, role alias {self.role_alias}"

    def _connection(self) -> http.client.HTTPSConnection:
        context = ssl.create_default_context(cafile=str(self.ca_path))
        context.load_cert_chain(str(self.cert_path), str(self.key_path))
        host, _, port = self.endpoint.partition(":")
        return http.client.HTTPSConnection(host, int(port) if port else 443, context=context, timeout=self.timeout_s)

    def fetch(self) -> AwsCredentials:
        """Fresh credentials; CredentialsError naming the endpoint and what it said when there are none."""
        path = f"/role-aliases/{quote(self.role_alias, safe='')}/credentials"
        try:
            connection = self._connection()
        except (OSError, ssl.SSLError) as error:
            raise CredentialsError(f"cannot use the core's certificate for {self.describe()}: {error}") from error
        try:
            connection.request("GET", path, headers={THING_NAME_HEADER: self.thing_name})
            response = connection.getresponse()
            body = response.read(MAX_ANSWER_BYTES + 1)
        except (TimeoutError, OSError, ssl.SSLError, http.client.HTTPException) as error:
            raise CredentialsError(f"cannot reach {self.describe()}: {error}") from error
        finally:
            connection.close()
        if response.status != 200:
            raise CredentialsError(
                f"{self.describe()} answered {response.status}: {_message(body)}",
                upstream_status=response.status, http_status=502,
            )
        return _parse_answer(body, self.describe())


def _message(body: bytes) -> str:
    """AWS's `message` from an error answer, else the start of the body."""
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if isinstance(document, dict) and isinstance(document.get("message"), str):
        return document["message"][:300]
    return body[:300].decode("utf-8", "replace") or "(no body)"


def _parse_answer(body: bytes, source: str) -> AwsCredentials:
    if len(body) > MAX_ANSWER_BYTES:
        raise CredentialsError(f"{source} answered more than {MAX_ANSWER_BYTES} bytes", http_status=502)
    try:
        credentials = json.loads(body)["credentials"]
        return AwsCredentials(
            access_key_id=str(credentials["accessKeyId"]),
            secret_access_key=str(credentials["secretAccessKey"]),
            session_token=str(credentials["sessionToken"]),
            expiration=_parse_time(str(credentials["expiration"])),
        )
    except (ValueError, KeyError, TypeError) as error:
        raise CredentialsError(f"{source} answered something other than credentials: {error}",
                               http_status=502) from error


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class EnvironmentCredentials:
    """botocore's default credential chain in the core's own process: its environment, profile, instance role."""

    def describe(self) -> str:
        """One line for the core's log."""
        return "the environment/profile simcore runs with (development only)"

    def fetch(self) -> AwsCredentials:
        """The chain's current credentials; CredentialsError naming what to configure when it finds none."""
        import botocore.exceptions  # deferred: the core loads botocore only when a Lambda asks for credentials
        import botocore.session

        try:
            found = botocore.session.Session().get_credentials()
        except botocore.exceptions.BotoCoreError as error:
            raise CredentialsError(f"{self.describe()}: {error}") from error
        if found is None:
            from simcore.core.tes import NOTHING_CONFIGURED

            raise CredentialsError(NOTHING_CONFIGURED)
        frozen = found.get_frozen_credentials()
        # Temporary credentials carry their expiry (botocore keeps it on the object, unexposed); long-term keys
        # have none and are handed out an hour at a time.
        expiry = getattr(found, "_expiry_time", None)
        if not isinstance(expiry, datetime):
            expiry = datetime.now(UTC) + STATIC_CREDENTIALS_LIFETIME
        return AwsCredentials(frozen.access_key, frozen.secret_key, frozen.token or "", expiry)


def process_may_have_credentials(environment: dict[str, str] | None = None) -> bool:
    """Whether the core's process shows a sign of AWS credentials (a variable, a shared credentials file)."""
    environment = dict(os.environ) if environment is None else environment
    if any(environment.get(name) for name in CREDENTIAL_VARIABLES):
        return True
    files = [environment.get("AWS_SHARED_CREDENTIALS_FILE"), environment.get("AWS_CONFIG_FILE"),
             "~/.aws/credentials", "~/.aws/config"]
    return any(Path(name).expanduser().is_file() for name in files if name)


def choose_source(
    *, credentials_endpoint: str | None, role_alias: str | None, thing_name: str | None,
    cert_path: Path | None, key_path: Path | None, ca_path: Path | None,
) -> tuple[CredentialSource, str | None]:
    """The source in the documented order, and the warning to log at start (None when there is none to give).

    With an endpoint and alias (and the core's certificate): the IoT credentials provider. Else the process's
    own environment/profile, warned about. Else (no sign of credentials) `NoCredentialSource`, warned about:
    the workers start and the first request is answered the error that names what to configure.
    """
    if credentials_endpoint and role_alias and thing_name and cert_path and key_path and ca_path:
        return IotCredentialsProvider(credentials_endpoint, role_alias, thing_name, cert_path, key_path,
                                      ca_path), None
    if process_may_have_credentials():
        return EnvironmentCredentials(), (
            "config.json names no credentialsEndpoint/roleAlias: the Lambdas get the AWS credentials simcore "
            "itself runs with (its environment or profile), for development only")
    return NoCredentialSource(), NOTHING_CONFIGURED_AT_START


NOTHING_CONFIGURED_AT_START = (
    "no AWS credentials for the Lambdas: their AWS calls will fail until config.json names "
    "coreThing.credentialsEndpoint and coreThing.roleAlias (or simcore runs with AWS credentials)")
