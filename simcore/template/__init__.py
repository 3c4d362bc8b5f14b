"""CloudFormation template -> Group: the loader, intrinsics, physical ids, the v1 service's rules."""
