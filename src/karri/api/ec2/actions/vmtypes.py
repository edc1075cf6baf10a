"""DescribeInstanceTypes (AWS's shape, or Eucalyptus's for its clients) and the offerings."""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

from karri.api.ec2.dispatch import Ec2Context, action
from karri.api.ec2.render import RawXml
from karri.cloud.filters import FilterSet, paginate
from karri.cloud.network.interface_limits import limits_of
from karri.cloud.vmtypes import VmTypeView
from karri.errors import CloudError, invalid_value

# Every AWS SDK speaks this API version (DescribeInstanceTypes came later within it); a client
# asking with an older version is a Eucalyptus client calling Eucalyptus's own action.
AWS_INSTANCE_TYPES_VERSION = "2016-11-15"
# Eucalyptus answered in http://msgs.eucalyptus.com/<its version>; libcloud's Eucalyptus
# driver looks for its default, 3.3.0, and finds nothing in any other namespace.
EUCALYPTUS_XMLNS = "http://msgs.eucalyptus.com/3.3.0"

TYPE_FILTERS: FilterSet[VmTypeView] = FilterSet(
    {
        "instance-type": lambda t: t.name,
        "current-generation": lambda _t: True,
        "vcpu-info.default-vcpus": lambda t: t.cpu,
        "memory-info.size-in-mib": lambda t: t.memory_mib,
        "instance-storage-supported": lambda _t: True,
        "instance-storage-info.total-size-in-gb": lambda t: t.disk_gib,
        "supported-root-device-type": lambda _t: ["ebs", "instance-store"],
        "supported-virtualization-type": lambda _t: ["hvm", "paravirtual"],
        "hypervisor": lambda _t: "kvm",
        "processor-info.supported-architecture": lambda _t: "x86_64",
    },
    tags=False,
)
OFFERING_FILTERS: FilterSet[tuple[str, str]] = FilterSet(
    {"instance-type": lambda o: o[0], "location": lambda o: o[1]}, tags=False
)


def instance_type_info(t: VmTypeView) -> dict[str, Any]:
    return {
        "InstanceType": t.name,
        "CurrentGeneration": True,
        "FreeTierEligible": False,
        "SupportedUsageClasses": ["on-demand"],
        "SupportedRootDeviceTypes": ["ebs", "instance-store"],
        "SupportedVirtualizationTypes": ["hvm", "paravirtual"],
        "BareMetal": False,
        "Hypervisor": "kvm",
        "ProcessorInfo": {"SupportedArchitectures": ["x86_64"]},
        "VCpuInfo": {"DefaultVCpus": t.cpu, "DefaultCores": t.cpu, "DefaultThreadsPerCore": 1},
        "MemoryInfo": {"SizeInMiB": t.memory_mib},
        "InstanceStorageSupported": True,
        "InstanceStorageInfo": {
            "TotalSizeInGB": t.disk_gib,
            "Disks": [{"SizeInGB": t.disk_gib, "Count": 1, "Type": "hdd"}],
        },
        "EbsInfo": {"EbsOptimizedSupport": "unsupported", "EncryptionSupport": "unsupported"},
        "NetworkInfo": {
            "NetworkPerformance": "Moderate",
            "MaximumNetworkInterfaces": limits_of(t.name).interfaces,
            "Ipv4AddressesPerInterface": limits_of(t.name).addresses,
            "Ipv6AddressesPerInterface": 0,
            "Ipv6Supported": False,
            "MaximumNetworkCards": 1,
            "DefaultNetworkCardIndex": 0,
            "NetworkCards": [
                {
                    "NetworkCardIndex": 0,
                    "NetworkPerformance": "Moderate",
                    "MaximumNetworkInterfaces": limits_of(t.name).interfaces,
                }
            ],
        },
        "PlacementGroupInfo": {"SupportedStrategies": []},
        "HibernationSupported": False,
        "BurstablePerformanceSupported": False,
        "AutoRecoverySupported": False,
        "SupportedBootModes": ["legacy-bios"],
    }


def eucalyptus_instance_types(types: list[VmTypeView]) -> RawXml:
    items = "".join(
        f"<item><name>{escape(t.name)}</name><cpu>{t.cpu}</cpu><disk>{t.disk_gib}</disk>"
        f"<memory>{t.memory_mib}</memory></item>"
        for t in types
    )
    return RawXml(
        "DescribeInstanceTypesResponse",
        EUCALYPTUS_XMLNS,
        f"<instanceTypeDetails>{items}</instanceTypeDetails>",
    )


@action("DescribeInstanceTypes", read_only=True)
def describe_instance_types(ctx: Ec2Context, params: dict[str, Any]) -> Any:
    types = ctx.cloud.vmtypes.list()
    wanted = params.get("InstanceTypes")
    if wanted:
        known = {t.name for t in types}
        missing = [name for name in wanted if name not in known]
        if missing:
            raise CloudError(
                "InvalidInstanceType",
                f"The following supplied instance types do not exist: [{', '.join(missing)}]",
            )
        types = [t for t in types if t.name in set(wanted)]
    types = TYPE_FILTERS.apply(types, params.get("Filters"))
    if ctx.eucalyptus_client or ctx.version < AWS_INSTANCE_TYPES_VERSION:
        return eucalyptus_instance_types(types)
    page = paginate(
        types,
        lambda t: t.name,
        params.get("MaxResults"),
        params.get("NextToken"),
        kind="instance-types",
        maximum=100,
    )
    return {
        "InstanceTypes": [instance_type_info(t) for t in page.items],
        "NextToken": page.next_token,
    }


@action("DescribeInstanceTypeOfferings", read_only=True)
def describe_instance_type_offerings(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    location_type = params.get("LocationType", "region")
    geography = ctx.cloud.geography
    if location_type == "region":
        locations = [geography.region.name]
    elif location_type == "availability-zone":
        locations = [z.name for z in geography.zones]
    elif location_type == "availability-zone-id":
        locations = [z.zone_id for z in geography.zones]
    else:
        raise invalid_value(f"Value ({location_type}) for parameter LocationType is invalid.")
    offerings = [(t.name, loc) for t in ctx.cloud.vmtypes.list() for loc in locations]
    offerings = OFFERING_FILTERS.apply(offerings, params.get("Filters"))
    page = paginate(
        offerings,
        lambda o: f"{o[0]}\0{o[1]}",
        params.get("MaxResults"),
        params.get("NextToken"),
        kind="offerings",
    )
    return {
        "InstanceTypeOfferings": [
            {"InstanceType": name, "LocationType": location_type, "Location": loc}
            for name, loc in page.items
        ],
        "NextToken": page.next_token,
    }
