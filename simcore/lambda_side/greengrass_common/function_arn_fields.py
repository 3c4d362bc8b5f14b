"""Parsing of Lambda function ARNs the way the v1 core's runtime does it (a prefix `re.match`)."""

import re

# The core's own pattern: partition, region, account, name, optional qualifier (alias, version or $LATEST).
ARN_FIELD_REGEX = (
    r"arn:aws(?:-[a-z]+)*:lambda:([a-z]{2}(?:-[a-z]+)+-\d{1}):([0-9a-zA-Z]*):function:([a-zA-Z0-9-_]+)"
    r"(?::(\$LATEST|[a-zA-Z0-9-_]+))?"
)


class FunctionArnFields:
    """The parts of a function ARN: `region`, `account_id`, `name`, `qualifier` (None when absent)."""

    def __init__(self, function_arn_string):
        match = re.match(ARN_FIELD_REGEX, function_arn_string or "")
        if match is None:
            raise ValueError("Cannot parse given string as a function ARN.")
        self.region = match.group(1)
        self.account_id = match.group(2)
        self.name = match.group(3)
        self.qualifier = match.group(4)
        # Keep the ARN's own partition (aws, aws-cn, aws-us-gov): everything up to the name.
        self._unqualified_arn = match.string[: match.end(3)]

    @property
    def unqualified_arn(self):
        """The ARN without its qualifier."""
        return self._unqualified_arn

    @property
    def qualified_arn(self):
        """The ARN with its qualifier, or the unqualified ARN when there is none."""
        return self.build_function_arn(self.unqualified_arn, self.qualifier)

    @staticmethod
    def build_function_arn(unqualified_arn, qualifier=None):
        """`unqualified_arn:qualifier`, or `unqualified_arn` when the qualifier is empty (core v1.9+ API)."""
        if qualifier:
            return "{}:{}".format(unqualified_arn, qualifier)
        return unqualified_arn
