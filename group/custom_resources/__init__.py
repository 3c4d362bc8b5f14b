"""CloudFormation custom resources of the group stack; each module is one resource type's Lambda handler.

They run in AWS Lambda (python3.12), deployed from this folder's parent by the group template.
"""
