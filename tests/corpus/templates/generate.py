"""Writes tests/corpus/templates/*.yaml: each a whole template with one fault, and its expected error.

Run it after changing a case: `.venv/bin/python tests/corpus/templates/generate.py`.
"""

import json
from pathlib import Path

OUT = Path(__file__).resolve().parent
BASE = """\
{transform}Parameters:
  ThingName:
    Type: String
    Default: corpus-core
{params}
Conditions:
  Always: !Equals [a, a]
{conditions}
Mappings:
  Sizes:
    Small: {{KB: 16384}}

Resources:
  Fn:
    Type: {fn_type}
    Properties:
      {code_key}: {code}
      Handler: sensor.handler.function_handler
      Runtime: python3.8
{fn_extra}
  Thing:
    Type: AWS::IoT::Thing
    Properties:
      ThingName: !Ref ThingName

  Cert:
    Type: AWS::IoT::Certificate
    Properties:
      CertificateSigningRequest: corpus
      Status: ACTIVE
{extra_resources}
  CoreDef:
    Type: AWS::Greengrass::CoreDefinition
    Properties:
      Name: core
      InitialVersion:
        Cores:
{cores}
  FnDef:
    Type: AWS::Greengrass::FunctionDefinition
    Properties:
      Name: functions
      InitialVersion:
{default_config}        Functions:
          - Id: fn
            FunctionArn: {function_arn}
            FunctionConfiguration:
{fn_config}
  ResDef:
    Type: AWS::Greengrass::ResourceDefinition
    Properties:
      Name: resources
      InitialVersion:
        Resources:
{resources}
  SubDef:
    Type: AWS::Greengrass::SubscriptionDefinition
    Properties:
      Name: subscriptions
      InitialVersion:
        Subscriptions:
{subscriptions}
  LogDef:
    Type: AWS::Greengrass::LoggerDefinition
    Properties:
      Name: loggers
      InitialVersion:
        Loggers:
{loggers}
  RainGroup:
    Type: AWS::Greengrass::Group
    Properties:
      Name: corpus
      InitialVersion:
{links}"""

DEFAULTS = dict(
    transform="Transform: AWS::Serverless-2016-10-31\n",
    params="",
    conditions="",
    fn_type="AWS::Serverless::Function",
    code_key="CodeUri",
    code="../../fixtures/templates/lambdas/sensor",
    fn_extra="      AutoPublishAlias: live\n",
    extra_resources="",
    cores="          - Id: core\n            ThingArn: !GetAtt Thing.Arn\n"
    "            CertificateArn: !GetAtt Cert.Arn\n",
    default_config="",
    function_arn="!Ref Fn.Alias",
    fn_config="              MemorySize: !FindInMap [Sizes, Small, KB]\n              Timeout: 3\n"
    "              Environment:\n                ResourceAccessPolicies:\n"
    "                  - ResourceId: model\n",
    resources="          - Id: model\n            Name: Model\n            ResourceDataContainer:\n"
    "              S3MachineLearningModelResourceData:\n                DestinationPath: /ml/model\n"
    "                S3Uri: s3://greengrass-models/model.tar.gz\n"
    "          - Id: i2c\n            Name: I2C\n            ResourceDataContainer:\n"
    "              LocalDeviceResourceData:\n                SourcePath: /dev/i2c-1\n",
    subscriptions="          - Id: up\n            Source: !Ref Fn.Alias\n"
    "            Subject: corpus/out\n            Target: cloud\n",
    loggers="          - {Id: system, Type: FileSystem, Component: GreengrassSystem, Level: INFO, Space: 128}\n",
    links="        CoreDefinitionVersionArn: !GetAtt CoreDef.LatestVersionArn\n"
    "        FunctionDefinitionVersionArn: !GetAtt FnDef.LatestVersionArn\n"
    "        ResourceDefinitionVersionArn: !GetAtt ResDef.LatestVersionArn\n"
    "        SubscriptionDefinitionVersionArn: !GetAtt SubDef.LatestVersionArn\n"
    "        LoggerDefinitionVersionArn: !GetAtt LogDef.LatestVersionArn\n",
)
NOCONTAINER = "        DefaultConfig:\n          Execution:\n            IsolationMode: NoContainer\n"
FNDEF = "Resources.FnDef.Properties.InitialVersion.Functions[0]"
SUBS = "Resources.SubDef.Properties.InitialVersion.Subscriptions"

CASES = {
    # name: (overrides, expected text, expected location or None, params or None)
    "valid_base": ({}, None, None, None),
    "import_value_in_group_link": (
        dict(
            links=DEFAULTS["links"].replace("!GetAtt FnDef.LatestVersionArn", "!ImportValue shared-functions-version")
        ),
        "unsupported intrinsic function Fn::ImportValue",
        "Resources.RainGroup.Properties.InitialVersion.FunctionDefinitionVersionArn",
        None,
    ),
    "fn_transform": (
        dict(
            extra_resources="  Macro:\n    Type: AWS::SNS::Topic\n    Properties:\n"
            "      'Fn::Transform': {Name: AWS::Include}\n"
        ),
        "unsupported intrinsic function Fn::Transform",
        "Resources.Macro.Properties.Fn::Transform",
        None,
    ),
    "fn_cidr": (
        dict(
            extra_resources="  Net:\n    Type: AWS::EC2::Subnet\n    Properties:\n"
            "      CidrBlock: !Select [0, !Cidr [10.0.0.0/16, 4, 8]]\n"
        ),
        "unsupported intrinsic function Fn::Cidr",
        "Resources.Net.Properties.CidrBlock",
        None,
    ),
    "unknown_intrinsic": (
        dict(function_arn="!Length [a, b]"),
        "unsupported intrinsic function Fn::Length",
        f"{FNDEF}.FunctionArn",
        None,
    ),
    "other_transform": (
        dict(transform="Transform: [AWS::Serverless-2016-10-31, AWS::LanguageExtensions]\n"),
        "unsupported transform 'AWS::LanguageExtensions'",
        "Transform",
        None,
    ),
    "unknown_attribute": (
        dict(cores=DEFAULTS["cores"].replace("Thing.Arn", "Thing.Colour")),
        "AWS::IoT::Thing has no attribute Colour",
        "Resources.CoreDef.Properties.InitialVersion.Cores[0].ThingArn",
        None,
    ),
    "unmodelled_attribute": (
        dict(
            extra_resources="  Topic:\n    Type: AWS::SNS::Topic\n",
            cores=DEFAULTS["cores"].replace("!GetAtt Thing.Arn", "!GetAtt Topic.TopicArn"),
        ),
        "simcore does not model attribute TopicArn of AWS::SNS::Topic",
        "Cores[0].ThingArn",
        None,
    ),
    "custom_resource_attribute": (
        dict(
            extra_resources="  Keys:\n    Type: Custom::CreateKeys\n    Properties:\n"
            "      ServiceToken: arn:aws:lambda:us-east-1:123456789012:function:keys\n",
            cores=DEFAULTS["cores"].replace("!GetAtt Cert.Arn", "!GetAtt Keys.certificateArn"),
        ),
        "a custom resource's attributes exist only once its code runs in AWS",
        "Cores[0].CertificateArn",
        None,
    ),
    "dangling_ref": (
        dict(function_arn="!Ref MissingFunction"),
        "Unresolved resource dependencies [MissingFunction]",
        f"{FNDEF}.FunctionArn.Ref",
        None,
    ),
    "dangling_getatt": (
        dict(cores=DEFAULTS["cores"].replace("Thing.Arn", "Thingy.Arn")),
        "Unresolved resource dependencies [Thingy]",
        "Cores[0].ThingArn.Fn::GetAtt",
        None,
    ),
    "dangling_sub_variable": (
        dict(subscriptions=DEFAULTS["subscriptions"].replace("corpus/out", '!Sub "corpus/${Nowhere}/out"')),
        "Unresolved resource dependencies [Nowhere]",
        f"{SUBS}[0].Subject.Fn::Sub",
        None,
    ),
    "dangling_depends_on": (
        dict(fn_extra=DEFAULTS["fn_extra"] + "    DependsOn: [Thing, Ghost]\n"),
        "Unresolved resource dependencies [Ghost] in DependsOn",
        "Resources.Fn.DependsOn[1]",
        None,
    ),
    "resource_cycle": (
        dict(
            extra_resources="  RoleA:\n    Type: AWS::IAM::Role\n    Properties:\n"
            "      Path: !Sub '/${RoleB}/'\n"
            "  RoleB:\n    Type: AWS::IAM::Role\n    Properties:\n      Path: !Sub '/${RoleA.RoleId}/'\n"
        ),
        "Circular dependency between resources: RoleA -> RoleB -> RoleA",
        None,
        None,
    ),
    "self_dependency": (
        dict(fn_extra=DEFAULTS["fn_extra"] + "    DependsOn: Fn\n"),
        "Circular dependency between resources: Fn -> Fn",
        None,
        None,
    ),
    "condition_cycle": (
        dict(
            conditions="  Left: !Condition Right\n  Right: !Not [!Condition Left]\n",
            fn_config=DEFAULTS["fn_config"].replace("Timeout: 3", "Timeout: !If [Left, 3, 4]"),
        ),
        "circular dependency between conditions: Left -> Right -> Left",
        None,
        None,
    ),
    "undeclared_condition": (
        dict(fn_config=DEFAULTS["fn_config"].replace("Timeout: 3", "Timeout: !If [Sometimes, 3, 4]")),
        "condition 'Sometimes' is not declared",
        f"{FNDEF}.FunctionConfiguration.Timeout.Fn::If[0]",
        None,
    ),
    "missing_parameter": (
        dict(params="  ModelUri:\n    Type: String\n"),
        "Parameters: [ModelUri] must have values",
        None,
        None,
    ),
    "unknown_parameter": ({}, "Parameters: [Nope] do not exist in the template", None, {"Nope": "1"}),
    "parameter_not_allowed": (
        dict(params="  Level:\n    Type: String\n    Default: INFO\n    AllowedValues: [INFO, DEBUG]\n"),
        "Parameter 'Level' must be one of AllowedValues",
        "Parameters.Level",
        {"Level": "LOUD"},
    ),
    "parameter_pattern": (
        {},
        "Parameter 'ThingName' must match pattern [a-z-]+, got 'Upper Case': thing names are lower case",
        "Parameters.ThingName",
        {"ThingName": "Upper Case"},
    ),
    "parameter_not_a_number": (
        dict(params="  Interval:\n    Type: Number\n    Default: 5\n"),
        "Parameter 'Interval' must be a number, got 'soon'",
        "Parameters.Interval",
        {"Interval": "soon"},
    ),
    "parameter_above_max": (
        dict(params="  Interval:\n    Type: Number\n    Default: 5\n    MaxValue: 60\n"),
        "Parameter 'Interval' must be a number not greater than 60",
        "Parameters.Interval",
        {"Interval": "61"},
    ),
    "parameter_ssm_type": (
        dict(params="  Ami:\n    Type: AWS::SSM::Parameter::Value<String>\n    Default: /x\n"),
        "reads SSM Parameter Store",
        "Parameters.Ami.Type",
        None,
    ),
    "function_arn_latest": (
        dict(function_arn='!Sub "${Fn.Arn}:$LATEST"'),
        "Greengrass cannot run $LATEST",
        f"{FNDEF}.FunctionArn",
        None,
    ),
    "function_arn_unqualified": (
        dict(function_arn="!GetAtt Fn.Arn"),
        "must be qualified by an alias or a version (e.g. !Ref Fn.Alias)",
        f"{FNDEF}.FunctionArn",
        None,
    ),
    "function_arn_unknown_alias": (
        dict(function_arn='!Sub "${Fn.Arn}:beta"'),
        "the template defines no alias or version 'beta'",
        f"{FNDEF}.FunctionArn",
        None,
    ),
    "function_arn_foreign": (
        dict(function_arn="arn:aws:lambda:us-east-1:123456789012:function:elsewhere:1"),
        "names no Lambda function of this template",
        f"{FNDEF}.FunctionArn",
        None,
    ),
    "function_arn_not_lambda": (
        dict(function_arn="!GetAtt Thing.Arn"),
        "is not a Lambda function ARN",
        f"{FNDEF}.FunctionArn",
        None,
    ),
    "function_listed_twice": (
        dict(
            fn_config=DEFAULTS["fn_config"] + "          - Id: again\n            FunctionArn: !Ref Fn.Alias\n"
            "            FunctionConfiguration: {MemorySize: 1024}\n"
        ),
        "appears twice in the function definition",
        "Functions[1].FunctionArn",
        None,
    ),
    "memory_required_in_container": (
        dict(fn_config="              Timeout: 3\n"),
        "function fn: MemorySize is required when IsolationMode is GreengrassContainer",
        f"{FNDEF}.FunctionConfiguration.MemorySize",
        None,
    ),
    "memory_refused_without_container": (
        dict(default_config=NOCONTAINER),
        "function fn: MemorySize is not allowed when IsolationMode is NoContainer",
        f"{FNDEF}.FunctionConfiguration.MemorySize",
        None,
    ),
    "nocontainer_local_device": (
        dict(
            default_config=NOCONTAINER,
            fn_config="              Environment:\n                ResourceAccessPolicies:\n"
            "                  - {ResourceId: i2c, Permission: rw}\n",
        ),
        "a NoContainer function cannot access local device resource 'i2c'",
        "ResourceAccessPolicies[0]",
        None,
    ),
    "nocontainer_ml_without_owner": (
        dict(
            default_config=NOCONTAINER,
            fn_config="              Environment:\n                ResourceAccessPolicies:\n"
            "                  - {ResourceId: model}\n",
        ),
        "can access ML resource 'model' only when the resource has an OwnerSetting",
        "ResourceAccessPolicies[0]",
        None,
    ),
    "nocontainer_sysfs": (
        dict(
            default_config=NOCONTAINER,
            fn_config="              Environment:\n                AccessSysfs: true\n",
        ),
        "AccessSysfs is not allowed when IsolationMode is NoContainer",
        "Environment.AccessSysfs",
        None,
    ),
    "bad_isolation_mode": (
        dict(default_config=NOCONTAINER.replace("NoContainer", "Docker")),
        "IsolationMode must be GreengrassContainer or NoContainer, got 'Docker'",
        "DefaultConfig",
        None,
    ),
    "resource_access_unknown": (
        dict(fn_config=DEFAULTS["fn_config"].replace("ResourceId: model", "ResourceId: weights")),
        "ResourceId 'weights' is not a resource of the group",
        "ResourceAccessPolicies[0].ResourceId",
        None,
    ),
    "resource_access_bad_permission": (
        dict(fn_config=DEFAULTS["fn_config"] + "                    Permission: rwx\n"),
        "Permission must be ro or rw, got 'rwx'",
        "ResourceAccessPolicies[0].Permission",
        None,
    ),
    "variable_not_a_string": (
        dict(fn_config=DEFAULTS["fn_config"] + "                Variables:\n                  NESTED: {a: 1}\n"),
        "variable NESTED must be a string",
        "Environment.Variables.NESTED",
        None,
    ),
    "subscription_id_charset": (
        dict(subscriptions=DEFAULTS["subscriptions"].replace("Id: up", "Id: up and away")),
        "Id 'up and away' must match [a-zA-Z0-9:_-]+",
        f"{SUBS}[0].Id",
        None,
    ),
    "subscription_id_too_long": (
        dict(subscriptions=DEFAULTS["subscriptions"].replace("Id: up", "Id: " + "u" * 129)),
        "at most 128 characters",
        f"{SUBS}[0].Id",
        None,
    ),
    "subscription_id_duplicate": (
        dict(subscriptions=DEFAULTS["subscriptions"] * 2),
        "Id 'up' is used twice in Subscriptions",
        f"{SUBS}[1].Id",
        None,
    ),
    "subscription_unknown_target": (
        dict(
            subscriptions=DEFAULTS["subscriptions"].replace(
                "Target: cloud", "Target: arn:aws:lambda:us-east-1:123456789012:function:other:1"
            )
        ),
        "subscription up: Target 'arn:aws:lambda:us-east-1:123456789012:function:other:1' must be "
        "cloud, GGShadowService",
        f"{SUBS}[0].Target",
        None,
    ),
    "subscription_unqualified_source": (
        dict(subscriptions=DEFAULTS["subscriptions"].replace("!Ref Fn.Alias", "!GetAtt Fn.Arn")),
        "must be cloud, GGShadowService",
        f"{SUBS}[0].Source",
        None,
    ),
    "subscription_hash_not_last": (
        dict(subscriptions=DEFAULTS["subscriptions"].replace("corpus/out", "corpus/#/out")),
        "'#' must be a whole level and the last one",
        f"{SUBS}[0].Subject",
        None,
    ),
    "subscription_plus_in_level": (
        dict(subscriptions=DEFAULTS["subscriptions"].replace("corpus/out", "corpus/a+")),
        "'+' must be a whole level",
        f"{SUBS}[0].Subject",
        None,
    ),
    "subscription_missing_subject": (
        dict(subscriptions="          - Id: up\n            Source: cloud\n            Target: cloud\n"),
        "Subject is required",
        f"{SUBS}[0].Subject",
        None,
    ),
    "two_cores": (
        dict(cores=DEFAULTS["cores"] + DEFAULTS["cores"].replace("Id: core", "Id: core2")),
        "a core definition version holds exactly one core, this one holds 2",
        None,
        None,
    ),
    "thing_arn_malformed": (
        dict(cores=DEFAULTS["cores"].replace("!GetAtt Thing.Arn", "!Ref Thing")),
        "ThingArn 'corpus-core' is not an IoT thing ARN",
        "Cores[0].ThingArn",
        None,
    ),
    "certificate_arn_malformed": (
        dict(cores=DEFAULTS["cores"].replace("!GetAtt Cert.Arn", "!Ref Cert")),
        "is not an IoT certificate ARN",
        "Cores[0].CertificateArn",
        None,
    ),
    "group_conditioned_out": (
        dict(
            links="        CoreDefinitionVersionArn: !GetAtt CoreDef.LatestVersionArn\n    Condition: Never\n",
            conditions="  Never: !Not [!Condition Always]\n",
        ),
        "group RainGroup is not created: its Condition Never is false with these parameters",
        "Resources.RainGroup.Condition",
        None,
    ),
    "link_not_in_template": (
        dict(
            links=DEFAULTS["links"].replace(
                "!GetAtt CoreDef.LatestVersionArn",
                "arn:aws:greengrass:us-east-1:123456789012:/greengrass/definition/cores/1234/versions/5678",
            )
        ),
        "names no definition version this template creates",
        "Resources.RainGroup.Properties.InitialVersion.CoreDefinitionVersionArn",
        None,
    ),
    "link_wrong_kind": (
        dict(links=DEFAULTS["links"].replace("!GetAtt FnDef.LatestVersionArn", "!GetAtt CoreDef.LatestVersionArn")),
        "FunctionDefinitionVersionArn names a Core definition version",
        "InitialVersion.FunctionDefinitionVersionArn",
        None,
    ),
    "link_missing_core": (
        dict(
            links=DEFAULTS["links"].replace("        CoreDefinitionVersionArn: !GetAtt CoreDef.LatestVersionArn\n", "")
        ),
        "a group version needs CoreDefinitionVersionArn",
        "Resources.RainGroup.Properties.InitialVersion",
        None,
    ),
    "code_uri_s3": (
        dict(code="s3://artifacts/fn.zip"),
        "CodeUri must be a local path relative to the template",
        "Resources.Fn.Properties.CodeUri",
        None,
    ),
    "code_uri_missing": (
        dict(code="../../fixtures/templates/lambdas/nowhere"),
        "no such file or directory",
        "Resources.Fn.Properties.CodeUri",
        None,
    ),
    "code_inline_zipfile": (
        dict(
            transform="",
            fn_type="AWS::Lambda::Function",
            code_key="Code",
            code="{ZipFile: 'def h(e, c): pass'}",
            fn_extra="",
            function_arn="!Ref FnAlias",
            extra_resources="  FnAlias:\n    Type: AWS::Lambda::Alias\n    Properties:\n"
            "      FunctionName: !Ref Fn\n      FunctionVersion: '1'\n      Name: live\n",
            subscriptions=DEFAULTS["subscriptions"].replace("!Ref Fn.Alias", "!Ref FnAlias"),
        ),
        "Code must be a local path",
        "Resources.Fn.Properties.Code",
        None,
    ),
    "sam_without_transform": (
        dict(transform=""),
        "AWS::Serverless::Function needs Transform: AWS::Serverless-2016-10-31",
        "Resources.Fn.Type",
        None,
    ),
    "no_auto_publish_alias": (
        dict(fn_extra=""),
        "Ref Fn.Alias: Fn has no AutoPublishAlias",
        f"{FNDEF}.FunctionArn.Ref",
        None,
    ),
    "conditioned_out_reference": (
        dict(
            conditions="  Never: !Not [!Condition Always]\n",
            fn_extra=DEFAULTS["fn_extra"] + "    Condition: Never\n",
        ),
        "Fn is not created: its Condition is false",
        None,
        None,
    ),
    "select_out_of_range": (
        dict(fn_config=DEFAULTS["fn_config"].replace("Timeout: 3", "Timeout: !Select [3, [1, 2, 3]]")),
        "Fn::Select index 3 is out of range for a list of 3",
        f"{FNDEF}.FunctionConfiguration.Timeout.Fn::Select",
        None,
    ),
    "find_in_map_missing_key": (
        dict(fn_config=DEFAULTS["fn_config"].replace("[Sizes, Small, KB]", "[Sizes, Huge, KB]")),
        "Fn::FindInMap: mapping Sizes has no key 'Huge'",
        f"{FNDEF}.FunctionConfiguration.MemorySize.Fn::FindInMap",
        None,
    ),
    "sub_list_variable": (
        dict(
            params="  Zones:\n    Type: CommaDelimitedList\n    Default: a,b\n",
            subscriptions=DEFAULTS["subscriptions"].replace("corpus/out", '!Sub "corpus/${Zones}"'),
        ),
        "Fn::Sub variable ${Zones} is a list, not a string",
        f"{SUBS}[0].Subject.Fn::Sub",
        None,
    ),
    "memory_not_integer": (
        dict(fn_config=DEFAULTS["fn_config"].replace("!FindInMap [Sizes, Small, KB]", "lots")),
        "expected an integer, got 'lots'",
        f"{FNDEF}.FunctionConfiguration.MemorySize",
        None,
    ),
    "logger_space_on_cloudwatch": (
        dict(loggers="          - {Id: cw, Type: AWSCloudWatch, Component: Lambda, Level: INFO, Space: 64}\n"),
        "Space applies only to FileSystem loggers",
        "Loggers[0].Space",
        None,
    ),
    "logger_bad_level": (
        dict(loggers="          - {Id: fs, Type: FileSystem, Component: Lambda, Level: TRACE, Space: 64}\n"),
        "Level must be one of DEBUG, INFO, WARN, ERROR, FATAL, got 'TRACE'",
        "Loggers[0].Level",
        None,
    ),
    "device_outside_dev": (
        dict(resources=DEFAULTS["resources"].replace("/dev/i2c-1", "/tmp/i2c-1")),
        "a local device's SourcePath is under /dev/, got '/tmp/i2c-1'",
        "LocalDeviceResourceData.SourcePath",
        None,
    ),
    "ml_destination_relative": (
        dict(resources=DEFAULTS["resources"].replace("DestinationPath: /ml/model", "DestinationPath: ml/model")),
        "DestinationPath must be an absolute path, got 'ml/model'",
        "S3MachineLearningModelResourceData.DestinationPath",
        None,
    ),
    "resource_two_containers": (
        dict(
            resources=DEFAULTS["resources"].replace(
                "              LocalDeviceResourceData:",
                "              LocalVolumeResourceData: {SourcePath: /tmp, DestinationPath: /data}\n"
                "              LocalDeviceResourceData:",
            )
        ),
        "ResourceDataContainer holds exactly one of",
        "Resources[1].ResourceDataContainer",
        None,
    ),
    "globals_without_sam": (
        dict(
            transform="Globals:\n  Function:\n    Timeout: 3\n",
            fn_type="AWS::Lambda::Function",
            code_key="Code",
            fn_extra="",
            function_arn="!Ref FnVersion",
            extra_resources="  FnVersion:\n    Type: AWS::Lambda::Version\n    Properties:\n"
            "      FunctionName: !Ref Fn\n",
            subscriptions=DEFAULTS["subscriptions"].replace("!Ref Fn.Alias", "!Ref FnVersion"),
        ),
        "Globals is a SAM section",
        "Globals",
        None,
    ),
    "lambda_version_bad_attribute": (
        dict(
            transform="",
            fn_type="AWS::Lambda::Function",
            code_key="Code",
            fn_extra="",
            function_arn='!Sub "${Fn.Arn}:${FnVersion.Number}"',
            extra_resources="  FnVersion:\n    Type: AWS::Lambda::Version\n    Properties:\n"
            "      FunctionName: !Ref Fn\n",
            subscriptions=DEFAULTS["subscriptions"].replace("!Ref Fn.Alias", "cloud"),
        ),
        "AWS::Lambda::Version has no attribute Number",
        f"{FNDEF}.FunctionArn.Fn::Sub",
        None,
    ),
}


def render(overrides):
    values = dict(DEFAULTS)
    values.update(overrides)
    return BASE.format(**values)


for old in OUT.glob("*.yaml"):
    old.unlink()
for name, (overrides, expect, location, params) in CASES.items():
    header = ["# Generated corpus case: one fault, and the error simcore must report for it."]
    if expect is None:
        header[0] = "# Generated corpus case: the valid base every other case changes in one place."
        header.append("# expect-valid")
    else:
        header.append(f"# expect: {expect}")
    if location:
        header.append(f"# location: {location}")
    if params:
        header.append(f"# params: {json.dumps(params)}")
    text = render(overrides)
    if name == "parameter_pattern":
        text = text.replace(
            "    Default: corpus-core\n",
            "    Default: corpus-core\n    AllowedPattern: '[a-z-]+'\n"
            "    ConstraintDescription: thing names are lower case\n",
            1,
        )
    (OUT / f"{name}.yaml").write_text("\n".join(header) + "\n" + text)
# Two that are not about one field of the base.
(OUT / "yaml_syntax_error.yaml").write_text(
    "# Generated corpus case: a YAML syntax error.\n# expect: template is not valid YAML/JSON\n"
    "Resources:\n  A: [unclosed\n"
)
(OUT / "yaml_duplicate_key.yaml").write_text(
    "# Generated corpus case: a key given twice.\n# expect: Duplicate found 'Thing'\n"
    "Resources:\n  Thing:\n    Type: AWS::IoT::Thing\n  Thing:\n    Type: AWS::IoT::Thing\n"
)
(OUT / "no_resources.yaml").write_text(
    "# Generated corpus case: nothing to deploy.\n# expect: the template has no Resources\nParameters: {}\n"
)
print(len(list(OUT.glob("*.yaml"))))
