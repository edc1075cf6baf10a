"""Every component's tables: importing this module registers them all with Base.metadata
(for Alembic's autogenerate). It sits at the top, beside ``karri.up``: the database
package knows none of its clients.

``COUNTED`` names the tables `karri status` counts (each component adds its own).
"""

from typing import Any

from karri.cloud.iam import models as iam_models
from karri.cloud.images import models as image_models
from karri.cloud.instances import models as instance_models
from karri.cloud.instances import profile_models  # noqa: F401  (IAM instance profiles)
from karri.cloud.network import address_models, group_models
from karri.cloud.network import models as network_models
from karri.cloud.nodes import models as node_models
from karri.cloud.volumes import models as volume_models
from karri.db import models
from karri.walrus import models as walrus_models

COUNTED: dict[str, Any] = {
    "key pairs": models.KeyPair,
    "instances": instance_models.Instance,
    "images": image_models.Image,
    "buckets": walrus_models.Bucket,
    "object versions": walrus_models.ObjectVersion,  # delete markers included
    "volumes": volume_models.Volume,
    "snapshots": volume_models.Snapshot,
    "vpcs": network_models.Vpc,
    "network interfaces": network_models.NetworkInterface,
    "security groups": group_models.SecurityGroupRow,
    "elastic IPs": address_models.ElasticIp,
    "IAM users": iam_models.IamUser,
    "IAM roles": iam_models.IamRole,
    "NAT gateways": network_models.NatGateway,
    "joined nodes": node_models.NodeRow,
}
