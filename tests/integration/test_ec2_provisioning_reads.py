"""The reads Terraform and Ansible make after every create (issue 21): they answer, from
what karri has, with AWS's shapes and errors."""

from __future__ import annotations

import pytest

from tests.conftest import Karri
from tests.integration.ec2_wire import error_of


def test_ebs_encryption_defaults(karri: Karri) -> None:
    ec2 = karri.client("ec2")
    assert ec2.get_ebs_encryption_by_default()["EbsEncryptionByDefault"] is False
    key = ec2.get_ebs_default_kms_key_id()["KmsKeyId"]
    assert key == f"arn:aws:kms:{karri.region}:{karri.admin.account_id}:alias/aws/ebs"
    out = karri.aws("ec2", "get-ebs-encryption-by-default")
    assert out["EbsEncryptionByDefault"] is False


def test_spot_requests_and_launch_templates_are_empty_sets(karri: Karri) -> None:
    ec2 = karri.client("ec2")
    assert ec2.describe_spot_instance_requests()["SpotInstanceRequests"] == []
    spot = ec2.describe_spot_instance_requests
    assert spot(Filters=[{"Name": "state", "Values": ["open"]}])["SpotInstanceRequests"] == []
    assert error_of(spot, Filters=[{"Name": "nonsense", "Values": ["x"]}]) == (
        "InvalidParameterValue",
        400,
    )
    assert error_of(spot, SpotInstanceRequestIds=["sir-0123abcd"])[0] == (
        "InvalidSpotInstanceRequestID.NotFound"
    )
    assert error_of(spot, SpotInstanceRequestIds=["bogus"])[0] == (
        "InvalidSpotInstanceRequestID.Malformed"
    )
    templates = ec2.describe_launch_templates
    assert templates()["LaunchTemplates"] == []
    assert error_of(templates, LaunchTemplateNames=["web"])[0] == (
        "InvalidLaunchTemplateName.NotFoundException"
    )
    assert error_of(templates, LaunchTemplateIds=["lt-0123456789abcdef0"])[0] == (
        "InvalidLaunchTemplateId.NotFound"
    )
    assert error_of(templates, MaxResults=201)[0] == "InvalidParameterValue"
    assert error_of(templates, NextToken="garbage")[0] == "InvalidPaginationToken"


def test_volume_modifications(karri: Karri) -> None:
    ec2 = karri.client("ec2")
    assert ec2.describe_volumes_modifications()["VolumesModifications"] == []
    volume = ec2.create_volume(AvailabilityZone="eucalyptus-1a", Size=1)["VolumeId"]
    try:
        modifications = ec2.describe_volumes_modifications
        assert error_of(modifications, VolumeIds=[volume])[0] == (
            "InvalidVolumeModification.NotFound"
        )
        assert error_of(modifications, VolumeIds=["vol-0123abcd"])[0] == "InvalidVolume.NotFound"
        assert error_of(modifications, VolumeIds=["nonsense"])[0] == "InvalidVolumeID.Malformed"
    finally:
        ec2.delete_volume(VolumeId=volume)


@pytest.fixture(scope="module")
def instance_id(karri: Karri) -> str:
    ec2 = karri.client("ec2")
    image = ec2.describe_images(Filters=[{"Name": "name", "Values": ["karri-tiny"]}])["Images"]
    if not image:
        pytest.skip("the default image is not registered in this cloud")
    instance = ec2.run_instances(
        ImageId=image[0]["ImageId"], MinCount=1, MaxCount=1, InstanceType="t1.micro"
    )["Instances"][0]["InstanceId"]
    yield instance
    ec2.terminate_instances(InstanceIds=[instance])


def test_credit_specifications(karri: Karri, instance_id: str) -> None:
    ec2 = karri.client("ec2")
    credits = ec2.describe_instance_credit_specifications
    assert credits()["InstanceCreditSpecifications"] == []  # none runs `unlimited`
    assert credits(InstanceIds=[instance_id])["InstanceCreditSpecifications"] == [
        {"InstanceId": instance_id, "CpuCredits": "standard"}
    ]
    assert error_of(credits, InstanceIds=["i-0123abcd"])[0] == "InvalidInstanceID.NotFound"
    assert error_of(credits, Filters=[{"Name": "state", "Values": ["x"]}])[0] == (
        "InvalidParameterValue"
    )


def test_password_data_of_a_linux_instance_is_empty(karri: Karri, instance_id: str) -> None:
    ec2 = karri.client("ec2")
    data = ec2.get_password_data(InstanceId=instance_id)
    assert data["InstanceId"] == instance_id and data["PasswordData"] == ""
    assert data["Timestamp"]
    assert error_of(ec2.get_password_data, InstanceId="i-0123abcd")[0] == (
        "InvalidInstanceID.NotFound"
    )
    other = karri.client("ec2", karri.create_account("password-intruder"))
    assert error_of(other.get_password_data, InstanceId=instance_id)[0] == (
        "InvalidInstanceID.NotFound"
    )
