"""EC2 action handlers; importing this package registers them all."""

from karri.api.ec2.actions import (  # noqa: F401
    account,
    addresses,
    ebs_images,
    images,
    instances,
    keypairs,
    passwords,
    readonly,
    security_groups,
    snapshots,
    tags,
    vmtypes,
    volumes,
    vpcs,
)
