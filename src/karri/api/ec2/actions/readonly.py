"""Reads that Terraform's and Ansible's AWS modules make after every create, answered from
what karri has: its instances' CPU credits, and the resources it has no way to make yet
(spot requests, launch templates, volume modifications) listed as the empty sets they are.
Ids of such resources do not exist, as on AWS for an account that never made one.
"""

from __future__ import annotations

from typing import Any

from karri.api.ec2.dispatch import Ec2Context, action
from karri.cloud.filters import FilterSet, paginate
from karri.errors import CloudError
from karri.ids import is_valid_id


def _nothing(*names: str) -> FilterSet[Any]:
    """The filters AWS documents for a resource karri has none of: each name is known
    (no InvalidParameterValue), and matches nothing."""
    return FilterSet({name: (lambda _item: None) for name in names})


SPOT_FILTERS = _nothing(
    "availability-zone-group",
    "create-time",
    "fault-code",
    "fault-message",
    "instance-id",
    "launch-group",
    "launch.block-device-mapping.delete-on-termination",
    "launch.block-device-mapping.device-name",
    "launch.block-device-mapping.snapshot-id",
    "launch.block-device-mapping.volume-size",
    "launch.block-device-mapping.volume-type",
    "launch.group-id",
    "launch.group-name",
    "launch.image-id",
    "launch.instance-type",
    "launch.kernel-id",
    "launch.key-name",
    "launch.monitoring-enabled",
    "launch.ramdisk-id",
    "launched-availability-zone",
    "network-interface.addresses.primary",
    "network-interface.delete-on-termination",
    "network-interface.description",
    "network-interface.device-index",
    "network-interface.group-id",
    "network-interface.network-interface-id",
    "network-interface.private-ip-address",
    "network-interface.subnet-id",
    "product-description",
    "spot-instance-request-id",
    "spot-price",
    "state",
    "status-code",
    "status-message",
    "type",
    "valid-from",
    "valid-until",
)
TEMPLATE_FILTERS = _nothing("create-time", "launch-template-name")
CREDIT_FILTERS: FilterSet[str] = FilterSet({"instance-id": lambda i: i}, tags=False)


def _empty_page(params: dict[str, Any], kind: str, filters: FilterSet[Any], **bounds: int) -> None:
    """Check what a listing of nothing still checks: filters, MaxResults and NextToken."""
    filters.apply([], params.get("Filters"))
    paginate([], str, params.get("MaxResults"), params.get("NextToken"), kind=kind, **bounds)


def _not_found(ids: list[str], prefix: str, code: str) -> None:
    for resource_id in ids:
        if not is_valid_id(resource_id, prefix):
            raise CloudError(code.replace("NotFound", "Malformed"), f"Invalid id: '{resource_id}'")
    if ids:
        raise CloudError(code, f"The {prefix} ID '{ids[0]}' does not exist")


@action("DescribeSpotInstanceRequests", inline=True)
def describe_spot_instance_requests(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    _not_found(
        params.get("SpotInstanceRequestIds") or [], "sir", "InvalidSpotInstanceRequestID.NotFound"
    )
    _empty_page(params, "spot-requests", SPOT_FILTERS)
    return {"SpotInstanceRequests": []}


@action("DescribeLaunchTemplates", inline=True)
def describe_launch_templates(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    _not_found(params.get("LaunchTemplateIds") or [], "lt", "InvalidLaunchTemplateId.NotFound")
    names = params.get("LaunchTemplateNames") or []
    if names:
        raise CloudError(
            "InvalidLaunchTemplateName.NotFoundException",
            f"At least one of the launch templates specified in the request does not exist: "
            f"{names[0]}",
        )
    _empty_page(params, "launch-templates", TEMPLATE_FILTERS, minimum=1, maximum=200)
    return {"LaunchTemplates": []}


@action("DescribeInstanceCreditSpecifications", read_only=True)
def describe_instance_credit_specifications(
    ctx: Ec2Context, params: dict[str, Any]
) -> dict[str, Any]:
    """Every karri instance runs `standard` (no CPU credits to spend beyond its share).
    Named instances answer so, whatever their type, as AWS does; without names AWS lists
    only the `unlimited` ones, of which karri has none."""
    ids = params.get("InstanceIds") or []
    if not ids:
        _empty_page(params, "credit-specifications", CREDIT_FILTERS)
        return {"InstanceCreditSpecifications": []}
    views, token = ctx.cloud.instances.describe(
        ctx.account_id, ids, None, params.get("MaxResults"), params.get("NextToken")
    )
    found = [i.instance.id for view in views for i in view.instances]
    found = CREDIT_FILTERS.apply(found, params.get("Filters"))
    return {
        "InstanceCreditSpecifications": [
            {"InstanceId": instance_id, "CpuCredits": "standard"} for instance_id in found
        ],
        "NextToken": token,
    }
