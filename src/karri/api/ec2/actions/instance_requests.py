"""RunInstances and ModifyInstanceAttribute as parsed (botocore member names) into the
instances service's request values. Only the wire is read here: what the values mean,
and the errors for it, are the service's."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from karri.api.ec2.devices import requested_mappings
from karri.api.ec2.tagging import specified_tags
from karri.cloud.instances.requests import (
    MODIFIABLE,
    AttributeChange,
    AttributeRequest,
    DeviceChange,
    LaunchOptions,
    MetadataOptions,
    ModifiableAttribute,
    NetworkInterfaceSpec,
    ProfileRef,
    RunRequest,
)
from karri.cloud.instances.service import decode_user_data
from karri.errors import CloudError, invalid_value, missing_parameter


def _members(source: Mapping[str, Any], **names: str) -> dict[str, Any]:
    """``field="Member"`` pairs to each field's value: the member's (None if absent)."""
    return {field: source.get(member) for field, member in names.items()}


def run_request(params: Mapping[str, Any]) -> RunRequest:
    specifications = params.get("TagSpecifications") or ()
    return RunRequest(
        **_members(
            params,
            image_id="ImageId",
            min_count="MinCount",
            max_count="MaxCount",
            instance_type="InstanceType",
            kernel_id="KernelId",
            ramdisk_id="RamdiskId",
            key_name="KeyName",
            user_data="UserData",
            shutdown_behavior="InstanceInitiatedShutdownBehavior",
            private_ip="PrivateIpAddress",
            client_token="ClientToken",
        ),
        zone=(params.get("Placement") or {}).get("AvailabilityZone"),
        block_device_mappings=requested_mappings(params.get("BlockDeviceMappings")),
        security_groups=tuple(params.get("SecurityGroups") or ()),
        security_group_ids=tuple(params.get("SecurityGroupIds") or ()),
        disable_api_termination=bool(params.get("DisableApiTermination")),
        disable_api_stop=bool(params.get("DisableApiStop")),
        network_interfaces=tuple(
            NetworkInterfaceSpec(
                **_members(
                    i,
                    interface_id="NetworkInterfaceId",
                    subnet_id="SubnetId",
                    private_ip="PrivateIpAddress",
                    device_index="DeviceIndex",
                    associate_public_ip="AssociatePublicIpAddress",
                    description="Description",
                    delete_on_termination="DeleteOnTermination",
                    secondary_count="SecondaryPrivateIpAddressCount",
                ),
                groups=tuple(i.get("Groups") or ()),
                private_ips=tuple(
                    (a.get("PrivateIpAddress") or "", bool(a.get("Primary")))
                    for a in i.get("PrivateIpAddresses") or ()
                ),
            )
            for i in params.get("NetworkInterfaces") or ()
        ),
        instance_tags=specified_tags(
            [s for s in specifications if s.get("ResourceType") != "volume"], "instance"
        ),
        volume_tags=specified_tags(
            [s for s in specifications if s.get("ResourceType") == "volume"], "volume"
        ),
        options=_launch_options(params),
        fingerprint=_fingerprint(params),
    )


def _fingerprint(params: Mapping[str, Any]) -> str:
    """The whole request but its client token (the digest karri has always stored)."""
    relevant = {k: v for k, v in params.items() if k != "ClientToken"}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()


def profile_ref(spec: Mapping[str, Any]) -> ProfileRef:
    """An ``IamInstanceProfileSpecification``."""
    return ProfileRef(arn=spec.get("Arn"), name=spec.get("Name"))


def _launch_options(params: Mapping[str, Any]) -> LaunchOptions:
    template = params.get("LaunchTemplate") or {}
    profile = params.get("IamInstanceProfile") or {}
    cpu = params.get("CpuOptions") or {}
    return LaunchOptions(
        subnet_id=params.get("SubnetId"),
        launch_template_id=template.get("LaunchTemplateId"),
        launch_template_name=template.get("LaunchTemplateName"),
        instance_profile=profile_ref(profile) if profile else None,
        metadata=MetadataOptions(
            **_members(
                params.get("MetadataOptions") or {},
                http_tokens="HttpTokens",
                http_endpoint="HttpEndpoint",
                http_protocol_ipv6="HttpProtocolIpv6",
                instance_metadata_tags="InstanceMetadataTags",
                hop_limit="HttpPutResponseHopLimit",
            )
        ),
        core_count=cpu.get("CoreCount"),
        threads_per_core=cpu.get("ThreadsPerCore"),
    )


# ModifyInstanceAttribute's members, each an attribute by DescribeInstanceAttribute's name
_MEMBERS: dict[str, ModifiableAttribute] = {
    "InstanceType": "instanceType",
    "UserData": "userData",
    "DisableApiTermination": "disableApiTermination",
    "InstanceInitiatedShutdownBehavior": "instanceInitiatedShutdownBehavior",
    "Kernel": "kernel",
    "Ramdisk": "ramdisk",
    "SourceDestCheck": "sourceDestCheck",
    "DisableApiStop": "disableApiStop",
}
# Members karri has nothing behind: no value of theirs can be set.
_UNSUPPORTED = {
    "EbsOptimized": "ebsOptimized",
    "EnaSupport": "enaSupport",
    "SriovNetSupport": "sriovNetSupport",
    "EnclaveOptions": "enclaveOptions",
}


def attribute_request(params: Mapping[str, Any]) -> AttributeRequest:
    """ModifyInstanceAttribute's two spellings, ``Attribute``+``Value`` or one named member
    (its ``Value``), or the devices' DeleteOnTermination: one of them per call, as AWS
    takes it (none, or two, is ``InvalidParameterCombination``)."""
    changes: dict[ModifiableAttribute, Any] = {}
    for member, name in _MEMBERS.items():
        if params.get(member) is not None:
            changes[name] = params[member].get("Value")
    given: list[str] = list(changes)
    if params.get("Attribute"):
        name = params["Attribute"]
        if name not in MODIFIABLE:
            raise invalid_value(f"Value ({name}) for parameter attribute is invalid.")
        if params.get("Value") is None:
            raise missing_parameter("Value")
        value = params["Value"]
        if name == "userData":  # a member's blob is decoded by the parser; Value is text
            value = decode_user_data(value)
        changes[name] = value
        given.append(name)
    devices = params.get("BlockDeviceMappings") or ()
    if devices:
        given.append("blockDeviceMapping")
    groups = tuple(params.get("Groups") or ())
    if groups:
        given.append("groupSet")
    unsupported = [name for member, name in _UNSUPPORTED.items() if params.get(member)]
    given += unsupported
    if not given:
        raise CloudError("InvalidParameterCombination", "No attributes specified.")
    if len(given) > 1:
        raise CloudError(
            "InvalidParameterCombination",
            f"Fields for multiple attribute types specified: {', '.join(given)}",
        )
    if unsupported:
        raise CloudError(
            "UnsupportedOperation", f"The attribute {unsupported[0]} cannot be changed in karri."
        )
    return AttributeRequest(
        changes=tuple(AttributeChange(name, value) for name, value in changes.items()),
        devices=tuple(
            DeviceChange(
                device.get("DeviceName"), (device.get("Ebs") or {}).get("DeleteOnTermination")
            )
            for device in devices
        ),
        groups=groups,
    )
