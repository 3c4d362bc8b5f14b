"""simcore's stand-in for the core's `greengrass_ipc_python_sdk`: the IPC client greengrasssdk uses."""
