"""RunInstances options karri has nothing behind: refused with AWS's codes, not ignored.

There are no VPC subnets, network interfaces, launch templates or instance profiles here,
so a request naming one names something that does not exist; metadata and CPU options
are checked for the values AWS accepts (karri's metadata service answers IMDSv1 and v2
either way)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from karri.errors import CloudError, invalid_value

_METADATA_CHOICES = {
    "HttpTokens": ("optional", "required"),
    "HttpEndpoint": ("enabled", "disabled"),
    "HttpProtocolIpv6": ("enabled", "disabled"),
    "InstanceMetadataTags": ("enabled", "disabled"),
}


def check_launch_options(params: Mapping[str, Any]) -> None:
    interfaces = params.get("NetworkInterfaces") or ()
    subnet = params.get("SubnetId") or next(
        (i["SubnetId"] for i in interfaces if i.get("SubnetId")), None
    )
    if subnet:
        raise CloudError("InvalidSubnetID.NotFound", f"The subnet ID '{subnet}' does not exist")
    for interface in interfaces:
        if interface.get("NetworkInterfaceId"):
            raise CloudError(
                "InvalidNetworkInterfaceID.NotFound",
                f"The networkInterface ID '{interface['NetworkInterfaceId']}' does not exist",
            )
    template = params.get("LaunchTemplate") or {}
    if template.get("LaunchTemplateId"):
        raise CloudError(
            "InvalidLaunchTemplateId.NotFound",
            f"The specified launch template, with template ID {template['LaunchTemplateId']}, "
            "does not exist.",
        )
    if template.get("LaunchTemplateName"):
        raise CloudError(
            "InvalidLaunchTemplateName.NotFoundException",
            f"The specified launch template, with template name "
            f"{template['LaunchTemplateName']}, does not exist.",
        )
    profile = params.get("IamInstanceProfile") or {}
    if profile.get("Arn") or profile.get("Name"):
        name = profile.get("Name") or profile.get("Arn")
        raise invalid_value(
            f"Value ({name}) for parameter iamInstanceProfile is invalid. "
            "Invalid IAM Instance Profile"
        )
    metadata = params.get("MetadataOptions") or {}
    for name, choices in _METADATA_CHOICES.items():
        if metadata.get(name) is not None and metadata[name] not in choices:
            raise invalid_value(f"Value ({metadata[name]}) for parameter {name} is invalid.")
    hops = metadata.get("HttpPutResponseHopLimit")
    if hops is not None and not 1 <= hops <= 64:
        raise invalid_value(f"Value ({hops}) for parameter HttpPutResponseHopLimit is invalid.")
    for name, value in (params.get("CpuOptions") or {}).items():
        if isinstance(value, int) and value < 1:
            raise invalid_value(f"Value ({value}) for parameter CpuOptions.{name} is invalid.")


def check_client_token(token: str) -> None:
    """AWS's idempotency tokens: at most 64 ASCII characters."""
    if len(token) > 64 or not token.isascii():
        raise invalid_value(
            f"Value ({token[:80]}) for parameter clientToken is invalid. "
            "The client token must be at most 64 ASCII characters."
        )


def idempotency_mismatch() -> CloudError:
    """A client token used again with other parameters."""
    return CloudError(
        "IdempotentParameterMismatch",
        "The client token you have provided is associated with a request that had "
        "different parameters.",
    )
