"""RunInstances, DescribeInstances and the rest of the instance lifecycle."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from karri.api.ec2.actions.instance_requests import attribute_request, run_request
from karri.api.ec2.actions.keypairs import tag_list
from karri.api.ec2.devices import attached_info
from karri.api.ec2.dispatch import Ec2Context, action
from karri.api.ec2.instance_fragments import Fragment, InstanceFragments
from karri.api.ec2.render import Prerendered
from karri.cloud.instances import states
from karri.cloud.instances.addresses import private_dns_name, public_dns_name
from karri.cloud.instances.filters import FIXED
from karri.cloud.instances.groups import SecurityGroup, groups_of, parsed
from karri.cloud.instances.service import AttributeValue, InstanceView, ReservationView
from karri.cloud.instances.status import StatusCheck
from karri.cloud.network.models import NetworkInterface
from karri.errors import CloudError, missing_parameter

CONSOLE_BYTES = 64 * 1024


def state_info(state: str) -> dict[str, object]:
    """EC2's InstanceState: the state's code and name."""
    return {"Code": states.CODES[state], "Name": state}


def group_list(groups: list[SecurityGroup]) -> list[dict[str, str]]:
    return [{"GroupName": g.name, "GroupId": g.group_id} for g in groups]


def instance_info(
    view: InstanceView,
    region: str,
    client_token: str | None,
    block_devices: dict[str, list[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    i = view.instance
    shows_addresses = i.state not in (states.TERMINATED,)
    info: dict[str, Any] = {
        "InstanceId": i.id,
        "ImageId": i.image_id,
        "State": state_info(i.state),
        "PrivateDnsName": private_dns_name(i.private_ip, region)
        if i.private_ip and shows_addresses
        else "",
        "PublicDnsName": public_dns_name(i.public_ip, region)
        if i.public_ip and shows_addresses and view.public_names
        else "",
        "StateTransitionReason": i.transition_reason,
        "KeyName": i.key_name,
        "AmiLaunchIndex": i.launch_index,
        "ProductCodes": [],
        "InstanceType": i.instance_type,
        "LaunchTime": i.launch_time,
        "Placement": {"AvailabilityZone": i.zone, "GroupName": "", "Tenancy": "default"},
        "KernelId": i.kernel_id,
        "RamdiskId": i.ramdisk_id,
        "Monitoring": {"State": "disabled"},
        "PrivateIpAddress": i.private_ip if shows_addresses else None,
        "PublicIpAddress": i.public_ip if shows_addresses else None,
        "Architecture": i.architecture,
        "RootDeviceType": i.root_device_type,
        "RootDeviceName": i.root_device_name,
        "BlockDeviceMappings": (block_devices or {}).get(i.id, []),
        "VirtualizationType": "hvm",
        "ClientToken": client_token or "",
        "Tags": tag_list(view.tags),
        "SecurityGroups": group_list(groups_of(i)),
        "Hypervisor": "kvm",
        "EbsOptimized": False,
        "EnaSupport": False,
        "SourceDestCheck": i.source_dest_check,
        "VpcId": i.vpc_id,
        "SubnetId": i.subnet_id,
        "NetworkInterfaces": _interfaces(view, region) if shows_addresses else [],
        "CpuOptions": {"CoreCount": i.vcpus, "ThreadsPerCore": 1},
        "MetadataOptions": {
            "State": FIXED.metadata["state"],
            "HttpTokens": FIXED.metadata["http-tokens"],
            "HttpPutResponseHopLimit": FIXED.metadata["http-put-response-hop-limit"],
            "HttpEndpoint": FIXED.metadata["http-endpoint"],
            "HttpProtocolIpv6": FIXED.metadata["http-protocol-ipv6"],
            "InstanceMetadataTags": FIXED.metadata["instance-metadata-tags"],
        },
        "BootMode": FIXED.boot_mode,
        "CurrentInstanceBootMode": FIXED.boot_mode,
        "PlatformDetails": FIXED.platform_details,
        "UsageOperation": FIXED.usage_operation,
        "UsageOperationUpdateTime": i.launch_time,
        "PrivateDnsNameOptions": {
            "HostnameType": FIXED.hostname_type,
            "EnableResourceNameDnsARecord": False,
            "EnableResourceNameDnsAAAARecord": False,
        },
        "CapacityReservationSpecification": {
            "CapacityReservationPreference": FIXED.capacity_reservation_preference
        },
        "HibernationOptions": {"Configured": False},
        "EnclaveOptions": {"Enabled": False},
        "MaintenanceOptions": {"AutoRecovery": FIXED.auto_recovery},
    }
    if i.state_reason_code:
        info["StateReason"] = {"Code": i.state_reason_code, "Message": i.state_reason_message}
    if view.profile is not None:
        info["IamInstanceProfile"] = {"Arn": view.profile.arn, "Id": view.profile.id}
    return info


def _interfaces(view: InstanceView, region: str) -> list[dict[str, Any]]:
    """The instance's interfaces as DescribeInstances shows them: the primary one (with
    the instance's groups and public address), then the others by device index."""
    i, n = view.instance, view.interface
    if n is None:
        return []
    association = (
        {
            "IpOwnerId": i.account_id if view.elastic_ip else "amazon",
            "PublicDnsName": public_dns_name(i.public_ip, region) if view.public_names else "",
            "PublicIp": i.public_ip,
        }
        if i.public_ip
        else None
    )
    primary = _interface(view, n, groups_of(i), region)
    if association:
        primary["Association"] = association
        primary["PrivateIpAddresses"][0]["Association"] = association
    others = [_interface(view, e, parsed(e.security_groups), region) for e in view.others.extras]
    return [primary, *others]


def _interface(
    view: InstanceView, n: NetworkInterface, groups: list[Any], region: str
) -> dict[str, Any]:
    addresses = [
        {
            "Primary": ip == n.private_ip,
            "PrivateDnsName": private_dns_name(ip, region),
            "PrivateIpAddress": ip,
        }
        for ip in (n.private_ip, *view.others.secondary.get(n.id, ()))
    ]
    return {
        "Attachment": {
            "AttachTime": n.attach_time,
            "AttachmentId": n.attachment_id,
            "DeleteOnTermination": n.delete_on_termination,
            "DeviceIndex": n.device_index,
            "Status": n.attachment_status,
            "NetworkCardIndex": 0,
        },
        "Description": n.description,
        "Groups": group_list(groups),
        "Ipv6Addresses": [],
        "MacAddress": n.mac,
        "NetworkInterfaceId": n.id,
        "OwnerId": n.account_id,
        "PrivateDnsName": private_dns_name(n.private_ip, region),
        "PrivateIpAddress": n.private_ip,
        "PrivateIpAddresses": addresses,
        "SourceDestCheck": n.source_dest_check,
        "Status": n.status,
        "SubnetId": n.subnet_id,
        "VpcId": n.vpc_id,
        "InterfaceType": n.interface_type,
    }


def reservation_info(
    view: ReservationView,
    region: str,
    block_devices: dict[str, list[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    reservation = view.reservation
    groups = groups_of(view.instances[0].instance) if view.instances else []
    token = reservation.client_token
    return {
        "ReservationId": reservation.id,
        "OwnerId": reservation.account_id,
        "Groups": group_list(groups),
        "Instances": [instance_info(i, region, token, block_devices) for i in view.instances],
    }


def _block_devices(ctx: Ec2Context, views: list[ReservationView]) -> dict[str, list[dict]]:
    """The EBS volumes attached to these instances, by instance id."""
    ids = [i.instance.id for v in views for i in v.instances]
    attached = ctx.cloud.ebs.block_devices.instance_mappings(ids) if ids else {}
    return {i: attached_info(a) for i, a in attached.items()}


@action("RunInstances")
def run_instances(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    view = ctx.cloud.instances.run(ctx.account_id, run_request(params))
    return reservation_info(view, ctx.cloud.settings.region, _block_devices(ctx, [view]))


def _describe(ctx: Ec2Context, params: dict[str, Any]) -> tuple[list[ReservationView], str | None]:
    """The instances a Describe call names and filters, one page of them."""
    return ctx.cloud.instances.describe(
        ctx.account_id,
        params.get("InstanceIds"),
        params.get("Filters"),
        params.get("MaxResults"),
        params.get("NextToken"),
    )


@action("DescribeInstances")
def describe_instances(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any] | Prerendered:
    fragments = ctx.instance_fragments
    if fragments is not None and not params.get("InstanceIds") and not params.get("Filters"):
        answer = _from_fragments(ctx, fragments, params.get("MaxResults"), params.get("NextToken"))
        if answer is not None:
            return answer
    views, token = _describe(ctx, params)
    region = ctx.cloud.settings.region
    devices = _block_devices(ctx, views)
    return {
        "Reservations": [reservation_info(v, region, devices) for v in views],
        "NextToken": token,
    }


def _from_fragments(
    ctx: Ec2Context,
    fragments: InstanceFragments,
    max_results: int | None,
    next_token: str | None,
) -> Prerendered | None:
    """The page's answer from the instances' kept XML, rendering (and keeping) only those
    whose version has none; None if one of them is gone meanwhile (the full path answers).

    Any caller allowed DescribeInstances sees the same answer (its authorization is per
    action, on ``*``), so what is kept serves every caller of the account."""
    page, token = ctx.cloud.instances.listing.page(ctx.account_id, max_results, next_token)
    found: dict[str, Fragment] = {}
    missing: list[str] = []
    for listed in page:
        fragment = fragments.cache.get(listed.id, listed.version)
        if fragment is None:
            missing.append(listed.id)
        else:
            found[listed.id] = fragment
    if missing:
        try:
            views, _ = ctx.cloud.instances.describe(ctx.account_id, missing)
        except CloudError as error:
            if error.code == "InvalidInstanceID.NotFound":
                return None
            raise
        region = ctx.cloud.settings.region
        devices = _block_devices(ctx, views)
        for reservation in views:
            token_of = reservation.reservation.client_token
            for view in reservation.instances:
                i = view.instance
                info = instance_info(view, region, token_of, devices)
                fragment = fragments.xml.fragment(i.version, info, group_list(groups_of(i)))
                fragments.cache.put(i.id, fragment)
                found[i.id] = fragment
    return fragments.xml.answer(page, found, token)


@action("DescribeInstanceStatus")
def describe_instance_status(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    statuses, token = ctx.cloud.instances.status(
        ctx.account_id,
        params.get("InstanceIds"),
        params.get("Filters"),
        bool(params.get("IncludeAllInstances")),
        params.get("MaxResults"),
        params.get("NextToken"),
    )
    return {
        "InstanceStatuses": [
            {
                "InstanceId": s.instance.id,
                "AvailabilityZone": s.instance.zone,
                "InstanceState": state_info(s.instance.state),
                "InstanceStatus": _summary(s.guest),
                "SystemStatus": _summary(s.system),
                "Events": [
                    {
                        "InstanceEventId": e.event_id,
                        "Code": e.code,
                        "Description": e.description,
                        "NotBefore": e.not_before,
                    }
                    for e in s.events
                ],
            }
            for s in statuses
        ],
        "NextToken": token,
    }


def _summary(check: StatusCheck) -> dict[str, Any]:
    """AWS's InstanceStatusSummary: a status and its one detail, reachability."""
    if check.reachability is None:
        return {"Status": check.status, "Details": []}
    detail: dict[str, Any] = {"Name": "reachability", "Status": check.reachability}
    if check.impaired_since is not None:
        detail["ImpairedSince"] = check.impaired_since
    return {"Status": check.status, "Details": [detail]}


def _state_changes(changes: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    return [
        {
            "InstanceId": instance_id,
            "PreviousState": state_info(previous),
            "CurrentState": state_info(current),
        }
        for instance_id, previous, current in changes
    ]


@action("TerminateInstances")
def terminate_instances(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    changes = ctx.cloud.instances.terminate(ctx.account_id, params.get("InstanceIds") or [])
    return {"TerminatingInstances": _state_changes(changes)}


@action("StopInstances")
def stop_instances(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    changes = ctx.cloud.instances.stop(
        ctx.account_id, params.get("InstanceIds") or [], bool(params.get("Force"))
    )
    return {"StoppingInstances": _state_changes(changes)}


@action("StartInstances")
def start_instances(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    changes = ctx.cloud.instances.start(ctx.account_id, params.get("InstanceIds") or [])
    return {"StartingInstances": _state_changes(changes)}


@action("RebootInstances")
def reboot_instances(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.cloud.instances.reboot(ctx.account_id, params.get("InstanceIds") or [])
    return {}


@action("GetConsoleOutput")
def get_console_output(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    instance_id = params.get("InstanceId")
    if not instance_id:
        raise missing_parameter("InstanceId")
    output = ctx.cloud.instances.console_output(ctx.account_id, instance_id)[-CONSOLE_BYTES:]
    return {
        "InstanceId": instance_id,
        "Timestamp": datetime.now(UTC),
        "Output": base64.b64encode(output).decode(),
    }


@action("DescribeInstanceAttribute")
def describe_instance_attribute(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    instance_id = params.get("InstanceId")
    if not instance_id:
        raise missing_parameter("InstanceId")
    name = params.get("Attribute")
    if not name:
        raise missing_parameter("Attribute")
    value = ctx.cloud.instances.attribute(ctx.account_id, instance_id, name)
    return {"InstanceId": instance_id, **_attribute_answer(name, value)}


def _present(value: str | None) -> dict[str, Any]:
    return {"Value": value} if value else {}


# The attributes whose member is not ``Name: {Value: ...}`` (``instanceType`` is
# ``InstanceType: {Value: ...}``, and so on).
_ANSWERS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "groupSet": lambda groups: {"Groups": group_list(groups)},
    "blockDeviceMapping": lambda attached: {"BlockDeviceMappings": attached_info(attached)},
    "userData": lambda data: {
        "UserData": {"Value": base64.b64encode(data).decode()} if data else {}
    },
    "kernel": lambda kernel_id: {"KernelId": _present(kernel_id)},
    "ramdisk": lambda ramdisk_id: {"RamdiskId": _present(ramdisk_id)},
    "productCodes": lambda _none: {"ProductCodes": []},
    "sriovNetSupport": lambda _false: {"SriovNetSupport": {}},
    "enclaveOptions": lambda enabled: {"EnclaveOptions": {"Enabled": enabled}},
}


def _attribute_answer(name: str, value: AttributeValue) -> dict[str, Any]:
    answer = _ANSWERS.get(name)
    return answer(value) if answer else {name[0].upper() + name[1:]: {"Value": value}}


@action("ModifyInstanceAttribute")
def modify_instance_attribute(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    instance_id = params.get("InstanceId")
    if not instance_id:
        raise missing_parameter("InstanceId")
    ctx.cloud.instances.modify_attribute(ctx.account_id, instance_id, attribute_request(params))
    return {}


@action("ResetInstanceAttribute")
def reset_instance_attribute(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    # botocore's shape makes InstanceId and Attribute required: query.py has checked them.
    ctx.cloud.instances.reset_attribute(ctx.account_id, params["InstanceId"], params["Attribute"])
    return {}
