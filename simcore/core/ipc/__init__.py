"""The v1 IPC protocol: tokens, dispatch to system functions and workers, the HTTP server."""
