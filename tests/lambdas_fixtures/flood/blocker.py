"""A Lambda that takes one invocation and never finishes it: its queue can only grow (a stalled consumer)."""

import threading

_never = threading.Event()


def function_handler(event, context):
    _never.wait()
