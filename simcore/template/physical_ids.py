"""The names, ids and ARNs simcore gives the resources of a template, since it creates none of them in AWS.

Every value is deterministic: the same template, parameters, region, account and stack name always give
the same ids, so a redeploy keeps the identities Lambdas and shadows were keyed on.

- A name property the template sets (`FunctionName`, `ThingName`, `PolicyName`, `RoleName`, `Name`,
  `BucketName`) is used as is.
- Otherwise a name is made as CloudFormation does: `<stack>-<LogicalId>-<SUFFIX>`, at most 64 characters,
  where SUFFIX is the first 12 base32 characters of sha256("<account>/<region>/<stack>/<LogicalId>").
- Ids that AWS makes as UUIDs (Greengrass group, definition and version ids, thing ids) are
  uuid5(NAMESPACE_URL, "simcore:<account>:<region>:<stack>:<LogicalId>:<what>").
- A certificate id is sha256 of the same string in hex (64 characters, like AWS's).
- Lambda: `Ref` gives the name, `Arn` the unqualified ARN. SAM's `Ref X.Alias` gives
  `arn:aws:lambda:<region>:<account>:function:<FunctionName>:<AutoPublishAlias>` and `Ref X.Version`
  the version ARN ending `:1`. `AWS::Lambda::Version` resources of one function are numbered 1, 2, ...
  in template order; `AWS::Lambda::Alias` gives `...:function:<FunctionName>:<Name>`.
- Greengrass: `Ref` of a `*Definition` or `Group` is its Id; `Arn`, `Id`, `LatestVersionArn` (the
  version its `InitialVersion` creates) follow the service's ARN forms
  (`arn:aws:greengrass:<region>:<account>:/greengrass/definition/functions/<id>/versions/<vid>`);
  `Ref` of a `*DefinitionVersion` or `GroupVersion` is the version's ARN.
- IoT: thing `arn:aws:iot:<region>:<account>:thing/<name>`, certificate `...:cert/<id>`, policy
  `...:policy/<name>`. IAM role `arn:aws:iam::<account>:role<Path><name>`.
- Custom resources: what `Ref` gives is whatever their code returns in AWS. simcore gives the 64-hex
  sha256 of the seed: the shape of an IoT certificate id, which is what certificate-making custom
  resources (the v1 accelerator's, this project's `ThingCertificate`) return. Their attributes exist only
  once their code runs, so `Fn::GetAtt` on them is an error that names the attribute.
- Any other type: `Ref` is a made name; an attribute the CloudFormation schema (cfn-lint's copy) lists is
  refused as "not modelled", one it does not list as unknown.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Callable
from typing import Any

from simcore.errors import TemplateError

GREENGRASS_DEFINITION_KINDS = {
    "Core": "cores",
    "Device": "devices",
    "Function": "functions",
    "Resource": "resources",
    "Subscription": "subscriptions",
    "Logger": "loggers",
    "Connector": "connectors",
}
LAMBDA_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")
NAME_PROPERTIES = {
    "AWS::Serverless::Function": "FunctionName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::IoT::Thing": "ThingName",
    "AWS::IoT::Policy": "PolicyName",
    "AWS::IAM::Role": "RoleName",
    "AWS::S3::Bucket": "BucketName",
}

# (logical_id, property) -> resolved value or None when absent
PropertyReader = Callable[[str, str], Any]


def definition_kind(resource_type: str) -> tuple[str, bool] | None:
    """("Function", False) for AWS::Greengrass::FunctionDefinition, ("Function", True) for its Version."""
    prefix = "AWS::Greengrass::"
    if not resource_type.startswith(prefix):
        return None
    short = resource_type[len(prefix) :]
    for kind in GREENGRASS_DEFINITION_KINDS:
        if short == f"{kind}Definition":
            return kind, False
        if short == f"{kind}DefinitionVersion":
            return kind, True
    return None


def lambda_name_from_arn(value: str) -> str:
    """The function name in a name, a partial ARN or a (qualified) Lambda ARN."""
    parts = value.split(":")
    if "function" in parts:
        return parts[parts.index("function") + 1]
    return value


class PhysicalIds:
    """Answers `Ref` and `Fn::GetAtt` for a template's resources (the resolver's `ResourceIds`)."""

    def __init__(
        self,
        resources: dict[str, dict],
        *,
        region: str,
        account_id: str,
        stack_name: str,
        partition: str,
        exists: Callable[[str], bool],
        read_property: PropertyReader,
    ):
        self._resources = resources
        self.region = region
        self.account_id = account_id
        self.stack_name = stack_name
        self.partition = partition
        self._exists = exists
        self._read_property = read_property

    # -- the ResourceIds protocol --------------------------------------------------------------------

    def declared(self, logical_id: str) -> bool:
        """True when the template declares `logical_id`."""
        return logical_id in self._resources

    def is_sam_function(self, logical_id: str) -> bool:
        """True for an `AWS::Serverless::Function` (whose `.Alias`/`.Version` SAM resolves in Ref and Sub)."""
        return self.declared(logical_id) and self.type_of(logical_id) == "AWS::Serverless::Function"

    def exists(self, logical_id: str) -> bool:
        """True when `logical_id` is declared and its Condition holds."""
        return self.declared(logical_id) and self._exists(logical_id)

    def ref(self, logical_id: str, path: str) -> Any:
        """`Ref logical_id`, including SAM's `X.Alias` and `X.Version`."""
        if logical_id not in self._resources and "." in logical_id:
            base, suffix = logical_id.split(".", 1)
            return self._sam_ref(base, suffix, path)
        self._require_exists(logical_id, path)
        resource_type = self.type_of(logical_id)
        kind = definition_kind(resource_type)
        if resource_type in LAMBDA_TYPES:
            return self.lambda_name(logical_id)
        if resource_type == "AWS::Lambda::Version":
            return self._version_arn(logical_id)
        if resource_type == "AWS::Lambda::Alias":
            return self._alias_arn(logical_id)
        if kind is not None:
            return self.definition_version_arn(logical_id) if kind[1] else self.uuid_for(logical_id, "id")
        if resource_type == "AWS::Greengrass::Group":
            return self.uuid_for(logical_id, "id")
        if resource_type == "AWS::Greengrass::GroupVersion":
            return self.group_version_arn(logical_id)
        if resource_type == "AWS::IoT::Certificate" or _is_custom(resource_type):
            return self.certificate_id(logical_id)
        return self.name_of(logical_id)

    def get_att(self, logical_id: str, attribute: str, path: str) -> Any:
        """`Fn::GetAtt [logical_id, attribute]`."""
        self._require_exists(logical_id, path)
        resource_type = self.type_of(logical_id)
        value = self._attribute(logical_id, resource_type, attribute)
        if value is not None:
            return value
        if _is_custom(resource_type):
            raise TemplateError(
                f"Fn::GetAtt {logical_id}.{attribute}: a custom resource's attributes exist only once its "
                "code runs in AWS; simcore cannot provide them",
                location=path,
            )
        if attribute in _schema_attributes(resource_type, self.region):
            raise TemplateError(
                f"Fn::GetAtt {logical_id}.{attribute}: simcore does not model attribute {attribute} of {resource_type}",
                location=path,
            )
        raise TemplateError(
            f"Fn::GetAtt {logical_id}.{attribute}: {resource_type} has no attribute {attribute}",
            location=path,
        )

    # -- names and ARNs -----------------------------------------------------------------------------

    def type_of(self, logical_id: str) -> str:
        """The resource's `Type`."""
        return str(self._resources[logical_id].get("Type", ""))

    def seed(self, logical_id: str, what: str) -> str:
        """The string every invented id of `logical_id` is derived from."""
        return f"simcore:{self.account_id}:{self.region}:{self.stack_name}:{logical_id}:{what}"

    def uuid_for(self, logical_id: str, what: str) -> str:
        """A UUID for `what` (id, version...) of `logical_id`."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, self.seed(logical_id, what)))

    def certificate_id(self, logical_id: str) -> str:
        """A 64-hex-character certificate id."""
        return hashlib.sha256(self.seed(logical_id, "certificate").encode()).hexdigest()

    def default_name(self, logical_id: str) -> str:
        """`<stack>-<LogicalId>-<SUFFIX>` as CloudFormation names resources, at most 64 characters."""
        digest = hashlib.sha256(f"{self.account_id}/{self.region}/{self.stack_name}/{logical_id}".encode())
        suffix = base64.b32encode(digest.digest()).decode("ascii")[:12]
        return f"{self.stack_name}-{logical_id}"[:51] + "-" + suffix

    def name_of(self, logical_id: str) -> str:
        """The resource's name: its name property when set, else a made one."""
        name_property = NAME_PROPERTIES.get(self.type_of(logical_id))
        if name_property:
            value = self._read_property(logical_id, name_property)
            if value is not None:
                return str(value)
        return self.default_name(logical_id)

    def lambda_name(self, logical_id: str) -> str:
        """A Lambda function's FunctionName (set or made)."""
        return self.name_of(logical_id)

    def lambda_arn(self, function_name: str) -> str:
        """The unqualified ARN of the Lambda named `function_name`."""
        return f"arn:{self.partition}:lambda:{self.region}:{self.account_id}:function:{function_name}"

    def _sam_ref(self, base: str, suffix: str, path: str) -> str:
        if base not in self._resources:
            raise TemplateError(f"Unresolved resource dependencies [{base}.{suffix}]", location=path)
        self._require_exists(base, path)
        if self.type_of(base) != "AWS::Serverless::Function" or suffix not in ("Alias", "Version"):
            raise TemplateError(
                f"Ref {base}.{suffix}: only an AWS::Serverless::Function has .Alias and .Version",
                location=path,
            )
        alias = self._read_property(base, "AutoPublishAlias")
        if alias is None:
            raise TemplateError(
                f"Ref {base}.{suffix}: {base} has no AutoPublishAlias, so SAM creates no {suffix} for it",
                location=path,
            )
        qualifier = str(alias) if suffix == "Alias" else "1"
        return f"{self.lambda_arn(self.lambda_name(base))}:{qualifier}"

    def _function_name_property(self, logical_id: str) -> str:
        value = self._read_property(logical_id, "FunctionName")
        if value is None:
            raise TemplateError(f"{logical_id} needs FunctionName", location=f"Resources.{logical_id}.Properties")
        return lambda_name_from_arn(str(value))

    def _version_number(self, logical_id: str) -> int:
        function_name = self._function_name_property(logical_id)
        number = 0
        for other_id, body in self._resources.items():
            if body.get("Type") == "AWS::Lambda::Version" and self.exists(other_id):
                if self._function_name_property(other_id) == function_name:
                    number += 1
                if other_id == logical_id:
                    return number
        return number

    def _version_arn(self, logical_id: str) -> str:
        return f"{self.lambda_arn(self._function_name_property(logical_id))}:{self._version_number(logical_id)}"

    def _alias_arn(self, logical_id: str) -> str:
        alias_name = self._read_property(logical_id, "Name")
        if alias_name is None:
            raise TemplateError(f"{logical_id} needs Name", location=f"Resources.{logical_id}.Properties")
        return f"{self.lambda_arn(self._function_name_property(logical_id))}:{alias_name}"

    def definition_arn(self, logical_id: str) -> str:
        """The ARN of a Greengrass `*Definition`."""
        kind = definition_kind(self.type_of(logical_id))
        assert kind is not None and not kind[1]
        collection = GREENGRASS_DEFINITION_KINDS[kind[0]]
        return (
            f"arn:{self.partition}:greengrass:{self.region}:{self.account_id}:/greengrass/definition/"
            f"{collection}/{self.uuid_for(logical_id, 'id')}"
        )

    def definition_version_arn(self, logical_id: str) -> str:
        """The ARN of a `*DefinitionVersion` resource: its definition's ARN + /versions/<vid>."""
        kind, _ = definition_kind(self.type_of(logical_id)) or ("", False)
        id_property = f"{kind}DefinitionId"
        definition_id = self._read_property(logical_id, id_property)
        if definition_id is None:
            raise TemplateError(f"{logical_id} needs {id_property}", location=f"Resources.{logical_id}.Properties")
        collection = GREENGRASS_DEFINITION_KINDS[kind]
        return (
            f"arn:{self.partition}:greengrass:{self.region}:{self.account_id}:/greengrass/definition/"
            f"{collection}/{definition_id}/versions/{self.uuid_for(logical_id, 'version')}"
        )

    def group_arn(self, logical_id: str) -> str:
        """The ARN of a Greengrass group."""
        return (
            f"arn:{self.partition}:greengrass:{self.region}:{self.account_id}:/greengrass/groups/"
            f"{self.uuid_for(logical_id, 'id')}"
        )

    def group_version_arn(self, logical_id: str) -> str:
        """The ARN of a `GroupVersion` resource."""
        group_id = self._read_property(logical_id, "GroupId")
        if group_id is None:
            raise TemplateError(f"{logical_id} needs GroupId", location=f"Resources.{logical_id}.Properties")
        return (
            f"arn:{self.partition}:greengrass:{self.region}:{self.account_id}:/greengrass/groups/"
            f"{group_id}/versions/{self.uuid_for(logical_id, 'version')}"
        )

    def _attribute(self, logical_id: str, resource_type: str, attribute: str) -> Any:
        """The attribute's value, or None when simcore does not know it for this type."""
        resolver = self._attribute_resolver(resource_type)
        return None if resolver is None else resolver(logical_id, attribute)

    def _attribute_resolver(self, resource_type: str) -> Callable[[str, str], Any] | None:
        """The method giving `Fn::GetAtt` values for `resource_type` (logical id, attribute), or None."""
        kind = definition_kind(resource_type)
        if kind is not None:
            return self._definition_version_attribute if kind[1] else self._definition_attribute
        if resource_type in LAMBDA_TYPES:
            return self._function_attribute
        return {
            "AWS::Lambda::Version": self._version_attribute,
            "AWS::Lambda::Alias": self._alias_attribute,
            "AWS::Greengrass::Group": self._group_attribute,
            "AWS::IoT::Thing": self._thing_attribute,
            "AWS::IoT::Certificate": self._certificate_attribute,
            "AWS::IoT::Policy": self._policy_attribute,
            "AWS::IAM::Role": self._role_attribute,
            "AWS::S3::Bucket": self._bucket_attribute,
        }.get(resource_type)

    # Each resolver below answers one resource type; None is "not an attribute simcore knows".
    # A type with several attributes builds all of them, as AWS fixes them together at creation.

    def _function_attribute(self, logical_id: str, attribute: str) -> Any:
        return self.lambda_arn(self.lambda_name(logical_id)) if attribute == "Arn" else None

    def _version_attribute(self, logical_id: str, attribute: str) -> Any:
        return {
            "Version": str(self._version_number(logical_id)),
            "FunctionArn": self._version_arn(logical_id),
        }.get(attribute)

    def _alias_attribute(self, logical_id: str, attribute: str) -> Any:
        return self._alias_arn(logical_id) if attribute == "AliasArn" else None

    def _definition_attribute(self, logical_id: str, attribute: str) -> Any:
        return {
            "Id": self.uuid_for(logical_id, "id"),
            "Arn": self.definition_arn(logical_id),
            "LatestVersionArn": self.definition_arn(logical_id)
            + f"/versions/{self.uuid_for(logical_id, 'initial-version')}",
            "Name": self._read_property(logical_id, "Name"),
        }.get(attribute)

    def _definition_version_attribute(self, logical_id: str, attribute: str) -> Any:
        return self.uuid_for(logical_id, "version") if attribute == "Id" else None

    def _group_attribute(self, logical_id: str, attribute: str) -> Any:
        return {
            "Id": self.uuid_for(logical_id, "id"),
            "Arn": self.group_arn(logical_id),
            "LatestVersionArn": self.group_arn(logical_id)
            + f"/versions/{self.uuid_for(logical_id, 'initial-version')}",
            "Name": self._read_property(logical_id, "Name"),
            "RoleArn": self._read_property(logical_id, "RoleArn"),
            "RoleAttachedAt": "1970-01-01T00:00:00Z",
        }.get(attribute)

    def _iot_arn(self, resource: str) -> str:
        return f"arn:{self.partition}:iot:{self.region}:{self.account_id}:{resource}"

    def _thing_attribute(self, logical_id: str, attribute: str) -> Any:
        return {
            "Arn": self._iot_arn(f"thing/{self.name_of(logical_id)}"),
            "Id": self.uuid_for(logical_id, "id"),
        }.get(attribute)

    def _certificate_attribute(self, logical_id: str, attribute: str) -> Any:
        return {
            "Arn": self._iot_arn(f"cert/{self.certificate_id(logical_id)}"),
            "Id": self.certificate_id(logical_id),
        }.get(attribute)

    def _policy_attribute(self, logical_id: str, attribute: str) -> Any:
        return {"Arn": self._iot_arn(f"policy/{self.name_of(logical_id)}"), "Id": self.name_of(logical_id)}.get(
            attribute
        )

    def _role_attribute(self, logical_id: str, attribute: str) -> Any:
        role_path = self._read_property(logical_id, "Path") or "/"
        return {
            "Arn": f"arn:{self.partition}:iam::{self.account_id}:role{role_path}{self.name_of(logical_id)}",
            "RoleId": "AROA" + hashlib.sha256(self.seed(logical_id, "role").encode()).hexdigest()[:17].upper(),
        }.get(attribute)

    def _bucket_attribute(self, logical_id: str, attribute: str) -> Any:
        bucket = self.name_of(logical_id)
        return {
            "Arn": f"arn:{self.partition}:s3:::{bucket}",
            "DomainName": f"{bucket}.s3.amazonaws.com",
            "RegionalDomainName": f"{bucket}.s3.{self.region}.amazonaws.com",
        }.get(attribute)

    def _require_exists(self, logical_id: str, path: str) -> None:
        if logical_id not in self._resources:
            raise TemplateError(f"Unresolved resource dependencies [{logical_id}]", location=path)
        if not self._exists(logical_id):
            raise TemplateError(
                f"{logical_id} is not created: its Condition is false, so nothing may refer to it here",
                location=path,
            )


def _is_custom(resource_type: str) -> bool:
    return resource_type == "AWS::CloudFormation::CustomResource" or resource_type.startswith("Custom::")


def _schema_attributes(resource_type: str, region: str) -> set[str]:
    """The read-only attributes cfn-lint's copy of the CloudFormation schema lists for `resource_type`."""
    try:
        from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

        schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema(region, resource_type).schema
    except Exception:  # noqa: BLE001 - an unknown type or region just means "no attributes known"
        return set()
    prefix = "/properties/"
    return {
        item[len(prefix) :].replace("/", ".")
        for item in schema.get("readOnlyProperties", [])
        if item.startswith(prefix)
    }
