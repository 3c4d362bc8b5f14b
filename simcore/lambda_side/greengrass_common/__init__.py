"""simcore's stand-in for the core's `greengrass_common` package: what a Lambda's greengrasssdk imports.

Placed on each Lambda's PYTHONPATH by simcore; never imported by simcore itself.
"""
