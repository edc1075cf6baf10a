"""What every service of a VPC's parts (route tables, network ACLs, DHCP option sets)
is built with."""

from __future__ import annotations

from collections.abc import Callable

from karri.cloud.network.vpcs import Vpcs
from karri.cloud.tags import Tags
from karri.db.engine import Database


class VpcPartService:
    def __init__(
        self,
        db: Database,
        tags: Tags,
        vpcs: Vpcs,
        on_change: Callable[[str], None] = lambda _vpc_id: None,
    ) -> None:
        """``on_change`` is told the VPC id after a committed change of what the node
        enforces of this part (each subclass says what)."""
        self.db = db
        self.tags = tags
        self.vpcs = vpcs
        self.on_change = on_change
