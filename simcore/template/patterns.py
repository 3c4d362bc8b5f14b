"""A parameter's `AllowedPattern`, matched in time linear in the value's length (RE2), never by backtracking.

CloudFormation reads `AllowedPattern` as a Java regular expression that must match the whole value. Python's
`re` backtracks: `^(a+)+$` against 30 × `a` + `b` took 31 s, and each extra character doubles it. RE2
(google-re2) compiles a pattern to an automaton and matches in one pass over the value, whatever the pattern.

What RE2 reads is the part of Java's syntax without backtracking: literals, `.`, classes (`[a-z]`, `\\d`,
`\\w`, `\\s`, `\\p{L}`), anchors (`^`, `$`, `\\A`, `\\z`, `\\b`), alternation, groups (capturing, `(?:...)`,
named), greedy and lazy repetition (`*`, `+`, `?`, `{m,n}` with n ≤ 1000), flags (`(?i)`, `(?s)`, `(?m)`) and
`\\Q...\\E`. A pattern that uses backreferences (`\\1`), lookahead or lookbehind (`(?=`, `(?!`, `(?<=`, `(?<!`),
possessive quantifiers (`a*+`), atomic groups (`(?>...)`) or Java-only classes (`\\p{javaLowerCase}`) is refused
with a `TemplateError` naming the parameter, not matched some other way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import re2

from simcore.errors import TemplateError

# RE2's own default; a pattern that needs more (a huge counted repetition) is refused when compiled.
_MAX_PROGRAM_BYTES = 8 << 20

_UNSUPPORTED = (
    "backreferences, lookahead/lookbehind, possessive quantifiers, atomic groups and Java-only classes are "
    "not supported: simcore matches AllowedPattern with RE2, which runs in linear time"
)


@dataclass(frozen=True)
class AllowedPattern:
    """A compiled `AllowedPattern`: `matches(value)` is True when the whole value matches."""

    source: str
    compiled: Any

    @property
    def engine(self) -> str:
        """The matching engine, named from the compiled object's module: "RE2" for google-re2."""
        return "RE2" if type(self.compiled).__module__.split(".")[0] == "re2" else type(self.compiled).__module__

    def matches(self, value: str) -> bool:
        """Whether `value` matches from its first character to its last (Java's `String.matches`)."""
        return self.compiled.fullmatch(value) is not None


def compile_allowed_pattern(pattern: str, parameter: str, where: str) -> AllowedPattern:
    """`pattern` compiled with RE2; TemplateError at `where` when RE2 cannot read it (see the module docstring)."""
    options = re2.Options()
    options.log_errors = False  # the error goes to the person as a TemplateError, not to stderr
    options.max_mem = _MAX_PROGRAM_BYTES
    try:
        compiled = re2.compile(pattern, options)
    except re2.error as error:
        detail = error.args[0].decode("utf-8", "replace") if error.args and isinstance(error.args[0], bytes) else error
        raise TemplateError(
            f"parameter {parameter}: AllowedPattern {pattern!r} is not a pattern simcore can match ({detail}); "
            + _UNSUPPORTED,
            location=where,
        ) from None
    return AllowedPattern(pattern, compiled)
