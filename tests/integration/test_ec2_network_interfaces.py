"""Elastic network interfaces (issue 16) through boto3 against a real `karri up` (fake
node driver: the model only): Create/Delete/Describe with filters, pagination and tags,
attributes, Attach/Detach with the instance type's limits, secondary addresses, elastic
IPs on any private address, RunInstances with several interfaces, DeleteOnTermination,
DryRun and account isolation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Karri, start_karri
from tests.integration.ec2_wire import error_of, unique
from tests.integration.guests import end_cloud, tiny_image, wait_for, wait_state


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Karri]:
    karri = start_karri(tmp_path_factory.mktemp("eni") / "data", "--node-driver", "fake")
    try:
        yield karri
    finally:
        end_cloud(karri)


@pytest.fixture
def ec2(cloud: Karri) -> Any:
    """A client of a new account (its default VPC and subnet are its own)."""
    return cloud.client("ec2", cloud.create_account(unique("eni").lower()))


def default_subnet(ec2: Any) -> dict[str, Any]:
    return ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])[
        "Subnets"
    ][0]


def interface(ec2: Any, interface_id: str) -> dict[str, Any]:
    return ec2.describe_network_interfaces(NetworkInterfaceIds=[interface_id])["NetworkInterfaces"][
        0
    ]


def settled(ec2: Any, interface_id: str, status: str) -> dict[str, Any]:
    """The interface once its attachment is ``status`` ("available": detached)."""

    def check() -> dict[str, Any] | None:
        seen = interface(ec2, interface_id)
        now = seen["Attachment"]["Status"] if "Attachment" in seen else "available"
        return seen if now == status else None

    return wait_for(f"{interface_id} to be {status}", check, 60)


def launch(cloud: Karri, ec2: Any, **extra: Any) -> dict[str, Any]:
    image_id = tiny_image(cloud, ec2)
    run = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1, **extra)
    return run["Instances"][0]


def test_create_describe_tag_delete(ec2: Any) -> None:
    subnet = default_subnet(ec2)
    group = ec2.create_security_group(GroupName="eni", Description="eni", VpcId=subnet["VpcId"])[
        "GroupId"
    ]
    made = ec2.create_network_interface(
        SubnetId=subnet["SubnetId"],
        Description="second",
        Groups=[group],
        SecondaryPrivateIpAddressCount=2,
        TagSpecifications=[
            {"ResourceType": "network-interface", "Tags": [{"Key": "role", "Value": "db"}]}
        ],
    )["NetworkInterface"]
    eni = made["NetworkInterfaceId"]
    assert made["Status"] == "available" and "Attachment" not in made
    assert made["Description"] == "second" and made["SubnetId"] == subnet["SubnetId"]
    assert made["Groups"] == [{"GroupId": group, "GroupName": "eni"}]
    assert made["TagSet"] == [{"Key": "role", "Value": "db"}]
    addresses = made["PrivateIpAddresses"]
    assert [a["Primary"] for a in addresses] == [True, False, False]
    assert addresses[0]["PrivateIpAddress"] == made["PrivateIpAddress"]
    assert len({a["PrivateIpAddress"] for a in addresses}) == 3
    assert made["MacAddress"].startswith("0e:")
    assert interface(ec2, eni) == made

    by_tag = ec2.describe_network_interfaces(Filters=[{"Name": "tag:role", "Values": ["db"]}])
    assert [n["NetworkInterfaceId"] for n in by_tag["NetworkInterfaces"]] == [eni]
    secondary = addresses[2]["PrivateIpAddress"]
    by_address = ec2.describe_network_interfaces(
        Filters=[{"Name": "addresses.private-ip-address", "Values": [secondary]}]
    )["NetworkInterfaces"]
    assert [n["NetworkInterfaceId"] for n in by_address] == [eni]
    by_group = ec2.describe_network_interfaces(Filters=[{"Name": "group-id", "Values": [group]}])
    assert [n["NetworkInterfaceId"] for n in by_group["NetworkInterfaces"]] == [eni]
    assert error_of(ec2.delete_security_group, GroupId=group) == ("DependencyViolation", 400)

    ec2.create_tags(Resources=[eni], Tags=[{"Key": "later", "Value": "yes"}])
    assert {"Key": "later", "Value": "yes"} in interface(ec2, eni)["TagSet"]

    wanted = addresses[0]["PrivateIpAddress"]
    taken = ec2.create_network_interface
    assert error_of(taken, SubnetId=subnet["SubnetId"], PrivateIpAddress=wanted) == (
        "InvalidIPAddress.InUse",
        400,
    )
    assert error_of(taken, SubnetId="subnet-12345678") == ("InvalidSubnetID.NotFound", 400)
    assert error_of(taken, SubnetId=subnet["SubnetId"], DryRun=True) == ("DryRunOperation", 412)

    ec2.delete_network_interface(NetworkInterfaceId=eni)
    assert error_of(ec2.describe_network_interfaces, NetworkInterfaceIds=[eni]) == (
        "InvalidNetworkInterfaceID.NotFound",
        400,
    )
    assert error_of(ec2.delete_network_interface, NetworkInterfaceId=eni) == (
        "InvalidNetworkInterfaceID.NotFound",
        400,
    )
    assert error_of(ec2.delete_network_interface, NetworkInterfaceId="nonsense") == (
        "InvalidNetworkInterfaceId.Malformed",
        400,
    )
    ec2.delete_security_group(GroupId=group)


def test_pagination_and_client_token(ec2: Any) -> None:
    subnet_id = default_subnet(ec2)["SubnetId"]
    first = ec2.create_network_interface(SubnetId=subnet_id, ClientToken="token-1")
    again = ec2.create_network_interface(SubnetId=subnet_id, ClientToken="token-1")
    assert first["NetworkInterface"] == again["NetworkInterface"]
    for _ in range(5):
        ec2.create_network_interface(SubnetId=subnet_id)
    seen: list[str] = []
    token = None
    while True:
        page = ec2.describe_network_interfaces(
            MaxResults=5, **({"NextToken": token} if token else {})
        )
        seen += [n["NetworkInterfaceId"] for n in page["NetworkInterfaces"]]
        token = page.get("NextToken")
        if not token:
            break
    assert len(seen) == len(set(seen)) == 6


def test_attributes(ec2: Any) -> None:
    subnet = default_subnet(ec2)
    eni = ec2.create_network_interface(SubnetId=subnet["SubnetId"])["NetworkInterface"]
    eni_id = eni["NetworkInterfaceId"]
    default_group = eni["Groups"][0]["GroupId"]
    ec2.modify_network_interface_attribute(
        NetworkInterfaceId=eni_id, Description={"Value": "changed"}
    )
    ec2.modify_network_interface_attribute(
        NetworkInterfaceId=eni_id, SourceDestCheck={"Value": False}
    )
    other = ec2.create_security_group(
        GroupName="other", Description="other", VpcId=subnet["VpcId"]
    )["GroupId"]
    ec2.modify_network_interface_attribute(NetworkInterfaceId=eni_id, Groups=[other])

    def attribute(name: str) -> dict[str, Any]:
        return ec2.describe_network_interface_attribute(NetworkInterfaceId=eni_id, Attribute=name)

    assert attribute("description")["Description"] == {"Value": "changed"}
    assert attribute("sourceDestCheck")["SourceDestCheck"] == {"Value": False}
    assert attribute("groupSet")["Groups"] == [{"GroupId": other, "GroupName": "other"}]
    assert "Attachment" not in attribute("attachment")
    ec2.reset_network_interface_attribute(
        NetworkInterfaceId=eni_id, SourceDestCheck="sourceDestCheck"
    )
    assert attribute("sourceDestCheck")["SourceDestCheck"] == {"Value": True}
    assert error_of(
        ec2.modify_network_interface_attribute,
        NetworkInterfaceId=eni_id,
        Description={"Value": "x"},
        SourceDestCheck={"Value": True},
    ) == ("InvalidParameterCombination", 400)
    assert error_of(
        ec2.modify_network_interface_attribute, NetworkInterfaceId=eni_id, Groups=["sg-12345678"]
    )[0] in ("InvalidGroup.NotFound", "InvalidGroupId.NotFound")
    assert error_of(attribute, "nonsense") == ("InvalidParameterValue", 400)
    assert default_group != other


def test_attach_detach_limits_and_termination(cloud: Karri, ec2: Any) -> None:
    subnet = default_subnet(ec2)
    instance = launch(cloud, ec2, InstanceType="m1.small")  # AWS: 2 interfaces, 4 addresses
    instance_id = instance["InstanceId"]
    wait_state(ec2, instance_id, "running")
    primary = instance["NetworkInterfaces"][0]
    eni = ec2.create_network_interface(SubnetId=subnet["SubnetId"])["NetworkInterface"]
    eni_id, address = eni["NetworkInterfaceId"], eni["PrivateIpAddress"]

    attachment = ec2.attach_network_interface(
        NetworkInterfaceId=eni_id, InstanceId=instance_id, DeviceIndex=1
    )["AttachmentId"]
    seen = settled(ec2, eni_id, "attached")  # the node hot-plugged it
    assert seen["Status"] == "in-use"
    assert seen["Attachment"]["InstanceId"] == instance_id
    assert seen["Attachment"]["DeviceIndex"] == 1
    assert seen["Attachment"]["AttachmentId"] == attachment
    assert seen["Attachment"]["DeleteOnTermination"] is False
    assert error_of(ec2.delete_network_interface, NetworkInterfaceId=eni_id) == (
        "InvalidNetworkInterface.InUse",
        400,
    )
    third = ec2.create_network_interface(SubnetId=subnet["SubnetId"])["NetworkInterface"]
    third_id = third["NetworkInterfaceId"]
    assert error_of(
        ec2.attach_network_interface,
        NetworkInterfaceId=third_id,
        InstanceId=instance_id,
        DeviceIndex=2,
    ) == ("AttachmentLimitExceeded", 400)
    assert error_of(
        ec2.attach_network_interface,
        NetworkInterfaceId=third_id,
        InstanceId=instance_id,
        DeviceIndex=1,
    ) == ("InvalidParameterValue", 400)
    assert error_of(
        ec2.attach_network_interface,
        NetworkInterfaceId=eni_id,
        InstanceId=instance_id,
        DeviceIndex=3,
    ) == ("InvalidNetworkInterface.InUse", 400)
    assert error_of(
        ec2.detach_network_interface, AttachmentId=primary["Attachment"]["AttachmentId"]
    ) == ("OperationNotPermitted", 400)
    assert error_of(ec2.detach_network_interface, AttachmentId="eni-attach-12345678") == (
        "InvalidAttachmentID.NotFound",
        400,
    )
    # the type allows 4 addresses per interface: 1 + 3 secondary
    ec2.assign_private_ip_addresses(NetworkInterfaceId=eni_id, SecondaryPrivateIpAddressCount=3)
    assert error_of(
        ec2.assign_private_ip_addresses,
        NetworkInterfaceId=eni_id,
        SecondaryPrivateIpAddressCount=1,
    ) == ("PrivateIpAddressLimitExceeded", 400)

    ec2.detach_network_interface(AttachmentId=attachment)
    seen = settled(ec2, eni_id, "available")
    assert seen["Status"] == "available" and "Attachment" not in seen
    assert seen["PrivateIpAddress"] == address

    # to another instance, with its private address, DeleteOnTermination set after
    other = launch(cloud, ec2, InstanceType="m1.small")["InstanceId"]
    attachment = ec2.attach_network_interface(
        NetworkInterfaceId=eni_id, InstanceId=other, DeviceIndex=1
    )["AttachmentId"]
    assert interface(ec2, eni_id)["PrivateIpAddress"] == address
    ec2.modify_network_interface_attribute(
        NetworkInterfaceId=eni_id,
        Attachment={"AttachmentId": attachment, "DeleteOnTermination": True},
    )
    assert interface(ec2, eni_id)["Attachment"]["DeleteOnTermination"] is True
    ec2.attach_network_interface(NetworkInterfaceId=third_id, InstanceId=instance_id, DeviceIndex=1)
    ec2.terminate_instances(InstanceIds=[instance_id, other])
    wait_state(ec2, other, "terminated")
    wait_state(ec2, instance_id, "terminated")

    def gone() -> bool:
        return bool(
            error_of(ec2.describe_network_interfaces, NetworkInterfaceIds=[eni_id])[0]
            == "InvalidNetworkInterfaceID.NotFound"
        )

    wait_for("the interface to go with its instance", gone, 30)
    kept = interface(ec2, third_id)  # DeleteOnTermination false: detached, kept
    assert kept["Status"] == "available" and "Attachment" not in kept


def test_secondary_addresses_and_elastic_ips(cloud: Karri, ec2: Any) -> None:
    subnet = default_subnet(ec2)
    eni = ec2.create_network_interface(SubnetId=subnet["SubnetId"])["NetworkInterface"]
    eni_id = eni["NetworkInterfaceId"]
    other = ec2.create_network_interface(SubnetId=subnet["SubnetId"])["NetworkInterface"]
    other_id = other["NetworkInterfaceId"]
    assigned = ec2.assign_private_ip_addresses(
        NetworkInterfaceId=eni_id, SecondaryPrivateIpAddressCount=2
    )["AssignedPrivateIpAddresses"]
    first, second = (a["PrivateIpAddress"] for a in assigned)
    listed = [a["PrivateIpAddress"] for a in interface(ec2, eni_id)["PrivateIpAddresses"]]
    assert listed == [eni["PrivateIpAddress"], first, second]
    assert error_of(
        ec2.assign_private_ip_addresses, NetworkInterfaceId=other_id, PrivateIpAddresses=[first]
    ) == ("InvalidIPAddress.InUse", 400)
    assert error_of(
        ec2.assign_private_ip_addresses,
        NetworkInterfaceId=other_id,
        PrivateIpAddresses=[eni["PrivateIpAddress"]],
        AllowReassignment=True,
    ) == ("InvalidIPAddress.InUse", 400)
    assert error_of(
        ec2.assign_private_ip_addresses,
        NetworkInterfaceId=other_id,
        PrivateIpAddresses=["10.99.0.5"],
    ) == ("InvalidParameterValue", 400)

    # an elastic IP on a secondary address
    allocation = ec2.allocate_address(Domain="vpc")
    association = ec2.associate_address(
        AllocationId=allocation["AllocationId"], NetworkInterfaceId=eni_id, PrivateIpAddress=first
    )["AssociationId"]
    addresses = interface(ec2, eni_id)["PrivateIpAddresses"]
    on_first = next(a for a in addresses if a["PrivateIpAddress"] == first)
    assert on_first["Association"]["PublicIp"] == allocation["PublicIp"]
    assert on_first["Association"]["AssociationId"] == association
    assert "Association" not in addresses[0]
    described = ec2.describe_addresses(AllocationIds=[allocation["AllocationId"]])["Addresses"][0]
    assert described["PrivateIpAddress"] == first
    assert described["NetworkInterfaceId"] == eni_id
    assert error_of(
        ec2.associate_address,
        AllocationId=allocation["AllocationId"],
        NetworkInterfaceId=eni_id,
        PrivateIpAddress="172.31.250.250",
        AllowReassociation=True,
    ) == ("InvalidParameterValue", 400)

    # moving an address takes it from the other interface, its elastic IP let go
    ec2.assign_private_ip_addresses(
        NetworkInterfaceId=other_id, PrivateIpAddresses=[first], AllowReassignment=True
    )
    assert first not in [
        a["PrivateIpAddress"] for a in interface(ec2, eni_id)["PrivateIpAddresses"]
    ]
    assert (
        "AssociationId"
        not in ec2.describe_addresses(AllocationIds=[allocation["AllocationId"]])["Addresses"][0]
    )

    ec2.unassign_private_ip_addresses(NetworkInterfaceId=eni_id, PrivateIpAddresses=[second])
    assert len(interface(ec2, eni_id)["PrivateIpAddresses"]) == 1
    assert error_of(
        ec2.unassign_private_ip_addresses,
        NetworkInterfaceId=eni_id,
        PrivateIpAddresses=[eni["PrivateIpAddress"]],
    ) == ("InvalidParameterValue", 400)
    # an address freed is free again
    ec2.assign_private_ip_addresses(NetworkInterfaceId=eni_id, PrivateIpAddresses=[second])


def test_run_instances_with_several_interfaces(cloud: Karri, ec2: Any) -> None:
    subnet = default_subnet(ec2)
    existing = ec2.create_network_interface(SubnetId=subnet["SubnetId"])["NetworkInterface"]
    instance = launch(
        cloud,
        ec2,
        InstanceType="m1.large",  # AWS: 3 interfaces
        NetworkInterfaces=[
            {
                "DeviceIndex": 0,
                "SubnetId": subnet["SubnetId"],
                "SecondaryPrivateIpAddressCount": 1,
                "Description": "first",
            },
            {"DeviceIndex": 1, "SubnetId": subnet["SubnetId"], "Description": "new"},
            {"DeviceIndex": 2, "NetworkInterfaceId": existing["NetworkInterfaceId"]},
        ],
    )
    instance_id = instance["InstanceId"]
    assert [n["Attachment"]["DeviceIndex"] for n in instance["NetworkInterfaces"]] == [0, 1, 2]
    found = ec2.describe_network_interfaces(
        Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}]
    )["NetworkInterfaces"]
    by_index = {n["Attachment"]["DeviceIndex"]: n for n in found}
    assert sorted(by_index) == [0, 1, 2]
    assert by_index[0]["Description"] == "first"
    assert len(by_index[0]["PrivateIpAddresses"]) == 2
    assert by_index[1]["Description"] == "new"
    assert by_index[1]["Attachment"]["DeleteOnTermination"] is True
    assert by_index[2]["NetworkInterfaceId"] == existing["NetworkInterfaceId"]
    assert by_index[2]["Attachment"]["DeleteOnTermination"] is False
    described = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]
    shown = described["Instances"][0]["NetworkInterfaces"]
    assert [n["Attachment"]["DeviceIndex"] for n in shown] == [0, 1, 2]
    assert [n["NetworkInterfaceId"] for n in shown] == [
        by_index[i]["NetworkInterfaceId"] for i in range(3)
    ]
    assert [a["Primary"] for a in shown[0]["PrivateIpAddresses"]] == [True, False]

    image_id = tiny_image(cloud, ec2)
    too_many = [{"DeviceIndex": i, "SubnetId": subnet["SubnetId"]} for i in range(3)]
    assert error_of(
        ec2.run_instances,
        ImageId=image_id,
        MinCount=1,
        MaxCount=1,
        InstanceType="m1.small",
        NetworkInterfaces=too_many,
    ) == ("AttachmentLimitExceeded", 400)
    assert error_of(
        ec2.run_instances,
        ImageId=image_id,
        MinCount=1,
        MaxCount=2,
        InstanceType="m1.large",
        NetworkInterfaces=too_many,
    ) == ("InvalidParameterCombination", 400)
    no_primary = [{"DeviceIndex": 1, "SubnetId": subnet["SubnetId"]}]
    assert error_of(
        ec2.run_instances,
        ImageId=image_id,
        MinCount=1,
        MaxCount=1,
        NetworkInterfaces=no_primary,
    ) == ("InvalidParameterValue", 400)
    in_use = [
        {"DeviceIndex": 0, "SubnetId": subnet["SubnetId"]},
        {"DeviceIndex": 1, "NetworkInterfaceId": existing["NetworkInterfaceId"]},
    ]
    assert error_of(
        ec2.run_instances,
        ImageId=image_id,
        MinCount=1,
        MaxCount=1,
        InstanceType="m1.large",
        NetworkInterfaces=in_use,
    ) == ("InvalidNetworkInterface.InUse", 400)
    ec2.terminate_instances(InstanceIds=[instance_id])


def test_isolation(cloud: Karri, ec2: Any) -> None:
    eni = ec2.create_network_interface(SubnetId=default_subnet(ec2)["SubnetId"])
    eni_id = eni["NetworkInterface"]["NetworkInterfaceId"]
    stranger = cloud.client("ec2", cloud.create_account(unique("stranger").lower()))
    not_found = ("InvalidNetworkInterfaceID.NotFound", 400)
    assert error_of(stranger.describe_network_interfaces, NetworkInterfaceIds=[eni_id]) == (
        not_found
    )
    assert error_of(stranger.delete_network_interface, NetworkInterfaceId=eni_id) == not_found
    assert (
        error_of(
            stranger.modify_network_interface_attribute,
            NetworkInterfaceId=eni_id,
            Description={"Value": "mine"},
        )
        == not_found
    )
    assert (
        error_of(
            stranger.assign_private_ip_addresses,
            NetworkInterfaceId=eni_id,
            SecondaryPrivateIpAddressCount=1,
        )
        == not_found
    )
    theirs = launch(cloud, stranger)["InstanceId"]
    assert (
        error_of(
            stranger.attach_network_interface,
            NetworkInterfaceId=eni_id,
            InstanceId=theirs,
            DeviceIndex=1,
        )
        == not_found
    )
    mine = launch(cloud, ec2)["InstanceId"]
    assert error_of(
        ec2.attach_network_interface,
        NetworkInterfaceId=eni_id,
        InstanceId=theirs,
        DeviceIndex=1,
    ) == ("InvalidInstanceID.NotFound", 400)
    stranger.terminate_instances(InstanceIds=[theirs])
    ec2.terminate_instances(InstanceIds=[mine])


def test_run_instances_with_an_existing_primary_interface(cloud: Karri, ec2: Any) -> None:
    subnet = default_subnet(ec2)
    group = ec2.create_security_group(GroupName="kept", Description="kept", VpcId=subnet["VpcId"])[
        "GroupId"
    ]
    eni = ec2.create_network_interface(SubnetId=subnet["SubnetId"], Groups=[group])
    eni_id = eni["NetworkInterface"]["NetworkInterfaceId"]
    address, mac = (
        eni["NetworkInterface"]["PrivateIpAddress"],
        eni["NetworkInterface"]["MacAddress"],
    )
    spec = [{"DeviceIndex": 0, "NetworkInterfaceId": eni_id}]
    image_id = tiny_image(cloud, ec2)
    assert error_of(
        ec2.run_instances, ImageId=image_id, MinCount=1, MaxCount=2, NetworkInterfaces=spec
    ) == ("InvalidParameterCombination", 400)
    instance = launch(cloud, ec2, NetworkInterfaces=spec)
    assert instance["PrivateIpAddress"] == address
    assert instance["SubnetId"] == subnet["SubnetId"]
    assert [g["GroupId"] for g in instance["SecurityGroups"]] == [group]
    seen = interface(ec2, eni_id)
    assert seen["Attachment"]["DeviceIndex"] == 0 and seen["MacAddress"] == mac
    assert seen["Attachment"]["DeleteOnTermination"] is False
    assert error_of(
        ec2.detach_network_interface, AttachmentId=seen["Attachment"]["AttachmentId"]
    ) == ("OperationNotPermitted", 400)
    assert error_of(
        ec2.run_instances, ImageId=image_id, MinCount=1, MaxCount=1, NetworkInterfaces=spec
    ) == ("InvalidNetworkInterface.InUse", 400)
    ec2.terminate_instances(InstanceIds=[instance["InstanceId"]])
    kept = settled(ec2, eni_id, "available")  # it outlives the instance, with its groups
    assert kept["PrivateIpAddress"] == address
    assert kept["Groups"] == [{"GroupId": group, "GroupName": "kept"}]
