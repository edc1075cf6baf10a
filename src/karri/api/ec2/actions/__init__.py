"""EC2 action handlers; importing this package registers them all."""

from karri.api.ec2.actions import account, instances, keypairs, tags, vmtypes  # noqa: F401
