"""Custom::GreengrassDeploymentReset: force-reset a group's deployments on stack delete.

The Greengrass service refuses to delete a group that has been deployed; CloudFormation deletes this
resource before the group (it names the group's id), so resetting here lets the stack delete cleanly.
Property: GroupId. Create and Update do nothing but check the property.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import boto3
from botocore.exceptions import ClientError

from .protocol import Outcome, required_property, run

LOGGER = logging.getLogger(__name__)

# What the service answers when there is nothing to reset: no such group, or no deployment to undo.
NOTHING_TO_RESET = ("IdNotFoundException", "ResourceNotFoundException")


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point: serve one CloudFormation request."""
    return run(event, create=create_or_update, update=create_or_update, delete=delete)


def physical_id(group_id: str) -> str:
    """This resource's id: one reset guard per group."""
    return f"deployment-reset-{group_id}"


def create_or_update(event: Mapping[str, Any]) -> Outcome:
    """Nothing to do until Delete; a missing GroupId is reported now rather than at stack delete."""
    group_id = required_property(event, "GroupId")
    return physical_id(group_id), {"GroupId": group_id}


def delete(event: Mapping[str, Any]) -> Outcome:
    """`ResetDeployments(Force=True)`; a group that is gone or was never deployed needs nothing."""
    group_id = required_property(event, "GroupId")
    try:
        reset = boto3.client("greengrass").reset_deployments(GroupId=group_id, Force=True)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in NOTHING_TO_RESET:
            LOGGER.info("group %s: nothing to reset (%s)", group_id, error)
            return event.get("PhysicalResourceId") or physical_id(group_id), {}
        raise
    deployment_id = reset.get("DeploymentId", "")
    LOGGER.info("group %s: deployments reset by %s", group_id, deployment_id)
    return event.get("PhysicalResourceId") or physical_id(group_id), {"DeploymentId": deployment_id}
