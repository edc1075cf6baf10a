"""Cloud request values from a parsed EC2 request: a field comes from its CamelCase member."""

from __future__ import annotations

from karri.api.ec2.members import member_name, request_of
from karri.cloud.images.requests import DiskContainer
from karri.cloud.volumes.requests import CreateVolumeRequest


def test_member_names() -> None:
    assert member_name("kms_key_id") == "KmsKeyId"
    assert member_name("s3_bucket") == "S3Bucket"
    assert member_name("size") == "Size"


def test_fields_come_from_their_members_or_keep_their_defaults() -> None:
    request = request_of(
        CreateVolumeRequest,
        {"AvailabilityZone": "z", "Size": 3, "Encrypted": True, "Unrelated": 1},
        tags={"k": "v"},
    )
    assert request == CreateVolumeRequest(
        availability_zone="z", size=3, encrypted=True, tags={"k": "v"}
    )
    assert request_of(DiskContainer, {"S3Bucket": "b", "S3Key": "k"}) == DiskContainer(
        s3_bucket="b", s3_key="k"
    )
