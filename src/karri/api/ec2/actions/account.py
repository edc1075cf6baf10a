"""DescribeAccountAttributes, DescribeRegions, DescribeAvailabilityZones."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from karri.api.ec2.dispatch import Ec2Context, action
from karri.cloud.instances.service import how_many
from karri.cloud.network.defaults import default_vpc_id
from karri.cloud.regions import REGION_FILTERS, ZONE_FILTERS
from karri.config import ADMIN_ACCOUNT
from karri.errors import invalid_value

VERBOSE = "verbose"
MOST = 9999  # the table's four digits

ACCOUNT_ATTRIBUTES = {
    "supported-platforms": ["VPC"],
    "default-vpc": [],  # the account's own: its default VPC's id, or ``none``
    "max-instances": ["20"],
    "max-elastic-ips": ["5"],
    "vpc-max-security-groups-per-interface": ["5"],
    "vpc-max-elastic-ips": ["5"],
}


@action("DescribeAccountAttributes", read_only=True)
def describe_account_attributes(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    names = params.get("AttributeNames") or list(ACCOUNT_ATTRIBUTES)
    for name in names:
        if name not in ACCOUNT_ATTRIBUTES:
            raise invalid_value(f"Value ({name}) for parameter attributeName is invalid.")
    default_vpc = default_vpc_id(ctx.account_id)
    if not ctx.cloud.vpcs.owns(ctx.account_id, default_vpc):  # deleted (DeleteVpc)
        default_vpc = "none"  # as AWS answers for an account without one
    return {
        "AccountAttributes": [
            {
                "AttributeName": name,
                "AttributeValues": [
                    {"AttributeValue": v}
                    for v in ([default_vpc] if name == "default-vpc" else ACCOUNT_ATTRIBUTES[name])
                ],
            }
            for name in names
        ]
    }


@action("DescribeRegions", inline=True)
def describe_regions(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    region = ctx.cloud.geography.region
    regions = [region]
    for name in params.get("RegionNames") or ():
        if name != region.name:
            raise invalid_value(f"Invalid region: {name}")
    regions = REGION_FILTERS.apply(regions, params.get("Filters"))
    return {
        "Regions": [
            {"RegionName": r.name, "Endpoint": r.endpoint, "OptInStatus": "opt-in-not-required"}
            for r in regions
        ]
    }


@action("DescribeAvailabilityZones", inline=True)
def describe_availability_zones(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    zones = ctx.cloud.geography.zones
    names = params.get("ZoneNames") or ()
    if list(names) == [VERBOSE]:  # euca-describe-availability-zones verbose
        if ctx.principal.account_name == ADMIN_ACCOUNT:
            return {"AvailabilityZones": verbose_zones(ctx)}
        names = ()  # Eucalyptus shows the table to its administrator only
    zone_ids = params.get("ZoneIds") or ()
    for name in names:
        if name not in {z.name for z in zones}:
            raise invalid_value(f"The zone '{name}' does not exist.")
    for zone_id in zone_ids:
        if zone_id not in {z.zone_id for z in zones}:
            raise invalid_value(f"The zone ID '{zone_id}' does not exist.")
    zones = ZONE_FILTERS.apply(zones, params.get("Filters"))
    return {
        "AvailabilityZones": [
            {
                "ZoneName": z.name,
                "ZoneId": z.zone_id,
                "State": z.state,
                "RegionName": z.region,
                "ZoneType": "availability-zone",
                "GroupName": z.region,
                "NetworkBorderGroup": z.region,
                "OptInStatus": "opt-in-not-required",
                "Messages": [],
            }
            for z in zones
        ]
    }


def verbose_zones(ctx: Ec2Context) -> list[dict[str, Any]]:
    """Eucalyptus's capacity table as zone entries: each zone, then ``|- vm types`` and a
    line per type with how many more fit (free) and fit at all (max) on the zone's nodes, its
    vCPUs, MiB and GiB; zeros while the node has not started."""
    entries = []
    for zone in ctx.cloud.geography.zones:
        room = ctx.cloud.instances.room(zone.name)
        total, free = room if room is not None else ((0, 0), (0, 0))
        cluster = f"arn:euca:eucalyptus:{zone.name}:cluster:{zone.name}-cc/"
        host = urlsplit(ctx.cloud.geography.region.endpoint).hostname or ""
        entries.append((zone.name, f"{host} {cluster}"))
        entries.append(("|- vm types", "free / max   cpu   ram  disk"))
        for t in ctx.cloud.vmtypes.list():
            most = how_many(total, t.cpu, t.memory_mib, MOST)
            fits = how_many(free, t.cpu, t.memory_mib, most)
            line = f"{fits:04d} / {most:04d} {t.cpu:4d} {t.memory_mib:6d} {t.disk_gib:5d}"
            entries.append((f"|- {t.name}", line))
    region = ctx.cloud.geography.region.name
    return [
        {"ZoneName": name, "State": state, "RegionName": region, "Messages": []}
        for name, state in entries
    ]
