"""A Lambda whose module-level code raises: every worker dies at import, so its core crash-loops."""


def function_handler(event, context):
    """Never reached."""
    return None


raise RuntimeError("sensor bus /dev/i2c-9 is missing")
