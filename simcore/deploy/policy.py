"""The core thing's IoT policy as the group template gives it (`CorePolicy`), resolved as CloudFormation would:
what the stand-in cloud's broker enforces (`simcore cloud start --enforce-policy`, the demo)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simcore.errors import TemplateError
from simcore.template.loader import resolve_template

POLICY_RESOURCE = "CorePolicy"


def thing_policy(template: Path, thing: str) -> dict[str, Any]:
    """The `CorePolicy` document of `template` for the thing `thing`; TemplateError when there is none."""
    # Only the policy is read: the model's location does not matter here.
    loaded = resolve_template(template, {"ModelS3Uri": "s3://unused/model.tar.gz", "ThingName": thing})
    if POLICY_RESOURCE not in loaded.resolved.resources:
        raise TemplateError(f"the template has no {POLICY_RESOURCE} resource to enforce", location=str(template))
    return loaded.resolved.property_value(POLICY_RESOURCE, "PolicyDocument")
