"""Every bad template in tests/corpus/templates is refused with the error (and place) its header names.

A case's header comments say what to expect:
`# expect: <text the error must contain>`, `# location: <text its location must contain>`,
`# params: <JSON parameters>`, or `# expect-valid` for the base the other cases change.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from simcore.errors import TemplateError
from simcore.template.loader import load_group

CORPUS = Path(__file__).parent / "corpus" / "templates"
CASES = sorted(CORPUS.glob("*.yaml"))


def _header(path: Path) -> dict[str, str]:
    header = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        key, _, value = line[1:].strip().partition(":")
        header[key.strip()] = value.strip()
    return header


def test_corpus_is_not_empty():
    assert len(CASES) >= 50


@pytest.mark.parametrize("case", CASES, ids=[case.stem for case in CASES])
def test_corpus_case_gives_its_expected_error(case: Path):
    header = _header(case)
    parameters = json.loads(header["params"]) if "params" in header else None
    if "expect-valid" in header:
        group = load_group(case, parameters)
        assert group.name == "corpus"
        return
    assert "expect" in header, f"{case.name} has no '# expect:' line"
    with pytest.raises(TemplateError, match=re.escape(header["expect"])) as raised:
        load_group(case, parameters)
    assert header["expect"] in str(raised.value)
    if "location" in header:
        assert raised.value.location is not None
        assert header["location"] in raised.value.location
