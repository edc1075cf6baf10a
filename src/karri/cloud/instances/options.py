"""RunInstances options karri has nothing behind: refused with AWS's codes, not ignored.

There are no launch templates here (instance profiles are ``profiles.py``'s, network
interfaces the service's), so a request naming one names something that does not
exist (subnets are the network's to check); metadata and CPU options are checked for the
values AWS accepts (karri's metadata service answers IMDSv1 and v2 either way)."""

from __future__ import annotations

from collections.abc import Sequence

from karri.cloud.instances.requests import LaunchOptions, MetadataOptions, NetworkInterfaceSpec
from karri.errors import CloudError, invalid_value

_STATE_CHOICES = ("enabled", "disabled")


def check_launch_options(
    options: LaunchOptions, interfaces: Sequence[NetworkInterfaceSpec] = ()
) -> None:
    del interfaces  # checked by the service
    if options.launch_template_id:
        raise CloudError(
            "InvalidLaunchTemplateId.NotFound",
            f"The specified launch template, with template ID {options.launch_template_id}, "
            "does not exist.",
        )
    if options.launch_template_name:
        raise CloudError(
            "InvalidLaunchTemplateName.NotFoundException",
            f"The specified launch template, with template name "
            f"{options.launch_template_name}, does not exist.",
        )
    _check_metadata(options.metadata)
    for name, value in (
        ("CoreCount", options.core_count),
        ("ThreadsPerCore", options.threads_per_core),
    ):
        if value is not None and value < 1:
            raise invalid_value(f"Value ({value}) for parameter CpuOptions.{name} is invalid.")


def _check_metadata(metadata: MetadataOptions) -> None:
    for name, value, choices in (
        ("HttpTokens", metadata.http_tokens, ("optional", "required")),
        ("HttpEndpoint", metadata.http_endpoint, _STATE_CHOICES),
        ("HttpProtocolIpv6", metadata.http_protocol_ipv6, _STATE_CHOICES),
        ("InstanceMetadataTags", metadata.instance_metadata_tags, _STATE_CHOICES),
    ):
        if value is not None and value not in choices:
            raise invalid_value(f"Value ({value}) for parameter {name} is invalid.")
    hops = metadata.hop_limit
    if hops is not None and not 1 <= hops <= 64:
        raise invalid_value(f"Value ({hops}) for parameter HttpPutResponseHopLimit is invalid.")


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
