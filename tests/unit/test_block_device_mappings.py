"""Block device mappings: parsed once from a request, checked and filled in by the cloud,
kept as records, and answered in botocore's shape."""

from __future__ import annotations

import pytest

from karri.api.ec2.devices import mappings_info, requested_mappings
from karri.cloud.volumes.mapping_checks import normalize
from karri.cloud.volumes.mappings import (
    BlockDeviceMapping,
    EbsDevice,
    from_records,
    root_from_snapshot,
    snapshot_ids,
    to_records,
)
from karri.cloud.volumes.models import Snapshot
from karri.errors import CloudError

ROOT = "/dev/sda1"


def snapshot_of(snapshot_id: str) -> Snapshot:
    return Snapshot(id=snapshot_id, account_id="123456789012", volume_id="vol-1", volume_size=2)


def test_a_request_becomes_values() -> None:
    parsed = requested_mappings(
        [
            {"DeviceName": ROOT, "Ebs": {"SnapshotId": "snap-1", "DeleteOnTermination": False}},
            {"DeviceName": "/dev/sdb", "VirtualName": "ephemeral0"},
            {"DeviceName": "/dev/sdc", "NoDevice": ""},
            {"Ebs": {"VolumeSize": 1}},
        ]
    )
    assert parsed == (
        BlockDeviceMapping(ROOT, ebs=EbsDevice(snapshot_id="snap-1", delete_on_termination=False)),
        BlockDeviceMapping("/dev/sdb", virtual_name="ephemeral0"),
        BlockDeviceMapping("/dev/sdc", no_device=True),
        BlockDeviceMapping("", ebs=EbsDevice(volume_size=1)),
    )


def test_normalized_mappings_fill_in_their_defaults() -> None:
    mappings = normalize([root_from_snapshot(ROOT, "snap-1")], ROOT, snapshot_of, require_root=True)
    assert mappings == [
        BlockDeviceMapping(
            ROOT,
            ebs=EbsDevice(
                snapshot_id="snap-1",
                volume_size=2,
                volume_type="gp2",
                delete_on_termination=True,
                encrypted=False,
            ),
        )
    ]
    assert snapshot_ids(mappings) == {"snap-1"}


def test_a_launch_overrides_the_image_device_by_device() -> None:
    image = normalize(
        [
            root_from_snapshot(ROOT, "snap-1"),
            BlockDeviceMapping("/dev/sdb", ebs=EbsDevice(volume_size=1)),
        ],
        ROOT,
        snapshot_of,
        require_root=True,
    )
    overrides = requested_mappings(
        [
            {"DeviceName": ROOT, "Ebs": {"VolumeSize": 5}},
            {"DeviceName": "/dev/sdb", "NoDevice": ""},
        ]
    )
    applied = normalize(overrides, ROOT, snapshot_of, require_root=True, base=image)
    assert [m.device_name for m in applied] == [ROOT]
    root = applied[0].ebs
    assert root is not None
    assert (root.snapshot_id, root.volume_size, root.delete_on_termination) == ("snap-1", 5, True)


@pytest.mark.parametrize(
    ("entries", "code"),
    [
        ([{"Ebs": {"VolumeSize": 1}}], "MissingParameter"),
        ([{"DeviceName": "/dev/sdb", "Ebs": {"VolumeSize": 1}}] * 2, "InvalidBlockDeviceMapping"),
        ([{"DeviceName": ROOT, "Ebs": {"VolumeSize": 1}}], "InvalidParameterValue"),  # no snapshot
        (
            [{"DeviceName": ROOT, "Ebs": {"SnapshotId": "snap-1", "VolumeSize": 1}}],
            "InvalidParameterValue",
        ),
        (
            [{"DeviceName": ROOT, "Ebs": {"SnapshotId": "snap-1", "VolumeType": "io1"}}],
            "MissingParameter",
        ),
    ],
)
def test_refusals(entries: list, code: str) -> None:
    with pytest.raises(CloudError) as raised:
        normalize(requested_mappings(entries), ROOT, snapshot_of, require_root=True)
    assert raised.value.code == code


def test_records_keep_botocore_member_names_and_come_back_the_same() -> None:
    mappings = normalize(
        [root_from_snapshot(ROOT, "snap-1"), BlockDeviceMapping("/dev/sdb", virtual_name="swap")],
        ROOT,
        snapshot_of,
        require_root=True,
    )
    records = to_records(mappings)
    assert records[0] == {
        "DeviceName": ROOT,
        "Ebs": {
            "SnapshotId": "snap-1",
            "VolumeSize": 2,
            "VolumeType": "gp2",
            "DeleteOnTermination": True,
            "Encrypted": False,
        },
    }
    assert from_records(records) == tuple(mappings)
    assert mappings_info(mappings) == records  # the answer has the shape of the record
