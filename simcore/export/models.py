"""A v1 ML resource as a v2 generic component: the model archive is its artifact, extracted on install.

v2 has no ML resource for imported Lambdas (*inferred* from the v2 guide, which names none): the model travels
as the artifact of a generic component that the Lambdas depend on; its install step extracts the archive into
the component's work folder, and each Lambda that had the resource mounts that folder at the v1
`DestinationPath` as a volume. A source that is not an `s3://` URI (a local path, a SageMaker job) cannot be
an artifact as it is: the recipe names a placeholder and MIGRATION.md says what to put there.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from simcore.export.catalog import LINUX_PLATFORM, OWN_COMPONENT_VERSION, V2_ROOT
from simcore.group import Group, Resource

ML_KINDS = ("ml_s3", "ml_sagemaker")


@dataclass(frozen=True)
class ModelComponent:
    """The component that carries one ML resource, its recipe, and what a person must still do."""

    resource: Resource
    name: str
    recipe: dict
    model_folder: str
    human: str | None

    @property
    def artifact_uri(self) -> str:
        """The artifact the recipe downloads."""
        return self.recipe["Manifests"][0]["Artifacts"][0]["Uri"]


def model_component_name(group: Group, resource: Resource) -> str:
    """`<group name>.<resource name>`, with anything but letters, digits, `.`, `_` and `-` made `-`."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", f"{group.name}.{resource.name}")[:128]


def model_component(group: Group, resource: Resource) -> ModelComponent:
    """The generic component for the ML resource `resource`."""
    name = model_component_name(group, resource)
    human = None
    if resource.kind == "ml_sagemaker":
        uri = "s3://REPLACE-WITH-THE-TRAINING-JOB-MODEL-ARTIFACT/model.tar.gz"
        human = (f"ML resource {resource.id}: put the S3 URI of SageMaker job {resource.source}'s model artifact "
                 "(`aws sagemaker describe-training-job` → ModelArtifacts.S3ModelArtifacts) in "
                 f"components/{name}.recipe.json")
    elif resource.source.startswith("s3://"):
        uri = resource.source
    else:
        file_name = resource.source.rstrip("/").rsplit("/", 1)[-1] or "model.tar.gz"
        uri = f"s3://REPLACE-WITH-YOUR-BUCKET/{file_name}"
        human = (f"ML resource {resource.id}: its model is a local file ({resource.source}); upload it to S3 and put "
                 f"its s3:// URI in components/{name}.recipe.json")
    file_name = uri.rsplit("/", 1)[-1]
    folder = f"{V2_ROOT}/work/{name}/model"
    recipe = {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": name,
        "ComponentVersion": OWN_COMPONENT_VERSION,
        "ComponentDescription": f"The v1 ML resource {resource.name} of group {group.name}: the model archive, "
                                f"extracted for the Lambdas that mount it at {resource.destination_path}.",
        "ComponentPublisher": "simcore export v2",
        "Manifests": [{
            "Platform": {"os": LINUX_PLATFORM["attributes"]["os"]},
            "Lifecycle": {"Install": _extract_command(file_name)},
            "Artifacts": [{"Uri": uri}],
        }],
    }
    return ModelComponent(resource, name, recipe, folder, human)


def _extract_command(file_name: str) -> str:
    """The install step: the archive (or file) into `{work:path}/model`, replacing what an older version left."""
    # Quoted for the shell: the name comes from the template's S3 URI, and a quote in it must stay a character.
    source = shlex.quote("{artifacts:path}/" + file_name)
    prepare = "rm -rf {work:path}/model && mkdir -p {work:path}/model && "
    if file_name.endswith((".tar.gz", ".tgz")):
        return prepare + f"tar -xzf {source} -C {{work:path}}/model"
    if file_name.endswith(".tar"):
        return prepare + f"tar -xf {source} -C {{work:path}}/model"
    if file_name.endswith(".zip"):
        return prepare + f"python3 -m zipfile -e {source} {{work:path}}/model"
    return prepare + f"cp {source} {{work:path}}/model/"


def model_components(group: Group) -> dict[str, ModelComponent]:
    """Every ML resource of the group by resource id, as its component."""
    return {resource.id: model_component(group, resource) for resource in group.resources if resource.kind in ML_KINDS}
