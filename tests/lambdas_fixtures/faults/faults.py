"""Lambdas that misbehave on purpose: eat memory, overrun their timeout, kill their own process."""

import json
import logging
import os
import sys
import time

import greengrasssdk

iot = greengrasssdk.client("iot-data")
logger = logging.getLogger(__name__)
_held = []


def hog(event, context):
    """Hold `mb` megabytes (touched, so they are resident) and wait to be killed."""
    _held.append(b"x" * (int(event.get("mb", 256)) * 1024 * 1024))
    time.sleep(60)
    return {"survived": True}


def sleeper(event, context):
    """Sleep `seconds`, then answer."""
    time.sleep(float(event.get("seconds", 60)))
    return {"slept": event.get("seconds")}


def gate(event, context):
    """Leave a file named by this process's pid and the call's number in `arrived`, then wait (at most a
    minute) until the file `release` exists."""
    with open(os.path.join(event["arrived"], "{}-{}".format(os.getpid(), event["call"])), "w"):
        pass
    deadline = time.monotonic() + 60
    while not os.path.exists(event["release"]) and time.monotonic() < deadline:
        time.sleep(0.01)
    return {"pid": os.getpid()}


def relay(event, context):
    """Forward each routed message to `relay/out` with this process's pid; crash when asked.

    Module-level code runs once per worker: it announces the worker on `relay/started`.
    """
    if isinstance(event, dict) and event.get("crash"):
        os._exit(70)
    logger.info("relaying %s", event)
    print("plain stdout line")
    sys.stdout.flush()
    iot.publish(topic="relay/out", payload=json.dumps({"event": event, "pid": os.getpid()}))
    return None


iot.publish(topic="relay/started", payload=json.dumps({"pid": os.getpid()}))
