"""The service facade a v1 core's runtime offers Lambdas: what the Greengrass ML SDK imports to reach a service.

`greengrass_machine_learning_sdk` (which users vendor into their Lambda packages) imports
`GreengrassServiceClient`, `GreengrassServiceMessage` and `GreengrassRuntimeException` from here; its tests
also use `GreengrassServiceCallOutput`. A call is one RequestResponse invocation over the IPC client:
`call(address, message)` posts `message.payload` to the function ARN `address` with `message.context` as the
client context (the SDK passes base64 bytes), waits for the result and answers
- `GreengrassServiceCallOutput(GreengrassServiceMessage('', payload), None)` when the function error is empty,
- `GreengrassServiceCallOutput(None, GreengrassServiceMessage('', payload))` when it is `Handled` (the service
  answered with an error: the ML SDK raises `GreengrassInferenceException` with it),
- and raises `GreengrassRuntimeException` for any other function error (`Unhandled`) or an `IPCException`
  (the ML SDK re-raises it as `GreengrassDependencyException`).
Python 3.7+ standard library only; placed on each Lambda's PYTHONPATH by simcore.
"""

import collections

from greengrass_ipc_python_sdk.ipc_client import IPCClient, IPCException

FUNCTION_ERROR_HANDLED = "Handled"

GreengrassServiceMessage = collections.namedtuple("GreengrassServiceMessage", ["context", "payload"])
GreengrassServiceMessage.__doc__ = "A message to or from a service: `context` (metadata, bytes) and `payload`."

GreengrassServiceCallOutput = collections.namedtuple("GreengrassServiceCallOutput", ["response", "error_response"])
GreengrassServiceCallOutput.__doc__ = "A call's outcome: exactly one of `response`, `error_response` is set."


class GreengrassRuntimeException(Exception):
    """The call could not be made or the service failed outside its own error handling."""


class GreengrassServiceClient(object):
    """Synchronous request-reply calls to services on the local core, addressed by function ARN."""

    def __init__(self):
        self._ipc = IPCClient()

    def call(self, address, message):
        """Invoke `address` with `message` and block until its result: a `GreengrassServiceCallOutput`.

        Raises GreengrassRuntimeException when the core cannot be reached, refuses the call, or the
        service failed with an error it did not handle.
        """
        try:
            invocation_id = self._ipc.post_work(address, message.payload, message.context)
            result = self._ipc.get_work_result(address, invocation_id)
        except IPCException as error:
            raise GreengrassRuntimeException(str(error)) from error
        if not result.func_err:
            return GreengrassServiceCallOutput(GreengrassServiceMessage("", result.payload), None)
        if result.func_err == FUNCTION_ERROR_HANDLED:
            return GreengrassServiceCallOutput(None, GreengrassServiceMessage("", result.payload))
        raise GreengrassRuntimeException(result.func_err)
