"""MIGRATION.md: every v1 element of the group, what it became on Greengrass v2, and what needs a human.

What needs a human is found, not assumed: the shadow calls and other v1 SDK uses come from reading each
Lambda's code (`code_scan`), named with file and line; the rest from the group (aliases, runtimes, ML
resources, connectors without a v2 component, loggers, the group role) and from what v2 does differently.
"""

from __future__ import annotations

from pathlib import Path

from simcore.defaults import DEFAULT_ACCOUNT_ID
from simcore.export import catalog
from simcore.group import Function

SHADOW_HELP = ("rewrite them to the v2 IPC shadow client (awsiot.greengrasscoreipc: GetThingShadow / "
               "UpdateThingShadow / DeleteThingShadow, with an `accessControl` policy for "
               "aws.greengrass.ShadowManager): the v1 SDK's shadow calls have no compatibility layer on v2")
FEATURE_WORDS = {"shadow": "shadow", "publish": "publish()", "invoke": "Lambda invoke", "secrets": "secrets",
                 "aws_sdk": "AWS SDK", "stream_manager": "stream manager"}


def migration_text(export, out_dir: Path) -> str:
    """The whole MIGRATION.md of `export` (a `simcore.export.plan.V2Export`) written into `out_dir`."""
    group = export.group
    rows: list[tuple[str, str]] = []
    human: list[str] = []

    core = group.core
    rows.append((f"core `{core.id}` (thing {core.thing_name})",
                 f"core device {core.thing_name}: the deployment's `targetArn`"))
    if core.sync_shadow:
        rows.append(("core `SyncShadow: true`", f"{catalog.SHADOW_MANAGER} `synchronize.coreThing` (classic shadow, "
                                                "`betweenDeviceAndCloud`)"))
        human.append("Shadow sync: on v2 a conflict in `desired` takes the cloud's value and one in `reported` the "
                     "local value (`betweenDeviceAndCloud`); check that this is what the group's code expects.")
    for name, function in export.functions.items():
        rows.append(_function_row(name, function, export))
        human.extend(_function_human(name, function, export))
    for resource in group.resources:
        users = [f.name for f in group.functions if any(a.resource_id == resource.id for a in f.resource_access)]
        by = f" of {', '.join(users)}" if users else " (no function uses it)"
        if resource.kind in ("local_device", "local_volume") and resource.group_owner and \
                not resource.auto_add_group_owner:
            human.append(f"Resource {resource.id}: v1 gave group {resource.group_owner} access to it; v2 can only add "
                         "the component's own group (`addGroupOwner`, false here): set the file's group on the device.")
        if resource.kind == "local_device":
            rows.append((f"local device `{resource.id}` ({resource.source})", f"`devices` entry{by}"))
        elif resource.kind == "local_volume":
            rows.append((f"local volume `{resource.id}` ({resource.source} → {resource.destination_path})",
                         f"`volumes` entry{by}"))
        elif resource.kind == "secret":
            rows.append((f"secret `{resource.id}` ({resource.source})",
                         f"{catalog.SECRET_MANAGER} `cloudSecrets`{by}"))
            human.append(f"Secret {resource.id}: the core device's token exchange role must allow "
                         f"secretsmanager:GetSecretValue on {resource.source}.")
        else:
            model = export.models[resource.id]
            rows.append((f"ML resource `{resource.id}` ({resource.kind}, {resource.source} → "
                         f"{resource.destination_path})",
                         f"component {model.name} (artifact {model.artifact_uri}, extracted to {model.model_folder}), "
                         f"mounted at {resource.destination_path}{by} (*inferred*: v2 has no ML resource)"))
            if model.human:
                human.append(model.human + ".")
            human.append(f"ML resource {resource.id}: the core device's token exchange role must allow s3:GetObject "
                         f"on {model.artifact_uri} for the artifact download.")
    for route in export.routes:
        subscription = route.subscription
        rows.append((f"subscription `{subscription.id}`: {subscription.source} → {subscription.target} on "
                     f"`{subscription.subject}`", route.became))
        if route.human:
            human.append(route.human[0].upper() + route.human[1:] + ".")
    for connector in group.connectors:
        successor = catalog.CONNECTOR_SUCCESSORS.get(connector.name)
        if connector.name == "CloudWatchMetrics":
            dropped = sorted(set(connector.parameters) - {"PublishInterval", "MaxMetricsToRetain", "PublishRegion"})
            rows.append((f"connector `{connector.id}` (CloudWatchMetrics)",
                         f"{catalog.CLOUDWATCH} {export.public_versions.get(catalog.CLOUDWATCH, '')} with "
                         "PublishInterval, MaxMetricsToRetain, PublishRegion as given"
                         + (f"; not carried: {', '.join(dropped)} (3.x is a generic component)" if dropped else "")))
        elif successor:
            rows.append((f"connector `{connector.id}` ({connector.name})", f"{successor} (not in the deployment)"))
            human.append(f"Connector {connector.id} ({connector.name}): add {successor} to the deployment and map its "
                         "parameters by hand (this export maps only CloudWatch Metrics).")
        elif connector.name == "MLFeedback":
            rows.append((f"connector `{connector.id}` (MLFeedback)", "nothing: v2 has no ML Feedback component"))
            human.append(f"Connector {connector.id} (ML Feedback): no v2 equivalent was found; upload samples to S3 "
                         "from the Lambda itself (boto3 through the token exchange service) or drop the feature.")
        else:
            rows.append((f"connector `{connector.id}` ({connector.name})", "nothing: no v2 component found"))
            human.append(f"Connector {connector.id} ({connector.name}): v2 offers no request/response equivalent "
                         "(the DLR and TensorFlow Lite samples publish results to topics); build a custom component.")
    for device in group.devices:
        rows.append((f"device `{device.id}` (thing {device.thing_name})",
                     f"client device associated with {core.thing_name} ({catalog.CLIENT_DEVICE_AUTH} policy, "
                     f"{catalog.MOQUETTE}, {catalog.IP_DETECTOR})"
                     + ("; its shadow in `synchronize.shadowDocuments`" if device.sync_shadow else "")))
    if group.devices:
        human.append(f"Client devices: on v2, discovery returns one group per core named "
                     f"greengrassV2-coreDevice-{core.thing_name}; device code that matches the v1 group id must "
                     "change. The core device's IoT policy must allow what client device auth needs "
                     "(greengrass:GetConnectivityInfo, VerifyClientDeviceIoTCertificateAssociation, "
                     "VerifyClientDeviceIdentity, PutCertificateAuthorities, and its `<core>-gci` shadow topics).")
    for logger in group.loggers:
        target = ("the Greengrass nucleus's `logging` configuration" if logger.type == "FileSystem"
                  else "aws.greengrass.LogManager (`logsUploaderConfiguration`)")
        rows.append((f"logger `{logger.id}` ({logger.type}, {logger.component}, {logger.level})",
                     f"{target} (not in the deployment)"))
    if group.loggers:
        human.append("Loggers: v2 logs to files by default; set the nucleus's `logging.level` and deploy "
                     "aws.greengrass.LogManager for CloudWatch Logs by hand (this export does not change the nucleus).")
    if catalog.TOKEN_EXCHANGE_SERVICE in export.public_versions:
        human.append("Group role: v2 has none; the core device's token exchange role (its role alias) takes the "
                     "permissions the group role gave (CloudWatch PutMetricData, S3...).")
    if group.account_id == DEFAULT_ACCOUNT_ID:
        human.insert(0, f"Account: the ARNs name account {DEFAULT_ACCOUNT_ID} and region {group.region}, simcore's "
                        "defaults; re-export with `--account-id` and `--region` of your AWS account.")
    human.append("Component versions: the deployment pins " + ", ".join(
        f"{name} {version}" for name, version in sorted(export.public_versions.items()))
        + "; each declares the nucleus versions it runs with, so check them against your nucleus "
          "(`aws greengrassv2 list-component-versions --arn arn:aws:greengrass:<region>:aws:components:<name>`) "
          "and override with `--component-version NAME=VERSION`.")
    human.append("Not read from the group: features a v1 group sets outside its definitions (stream manager "
                 "settings, the core's spooler and MQTT settings in config.json, IP detection) are not exported; "
                 "set them on the v2 components (StreamManager, the nucleus, IPDetector) if the group used them.")
    return _render(export, out_dir, rows, human)


def _function_row(name: str, function: Function, export) -> tuple[str, str]:
    request = export.lambda_requests[name]["lambdaFunction"]
    parameters = request["componentLambdaParameters"]
    dependencies = sorted(request.get("componentDependencies", {}))
    became = (f"component {name} {request['componentVersion']} importing {request['lambdaArn']} "
              f"(components/{name}.json): {'pinned' if function.pinned else 'on-demand'}, "
              f"{function.isolation_mode}, timeout {function.timeout_s} s"
              + (f", {function.memory_kb} KB" if function.memory_kb else "")
              + f", {len(parameters.get('eventSources', []))} event sources"
              + (f"; depends on {', '.join(dependencies)}" if dependencies else ""))
    if function.run_as_uid is not None:
        became += f"; runs as {export.deployment['components'][name]['runWith']['posixUser']} (`runWith.posixUser`)"
    return (f"function `{function.id}` ({function.arn})", became)


def _function_human(name: str, function: Function, export) -> list[str]:
    notes = []
    code = export.code[name]
    shadow = code.uses("shadow")
    if shadow:
        calls = ", ".join(f"{finding.call} at {finding.where()}" for finding in shadow)
        notes.append(f"**{name}** (function {function.id}) calls the v1 SDK's shadow API: {calls}; {SHADOW_HELP}.")
    invokes = code.uses("invoke")
    if invokes:
        notes.append(f"**{name}** calls the v1 SDK's Lambda client invoke at "
                     f"{', '.join(finding.where() for finding in invokes)}: the v2 guide documents no Lambda-to-Lambda "
                     "invoke through the core; call the target another way (local pub/sub through IPC).")
    for unread in code.unread:
        notes.append(f"**{name}**: {unread} was not read; check it for v1 SDK calls by hand.")
    qualifier = function.arn.rpartition(":")[2]
    arn = export.lambda_requests[name]["lambdaFunction"]["lambdaArn"]
    if not qualifier.isdigit() and function.id not in export.lambda_versions:
        notes.append(f"**{name}**: the group names alias `{qualifier}`; v2 imports a version, so the requests name "
                     f"{arn}. Check it (`aws lambda get-alias --function-name {function.name} --name {qualifier}`) "
                     f"and re-export with `--lambda-version {function.id}=<n>` if it differs.")
    if function.runtime in ("python3.7", "python3.8") or function.runtime.startswith("python2"):
        notes.append(f"**{name}** runs {function.runtime}: AWS Lambda no longer creates functions on it, so import a "
                     "version that already exists (the v1 stack's), or port the code to a newer runtime that "
                     "aws.greengrass.LambdaRuntimes offers.")
    if function.isolation_mode == "NoContainer" and any(
            access.resource_id in export.models for access in function.resource_access):
        folders = [export.models[access.resource_id].model_folder for access in function.resource_access
                   if access.resource_id in export.models]
        notes.append(f"**{name}** is NoContainer, so it gets no volume: it finds its model at {', '.join(folders)}, "
                     "not at the v1 DestinationPath; point its code there.")
    return notes


def _render(export, out_dir: Path, rows: list[tuple[str, str]], human: list[str]) -> str:
    group = export.group
    source = export.template_path
    parameters = " ".join(f"--param {key}={value}" for key, value in sorted(export.parameters.items())
                          if value not in ("", None))
    lines = [
        f"# Migrating Greengrass v1 group {group.name} to Greengrass v2",
        "",
        f"Written by `simcore export v2 {source}` from the group simcore runs from that template"
        + (f" (effective parameters: `{parameters}`)" if parameters else "") + ". Every request here validated "
        "against botocore's `greengrassv2` service model and the template against cfn-lint before it was written.",
        "",
        "## Needs a human",
        "",
    ]
    lines += [f"{index}. {text}" for index, text in enumerate(human, 1)]
    lines += ["", "## Commands", "", "```"]
    for name in export.lambda_requests:
        lines.append(f"aws greengrassv2 create-component-version --cli-input-json file://components/{name}.json")
    for model in export.models.values():
        lines.append(f"aws greengrassv2 create-component-version --inline-recipe fileb://components/{model.name}.recipe.json")
    if export.association:
        lines.append("aws greengrassv2 batch-associate-client-device-with-core-device --cli-input-json file://client-devices.json")
    lines.append("aws greengrassv2 create-deployment --cli-input-json file://deployment.json")
    lines += ["```", "", "Or, as one stack (it imports the same Lambda versions; it does not create them):", "", "```",
              f"aws cloudformation deploy --template-file greengrass-v2.template.json --stack-name {group.name}-v2",
              "```", "", "## Every v1 element", "", "| v1 element | on Greengrass v2 |", "| --- | --- |"]
    lines += [f"| {_cell(element)} | {_cell(became)} |" for element, became in rows]
    lines += ["", "## What v2 adds by itself", "",
              "aws.greengrass.LambdaLauncher, aws.greengrass.LambdaManager and aws.greengrass.LambdaRuntimes run the "
              "imported Lambdas; a deployment adds them as the Lambda components' own dependencies (Linux only).", ""]
    return "\n".join(lines)


def _cell(text: str) -> str:
    """Text for one table cell: a `|` (a topic may hold one) escaped, so it cannot split the row."""
    return text.replace("|", "\\|")
