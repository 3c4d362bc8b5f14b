"""The `simcore` command line: one module per command family."""
