"""The topics the inference Lambda uses (the group's subscriptions name the same ones)."""

from __future__ import annotations

from typing import NamedTuple, Optional

CLOUDWATCH_PUT = "cloudwatch/metric/put"
DOCUMENTS_SUFFIX = "/shadow/update/documents"


class Topics(NamedTuple):
    """The topic names for one thing."""

    thing: str
    documents: str
    output: str
    metrics: str
    command_input: str
    command_output: str


def topics_for(thing: str) -> Topics:
    """All topics of `thing`."""
    return Topics(
        thing=thing,
        documents="$aws/things/{}/shadow/update/documents".format(thing),
        output="rain/{}/inference/output".format(thing),
        metrics="rain/{}/model/metrics".format(thing),
        command_input="rain/{}/command/input".format(thing),
        command_output="rain/{}/command/output".format(thing),
    )


def documents_thing(subject: str) -> Optional[str]:
    """The thing named in a `$aws/things/<thing>/shadow/update/documents` topic, else None."""
    prefix = "$aws/things/"
    if subject.startswith(prefix) and subject.endswith(DOCUMENTS_SUFFIX):
        thing = subject[len(prefix):-len(DOCUMENTS_SUFFIX)]
        return thing if thing and "/" not in thing else None
    return None
