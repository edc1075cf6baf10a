"""Volume types and ModifyVolume against a real `karri up`: every error AWS gives, a volume
modified while available (its file grown, DescribeVolumes and DescribeVolumesModifications
following the modification to ``completed``), and the filters and pages of the listing.
A volume grown in a running guest: test_ebs_modify_guest.py."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Karri
from tests.integration.ebs import (
    GIB,
    ZONE,
    error_code,
    gone,
    new_volume,
    volume,
    volume_file,
    wait_until,
)
from tests.integration.guests import tiny_image


def modification(ec2: Any, volume_id: str) -> dict[str, Any]:
    return ec2.describe_volumes_modifications(VolumeIds=[volume_id])["VolumesModifications"][0]


def wait_modified(ec2: Any, volume_id: str, timeout: float = 60) -> dict[str, Any]:
    return wait_until(
        lambda: (m := modification(ec2, volume_id))["ModificationState"] == "completed" and m,
        timeout,
    )


def error_of(call, **kwargs) -> tuple[str, str]:
    try:
        call(**kwargs)
    except Exception as error:  # botocore's ClientError
        return error.response["Error"]["Code"], error.response["Error"]["Message"]  # type: ignore[attr-defined]
    raise AssertionError("no error")


VALUE, COMBINATION = "InvalidParameterValue", "InvalidParameterCombination"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ({"Size": 1, "VolumeType": "gp4"}, VALUE, "Value (gp4)"),
        ({"Size": 10, "VolumeType": "gp2", "Iops": 300}, COMBINATION, "iops"),
        (
            {"Size": 10, "VolumeType": "io1", "Iops": 300, "Throughput": 200},
            COMBINATION,
            "throughput",
        ),
        ({"Size": 10, "VolumeType": "io2"}, "MissingParameter", "iops"),
        ({"Size": 3, "VolumeType": "io1", "Iops": 100}, VALUE, "minimum is 4GiB"),
        ({"Size": 100, "VolumeType": "st1"}, VALUE, "minimum is 125GiB"),
        ({"Size": 1025, "VolumeType": "standard"}, VALUE, "maximum is 1024GiB"),
        ({"Size": 10, "VolumeType": "io1", "Iops": 600}, VALUE, "ratio of 60.000000"),
        ({"Size": 10, "VolumeType": "io2", "Iops": 99}, VALUE, "too low; minimum is 100"),
        ({"Size": 10, "VolumeType": "gp3", "Iops": 2000}, VALUE, "minimum is 3000"),
        ({"Size": 10, "VolumeType": "gp3", "Iops": 6000}, VALUE, "maximum is 500"),
        ({"Size": 10, "VolumeType": "gp3", "Throughput": 100}, VALUE, "minimum is 125"),
        ({"Size": 10, "VolumeType": "gp3", "Throughput": 751}, VALUE, "MiBps per iops"),
    ],
)  # fmt: skip
def test_create_volume_rules(ec2, args: dict, code: str, message: str) -> None:
    got = error_of(ec2.create_volume, AvailabilityZone=ZONE, **args)
    assert got[0] == code and message in got[1], got


def test_create_volume_types_and_defaults(ec2) -> None:
    for args, iops, throughput in (
        ({"Size": 1, "VolumeType": "gp2"}, 100, None),
        ({"Size": 200, "VolumeType": "gp2"}, 600, None),
        ({"Size": 1, "VolumeType": "gp3"}, 3000, 125),
        ({"Size": 20, "VolumeType": "gp3", "Iops": 10000, "Throughput": 500}, 10000, 500),
        ({"Size": 4, "VolumeType": "io1", "Iops": 200}, 200, None),
        ({"Size": 4, "VolumeType": "io2", "Iops": 2000}, 2000, None),
        ({"Size": 125, "VolumeType": "st1"}, None, None),
        ({"Size": 125, "VolumeType": "sc1"}, None, None),
        ({"Size": 1, "VolumeType": "standard"}, None, None),
    ):
        created = ec2.create_volume(AvailabilityZone=ZONE, **args)
        try:
            assert created["VolumeType"] == args["VolumeType"]
            assert (created.get("Iops"), created.get("Throughput")) == (iops, throughput)
        finally:
            ec2.delete_volume(VolumeId=created["VolumeId"])


def test_block_device_mappings_follow_the_rules(karri: Karri, ec2) -> None:
    image_id = tiny_image(karri, ec2)
    for ebs, code in (
        ({"VolumeSize": 10, "VolumeType": "st1"}, "InvalidParameterValue"),
        ({"VolumeSize": 10, "VolumeType": "gp3", "Throughput": 2000}, "InvalidParameterValue"),
        ({"VolumeSize": 10, "VolumeType": "sc1", "Iops": 100}, "InvalidParameterCombination"),
    ):
        got = error_of(
            ec2.run_instances,
            ImageId=image_id,
            MinCount=1,
            MaxCount=1,
            BlockDeviceMappings=[{"DeviceName": "/dev/sdf", "Ebs": ebs}],
        )
        assert got[0] == code, (ebs, got)


def test_modify_errors(karri: Karri, ec2, other_account) -> None:
    volume_id = new_volume(ec2, size=4)
    try:
        cases = [
            ({}, "InvalidParameterValue", "Must specify at least one"),
            ({"Size": 3}, "InvalidParameterValue", "New size cannot be smaller than existing size"),
            ({"VolumeType": "gp9"}, "InvalidParameterValue", "Value (gp9)"),
            ({"Iops": 500}, "InvalidParameterCombination", "iops is not supported for gp2"),
            ({"Throughput": 500}, "InvalidParameterCombination", "throughput"),
            ({"VolumeType": "io1", "Iops": 1000}, "InvalidParameterValue", "ratio"),
            ({"VolumeType": "st1"}, "InvalidParameterValue", "minimum is 125GiB"),
            ({"Size": 20000}, "InvalidParameterValue", "too large"),
            ({"MultiAttachEnabled": True}, "UnsupportedOperation", "Multi-Attach"),
        ]
        for args, code, message in cases:
            got = error_of(ec2.modify_volume, VolumeId=volume_id, **args)
            assert got[0] == code and message in got[1], (args, got)
        assert error_code(ec2.modify_volume, VolumeId="vol-0123456789abcdef0", Size=5) == (
            "InvalidVolume.NotFound"
        )
        assert error_code(ec2.modify_volume, VolumeId="vol-nonsense!", Size=5) == (
            "InvalidVolumeID.Malformed"
        )
        theirs = karri.client("ec2", other_account)
        assert error_code(theirs.modify_volume, VolumeId=volume_id, Size=5) == (
            "InvalidVolume.NotFound"
        )
        assert error_code(theirs.describe_volumes_modifications, VolumeIds=[volume_id]) == (
            "InvalidVolume.NotFound"
        )
        # nothing was recorded by any of them
        assert error_code(ec2.describe_volumes_modifications, VolumeIds=[volume_id]) == (
            "InvalidVolumeModification.NotFound"
        )
        ec2.modify_volume(VolumeId=volume_id, Size=5)
        got = error_of(ec2.modify_volume, VolumeId=volume_id, Size=6)
        assert got[0] == "IncorrectModificationState" and volume_id in got[1], got
        wait_modified(ec2, volume_id)
    finally:
        ec2.delete_volume(VolumeId=volume_id)


def test_modify_an_available_volume(karri: Karri, ec2) -> None:
    volume_id = new_volume(ec2, size=2)
    try:
        answer = ec2.modify_volume(VolumeId=volume_id, Size=8, VolumeType="gp3", Iops=4000)
        started = answer["VolumeModification"]
        assert started["ModificationState"] == "modifying" and started["Progress"] == 0
        assert (started["OriginalSize"], started["TargetSize"]) == (2, 8)
        assert (started["OriginalVolumeType"], started["TargetVolumeType"]) == ("gp2", "gp3")
        assert (started["OriginalIops"], started["TargetIops"]) == (100, 4000)
        assert "OriginalThroughput" not in started and started["TargetThroughput"] == 125
        assert "EndTime" not in started

        seen = {modification(ec2, volume_id)["ModificationState"]}
        done = wait_until(
            lambda: (
                (m := modification(ec2, volume_id), seen.add(m["ModificationState"]))[0][
                    "ModificationState"
                ]
                == "completed"
                and modification(ec2, volume_id)
            ),
            60,
            0.1,
        )
        assert "optimizing" in seen
        assert done["Progress"] == 100 and done["EndTime"] >= done["StartTime"]
        described = volume(ec2, volume_id)
        assert (described["Size"], described["VolumeType"]) == (8, "gp3")
        assert (described["Iops"], described["Throughput"]) == (4000, 125)
        assert volume_file(karri, volume_id).stat().st_size == 8 * GIB

        # the type alone: values carry over; then Throughput alone
        ec2.modify_volume(VolumeId=volume_id, Throughput=250)
        wait_modified(ec2, volume_id)
        assert volume(ec2, volume_id)["Throughput"] == 250
        ec2.modify_volume(VolumeId=volume_id, VolumeType="gp2")
        wait_modified(ec2, volume_id)
        described = volume(ec2, volume_id)
        assert (described["VolumeType"], described["Iops"]) == ("gp2", 100)  # 3 IOPS/GiB
        assert "Throughput" not in described
        ec2.modify_volume(VolumeId=volume_id, Size=9)
        wait_modified(ec2, volume_id)
        # the fifth within a day is refused, as on AWS
        got = error_of(ec2.modify_volume, VolumeId=volume_id, Size=10)
        assert got[0] == "VolumeModificationRateExceeded", got
    finally:
        ec2.delete_volume(VolumeId=volume_id)
    # a modified volume goes with its modifications
    wait_until(lambda: gone(ec2, "describe_volumes", VolumeIds=[volume_id]))
    assert not volume_file(karri, volume_id).exists()
    assert error_code(ec2.describe_volumes_modifications, VolumeIds=[volume_id]) == (
        "InvalidVolume.NotFound"
    )


def test_describe_modifications_filters_and_pages(karri: Karri) -> None:
    ec2 = karri.client("ec2", karri.create_account("ebs-modify-pages"))
    ids = [new_volume(ec2, size=1) for _ in range(3)]
    untouched = new_volume(ec2, size=1)
    for i, volume_id in enumerate(ids):
        ec2.modify_volume(VolumeId=volume_id, Size=2 + i)
    for volume_id in ids:
        wait_modified(ec2, volume_id)
    listed = ec2.describe_volumes_modifications()["VolumesModifications"]
    assert sorted(m["VolumeId"] for m in listed) == sorted(ids)
    assert untouched not in {m["VolumeId"] for m in listed}

    def matching(name: str, *values: str) -> list[str]:
        found = ec2.describe_volumes_modifications(Filters=[{"Name": name, "Values": list(values)}])
        return sorted(m["VolumeId"] for m in found["VolumesModifications"])

    assert matching("volume-id", ids[1]) == [ids[1]]
    assert matching("target-size", "3", "4") == sorted(ids[1:])
    assert matching("original-size", "1") == sorted(ids)
    assert matching("modification-state", "completed") == sorted(ids)
    assert matching("modification-state", "modifying") == []
    assert matching("target-volume-type", "gp2") == sorted(ids)
    assert (
        error_code(
            ec2.describe_volumes_modifications, Filters=[{"Name": "colour", "Values": ["x"]}]
        )
        == "InvalidParameterValue"
    )

    first = ec2.describe_volumes_modifications(MaxResults=2)
    assert len(first["VolumesModifications"]) == 2 and first["NextToken"]
    rest = ec2.describe_volumes_modifications(MaxResults=2, NextToken=first["NextToken"])
    assert "NextToken" not in rest or not rest["NextToken"]
    paged = first["VolumesModifications"] + rest["VolumesModifications"]
    assert sorted(m["VolumeId"] for m in paged) == sorted(ids)
    assert error_code(ec2.describe_volumes_modifications, MaxResults=501) == (
        "InvalidParameterValue"
    )
