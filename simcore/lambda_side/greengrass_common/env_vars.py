"""The environment a Greengrass v1 core gives a Lambda process, read once at import as the real module does.

greengrasssdk 1.6.1 imports `MY_FUNCTION_ARN`, `SHADOW_FUNCTION_ARN`, `ROUTER_FUNCTION_ARN` and
`SECRETS_MANAGER_FUNCTION_ARN` from here; `MY_FUNCTION_ARN` being None switches the SDK to its mock mode.
"""

import os

AUTH_TOKEN_VARIABLE = "AWS_CONTAINER_AUTHORIZATION_TOKEN"
DAEMON_PORT_VARIABLE = "GG_DAEMON_PORT"
DEFAULT_DAEMON_PORT = 8000

MY_FUNCTION_ARN = os.environ.get("MY_FUNCTION_ARN")
AUTH_TOKEN = os.environ.get(AUTH_TOKEN_VARIABLE)
GG_DAEMON_PORT = os.environ.get(DAEMON_PORT_VARIABLE, str(DEFAULT_DAEMON_PORT))
SHADOW_FUNCTION_ARN = os.environ.get("SHADOW_FUNCTION_ARN", "arn:aws:lambda:::function:GGShadowService")
ROUTER_FUNCTION_ARN = os.environ.get("ROUTER_FUNCTION_ARN", "arn:aws:lambda:::function:GGRouter")
SECRETS_MANAGER_FUNCTION_ARN = os.environ.get(
    "SECRETS_MANAGER_FUNCTION_ARN", "arn:aws:lambda:::function:GGSecretManager:1"
)
GGC_MAX_INTERFACE_VERSION = os.environ.get("GGC_MAX_INTERFACE_VERSION", "1.5")
ENCODING_TYPE = os.environ.get("ENCODING_TYPE", "json")
AWS_IOT_THING_NAME = os.environ.get("AWS_IOT_THING_NAME")
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
