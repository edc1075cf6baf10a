"""DescribeAccountAttributes, DescribeRegions, DescribeAvailabilityZones."""

from __future__ import annotations

from typing import Any

from karri.api.ec2.dispatch import Ec2Context, action
from karri.cloud.network.defaults import default_vpc_id
from karri.cloud.regions import REGION_FILTERS, ZONE_FILTERS
from karri.errors import invalid_value

ACCOUNT_ATTRIBUTES = {
    "supported-platforms": ["VPC"],
    "default-vpc": [],  # the account's own: its default VPC's id
    "max-instances": ["20"],
    "max-elastic-ips": ["5"],
    "vpc-max-security-groups-per-interface": ["5"],
    "vpc-max-elastic-ips": ["5"],
}


@action("DescribeAccountAttributes", inline=True)
def describe_account_attributes(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    names = params.get("AttributeNames") or list(ACCOUNT_ATTRIBUTES)
    for name in names:
        if name not in ACCOUNT_ATTRIBUTES:
            raise invalid_value(f"Value ({name}) for parameter attributeName is invalid.")
    return {
        "AccountAttributes": [
            {
                "AttributeName": name,
                "AttributeValues": [
                    {"AttributeValue": v}
                    for v in (
                        [default_vpc_id(ctx.account_id)]
                        if name == "default-vpc"
                        else ACCOUNT_ATTRIBUTES[name]
                    )
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
