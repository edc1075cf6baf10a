"""The region and its availability zones (Eucalyptus's cluster controllers)."""

from __future__ import annotations

from dataclasses import dataclass

from karri.cloud.filters import FilterSet
from karri.config import Settings


@dataclass(frozen=True)
class Region:
    name: str
    endpoint: str


@dataclass(frozen=True)
class Zone:
    name: str
    zone_id: str
    region: str
    state: str = "available"


REGION_FILTERS: FilterSet[Region] = FilterSet(
    {
        "region-name": lambda r: r.name,
        "endpoint": lambda r: r.endpoint,
        "opt-in-status": lambda _r: "opt-in-not-required",
    },
    tags=False,
)
ZONE_FILTERS: FilterSet[Zone] = FilterSet(
    {
        "zone-name": lambda z: z.name,
        "zone-id": lambda z: z.zone_id,
        "region-name": lambda z: z.region,
        "state": lambda z: z.state,
        "zone-type": lambda _z: "availability-zone",
        "group-name": lambda z: z.region,
        "opt-in-status": lambda _z: "opt-in-not-required",
    },
    tags=False,
)


class Geography:
    """One region and its zones: the first (the cloud's own node's), then those added
    (``karri zone create``), each a group of nodes."""

    def __init__(self, settings: Settings) -> None:
        self.region = Region(settings.region, settings.ec2_url)
        self.zones = [
            Zone(name, f"{settings.region}-az{index + 1}", settings.region)
            for index, name in enumerate(settings.zones)
        ]
