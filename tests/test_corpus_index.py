"""Indexes of proof: the bad-input corpora, and the tests docs/reliability.md cites.

`CORPORA` is the corpora's index (tests/corpus/README.md is its prose): for each corpus, how to list its
cases and where a case's code and message are. A corpus whose code is fixed by its folder says so, and its
runner must assert that very code. Every case declares its error code and message, and a runner reads it.
Every `tests/<file>.py::<test>` in docs/reliability.md must name a test that exists.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

TESTS = Path(__file__).resolve().parent
CORPUS_ROOT = TESTS / "corpus"
RELIABILITY_DOC = TESTS.parent / "docs" / "reliability.md"
MINIMUM_CASES = 60
NOT_CASES = ("README.md", "generate.py")  # the index's prose, and the scripts that write a corpus


@dataclass(frozen=True)
class Case:
    """One bad input: where it is, and the code and message it must be refused with."""

    where: str
    code: object
    message: object


def _template_header(path: Path) -> dict[str, str]:
    header = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        key, _, value = line[1:].strip().partition(":")
        header[key.strip()] = value.strip()
    return header


def _yaml_cases(folder: str) -> Iterator[Case]:
    for path in sorted((CORPUS_ROOT / folder).glob("*.yaml")):
        expected = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("expected") or {}
        yield Case(f"{folder}/{path.name}", expected.get("code"), expected.get("message"))


def _template_cases() -> Iterator[Case]:
    for path in sorted((CORPUS_ROOT / "templates").glob("*.yaml")):
        header = _template_header(path)
        if "expect-valid" in header:
            continue  # the valid base the other cases change
        yield Case(f"templates/{path.name}", "TemplateError", header.get("expect"))


def _archive_cases() -> Iterator[Case]:
    expected = json.loads((CORPUS_ROOT / "archives" / "expected.json").read_text())
    for name, case in sorted(expected.items()):
        yield Case(f"archives/{name}", "DeployError", case.get("expect"))


def _list_cases(file: str, code: Callable[[dict], object], message: str) -> Callable[[], Iterator[Case]]:
    def cases() -> Iterator[Case]:
        for entry in json.loads((CORPUS_ROOT / file).read_text()):
            yield Case(f"{file}:{entry.get('name')}", code(entry), entry.get(message))
    return cases


@dataclass(frozen=True)
class Corpus:
    """A corpus: its files (globs under tests/corpus), its cases, its runner, the code its folder fixes."""

    files: tuple[str, ...]
    cases: Callable[[], Iterator[Case]]
    runner: str
    folder_code: str | None = None


CORPORA: dict[str, Corpus] = {
    "shadow": Corpus(("shadow/*.yaml",), lambda: _yaml_cases("shadow"), "test_shadow_corpus.py"),
    "templates": Corpus(("templates/*.yaml",), _template_cases, "test_template_corpus.py", "TemplateError"),
    "archives": Corpus(("archives/*",), _archive_cases, "test_archive_safety.py", "DeployError"),
    "publish": Corpus(("publish/*.yaml",), lambda: _yaml_cases("publish"), "test_security_publish_corpus.py"),
    "commands": Corpus(("commands/malformed.json",), _list_cases("commands/malformed.json", lambda e: e.get("code"),
                                                                 "message"), "test_inference_commands.py"),
    "invoke": Corpus(("invoke/malformed.json",), _list_cases("invoke/malformed.json", lambda e: e.get("code"),
                                                             "message"), "test_inference_invoke.py"),
    "sensor documents": Corpus(("sensor/documents.json",), _list_cases(
        "sensor/documents.json", lambda e: e.get("code"), "message"), "test_inference_documents.py"),
    "sensor readings": Corpus(("sensor/invalid_readings.json",), _list_cases(
        "sensor/invalid_readings.json", lambda e: "InvalidReading" if e.get("field") else None, "reason"),
        "test_sensor_validation.py", "InvalidReading"),
    "sensor messages": Corpus(("sensor/messages.json",), _list_cases(
        "sensor/messages.json", lambda e: "BadMessage", "error"), "test_sensor_messages.py", "BadMessage"),
}


def all_cases() -> list[Case]:
    return [case for corpus in CORPORA.values() for case in corpus.cases()]


def test_the_corpora_hold_at_least_60_cases():
    counts = {name: sum(1 for _ in corpus.cases()) for name, corpus in CORPORA.items()}
    assert all(counts.values()), f"an indexed corpus is empty: {counts}"
    assert sum(counts.values()) >= MINIMUM_CASES, counts


@pytest.mark.parametrize("case", all_cases(), ids=lambda case: case.where)
def test_every_case_declares_an_error_code_and_a_message(case: Case):
    assert case.code not in (None, ""), f"{case.where} declares no error code"
    assert isinstance(case.code, (int, str)), case.code
    assert isinstance(case.message, str) and case.message.strip(), f"{case.where} declares no error message"


def test_every_file_under_tests_corpus_belongs_to_an_indexed_corpus():
    indexed = {path for corpus in CORPORA.values() for pattern in corpus.files for path in CORPUS_ROOT.glob(pattern)}
    on_disk = {path for path in CORPUS_ROOT.rglob("*") if path.is_file() and "__pycache__" not in path.parts}
    on_disk = {path for path in on_disk if path.name not in NOT_CASES}
    assert on_disk - indexed == set(), "case files outside the index: add them to CORPORA and the README"


@pytest.mark.parametrize("name", sorted(CORPORA))
def test_each_corpus_has_a_runner_that_reads_it_and_asserts_its_folder_code(name: str):
    corpus = CORPORA[name]
    runner = TESTS / corpus.runner
    assert runner.exists(), f"{corpus.runner} is missing"
    source = runner.read_text(encoding="utf-8")
    folder = corpus.files[0].split("/")[0]
    assert f'"{folder}"' in source or f"/{folder}/" in source, f"{corpus.runner} does not read tests/corpus/{folder}"
    if corpus.folder_code is not None:
        assert corpus.folder_code in source, f"{corpus.runner} never asserts {corpus.folder_code}"


def test_the_readme_lists_every_corpus_and_its_runner():
    readme = (CORPUS_ROOT / "README.md").read_text(encoding="utf-8")
    for corpus in CORPORA.values():
        assert f"tests/{corpus.runner}" in readme, corpus.runner
        assert f"`{corpus.files[0].split('*')[0].rstrip('/')}" in readme, corpus.files[0]


def test_every_test_cited_in_docs_reliability_md_exists():
    cited = set(re.findall(r"tests/(test_\w+\.py)::(test_\w+)", RELIABILITY_DOC.read_text(encoding="utf-8")))
    assert len(cited) >= 40, "docs/reliability.md cites fewer tests than expected: was its format changed?"
    missing = []
    for file, name in sorted(cited):
        path = TESTS / file
        source = path.read_text(encoding="utf-8") if path.exists() else ""
        if not re.search(rf"^(async )?def {name}\(", source, re.MULTILINE):
            missing.append(f"tests/{file}::{name}")
    assert missing == [], f"docs/reliability.md cites tests that do not exist: {missing}"
