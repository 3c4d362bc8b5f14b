"""The v1 group exported as a Greengrass v2 deployment: requests, a CloudFormation template, MIGRATION.md."""
