"""Fn::Sub on a string, as CloudFormation applies it: `${Name}` takes its value, `${!Text}` stays `${Text}`."""

from __future__ import annotations

import re
from collections.abc import Mapping

_VARIABLE = re.compile(r"\$\{(!?)([^}]*)\}")


def fn_sub(text: str, values: Mapping[str, str]) -> str:
    """`text` with each variable replaced; KeyError names a variable `values` lacks."""
    def replace(match: re.Match) -> str:
        literal, name = match.groups()
        return "${" + name + "}" if literal else values[name]
    return _VARIABLE.sub(replace, text)
