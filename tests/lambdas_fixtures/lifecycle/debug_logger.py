"""A Lambda that logs one DEBUG line and then one INFO line at import, through the root logger as v1 Lambdas do."""

import logging

logger = logging.getLogger(__name__)


def function_handler(event, context):
    """Nothing to do: the lines are logged at import."""
    return None


logger.debug("debug line from the module")
logger.info("info line from the module")
