"""Encrypted volumes through boto3: CreateVolume's Encrypted and KmsKeyId with AWS's
errors, the account's key reported as its ARN, the volume's file an encrypted qcow2 file
(unwritten blocks read as zeros; read here with qemu-io and the account's key), encryption
carried to snapshots, copies and restored volumes, an encrypted copy of an unencrypted
snapshot, encryption by default, and what is refused: sharing such a snapshot (as AWS
refuses it for its managed key)."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from karri.cloud.volumes.keys import MASTER_KEY, EbsKeys, MasterKey
from karri.config import saved_db_url, sqlite_url
from karri.db import models as _accounts  # noqa: F401  (the table the keys' rows name)
from karri.db.engine import Database
from tests.conftest import Karri, start_karri, stop_karri
from tests.integration.ebs import (
    ZONE,
    error_code,
    new_volume,
    volume,
    volume_file,
    wait_snapshot,
    wait_until,
    write_pattern,
)
from tests.integration.ec2_wire import unique
from tests.integration.guests import tiny_image, wait_state
from tests.qemu_keys import opened, run_keyed

KEY_ARN = re.compile(r"^arn:aws:kms:[a-z0-9-]+:\d{12}:key/[0-9a-f-]{36}$")
QCOW2 = b"QFI\xfb"


def encrypted_file(karri: Karri, volume_id: str) -> Path:
    """The volume's file: a qcow2 file with LUKS encryption."""
    path = karri.data_dir / "volumes" / f"{volume_id}.qcow2"
    assert path.read_bytes()[:4] == QCOW2
    return path


def passphrase(karri: Karri, account_id: str) -> bytes:
    """The account's key, read as the cloud reads it (from its database and master key)."""
    keys = EbsKeys(
        Database(saved_db_url(karri.data_dir) or sqlite_url(karri.data_dir), run_migrations=False),
        MasterKey(karri.data_dir / MASTER_KEY),
        karri.region,
    )
    return keys.passphrase(account_id)


def decrypted(path: Path, key: bytes, *commands: str) -> str:
    """``qemu-io -c command …`` on the volume as its guest sees it (fails if a command
    did: ``read -P`` unless every byte matches)."""
    chained = [arg for command in commands for arg in ("-c", command)]
    return run_keyed(["qemu-io", "--image-opts", opened(path), *chained], key)


def reads_zeros(path: Path, key: bytes, size_gib: int) -> None:
    """The whole volume reads as zeros (qemu-io reads less than 2 GiB at once)."""
    decrypted(path, key, *(f"read -P 0 {gib}G 1G" for gib in range(size_gib)))


@pytest.fixture(scope="module")
def karri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Karri]:
    """Its own cloud (it reads volume files), on the fake node driver: no guest needed."""
    cloud = start_karri(tmp_path_factory.mktemp("ebs-enc") / "data", "--node-driver", "fake")
    try:
        yield cloud
    finally:
        stop_karri(cloud)


def test_encrypted_volumes_snapshots_and_copies(karri: Karri) -> None:
    account = karri.create_account(unique("enc"))
    ec2 = karri.client("ec2", account)
    volume_id = new_volume(ec2, Encrypted=True)
    described = volume(ec2, volume_id)
    assert described["Encrypted"] is True and KEY_ARN.match(described["KmsKeyId"])
    key_arn = described["KmsKeyId"]
    assert account.account_id in key_arn
    files = karri.data_dir / "volumes"
    assert not (files / f"{volume_id}.raw").exists()
    key = passphrase(karri, account.account_id)
    reads_zeros(encrypted_file(karri, volume_id), key, 1)  # a new volume: zeros, as on AWS
    by_filter = ec2.describe_volumes(Filters=[{"Name": "encrypted", "Values": ["true"]}])
    assert [v["VolumeId"] for v in by_filter["Volumes"]] == [volume_id]
    for name in (key_arn, key_arn.rsplit("/", 1)[1], "alias/aws/ebs"):  # the same key
        named = new_volume(ec2, Encrypted=True, KmsKeyId=name)
        assert volume(ec2, named)["KmsKeyId"] == key_arn
        ec2.delete_volume(VolumeId=named)

    snapshot_id = ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]
    snapshot = wait_snapshot(ec2, snapshot_id)
    assert snapshot["State"] == "completed", snapshot
    assert (snapshot["Encrypted"], snapshot["KmsKeyId"]) == (True, key_arn)
    copy_id = ec2.copy_snapshot(SourceSnapshotId=snapshot_id, SourceRegion=karri.region)[
        "SnapshotId"
    ]
    assert wait_snapshot(ec2, copy_id)["Encrypted"] is True
    restored = new_volume(ec2, 2, SnapshotId=copy_id)
    assert (volume(ec2, restored)["Encrypted"], volume(ec2, restored)["Size"]) == (True, 2)
    reads_zeros(encrypted_file(karri, restored), key, 2)  # grown, zeros
    ec2.modify_volume(VolumeId=restored, Size=3)  # grown while detached: by its header
    wait_until(lambda: volume(ec2, restored)["Size"] == 3)
    wait_until(
        lambda: "3 GiB" in decrypted(encrypted_file(karri, restored), key, "length"), timeout=60
    )

    other = karri.create_account(unique("enc-other"))
    for permission in ({"UserIds": [other.account_id]}, {"GroupNames": ["all"]}):
        assert (
            error_code(
                ec2.modify_snapshot_attribute,
                SnapshotId=snapshot_id,
                Attribute="createVolumePermission",
                OperationType="add",
                **permission,
            )
            == "InvalidParameter"
        )
    for volume_id_ in (restored, volume_id):
        ec2.delete_volume(VolumeId=volume_id_)
    for snapshot_id_ in (copy_id, snapshot_id):
        ec2.delete_snapshot(SnapshotId=snapshot_id_)


def test_an_unencrypted_snapshot_copied_encrypted(karri: Karri, tmp_path: Path) -> None:
    """CopySnapshot Encrypted: the copy is the plain data in an encrypted file of the account's
    key, and a volume restored from it holds the original's data, encrypted."""
    account = karri.create_account(unique("enc-copy"))
    ec2 = karri.client("ec2", account)
    plain = new_volume(ec2)
    written = [0, 5 << 20, 700 << 20]  # 1 MiB at each
    write_pattern(volume_file(karri, plain), 7, written)
    snapshot_id = ec2.create_snapshot(VolumeId=plain)["SnapshotId"]
    assert wait_snapshot(ec2, snapshot_id)["Encrypted"] is False
    copy = ec2.copy_snapshot
    assert (
        error_code(
            copy,
            SourceSnapshotId=snapshot_id,
            SourceRegion=karri.region,
            Encrypted=True,
            KmsKeyId="alias/not-ours",
        )
        == "InvalidParameterValue"
    )
    copy_id = copy(
        SourceSnapshotId=snapshot_id,
        SourceRegion=karri.region,
        Encrypted=True,
        KmsKeyId="alias/aws/ebs",
    )["SnapshotId"]
    copied = wait_snapshot(ec2, copy_id)
    assert (copied["State"], copied["Encrypted"]) == ("completed", True), copied
    assert KEY_ARN.match(copied["KmsKeyId"]) and account.account_id in copied["KmsKeyId"]
    restored = new_volume(ec2, SnapshotId=copy_id)
    assert volume(ec2, restored)["Encrypted"] is True
    encrypted = encrypted_file(karri, restored)
    files = karri.data_dir / "volumes"
    wait_until(lambda: not [p for p in files.rglob("*") if copy_id in p.name])  # none left
    key = passphrase(karri, account.account_id)
    seen = tmp_path / "decrypted.raw"  # the volume as its guest reads it
    run_keyed(["qemu-img", "convert", "--image-opts", opened(encrypted), str(seen)], key)
    original = volume_file(karri, plain)  # the original's bytes; the rest zeros, as there
    subprocess.run(["cmp", str(seen), str(original)], check=True)
    ciphertext = encrypted.read_bytes()
    with original.open("rb") as f:
        assert not any(os.pread(f.fileno(), 64, offset) in ciphertext for offset in written)
    for volume_id in (restored, plain):
        ec2.delete_volume(VolumeId=volume_id)
    for snapshot_id_ in (copy_id, snapshot_id):
        ec2.delete_snapshot(SnapshotId=snapshot_id_)


def test_encryption_errors_and_the_default(karri: Karri) -> None:
    ec2 = karri.client("ec2", karri.create_account(unique("enc-default")))
    create = ec2.create_volume
    assert error_code(create, Size=1, AvailabilityZone=ZONE, KmsKeyId="alias/aws/ebs") == (
        "InvalidParameterDependency"
    )
    for unknown in ("alias/mine", "1234abcd-12ab-34cd-56ef-1234567890ab", "arn:aws:kms:x:1:key/y"):
        assert error_code(
            create, Size=1, AvailabilityZone=ZONE, Encrypted=True, KmsKeyId=unknown
        ) == ("InvalidParameterValue"), unknown
    plain = new_volume(ec2)
    snapshot_id = ec2.create_snapshot(VolumeId=plain)["SnapshotId"]
    wait_snapshot(ec2, snapshot_id)
    converted = new_volume(ec2, SnapshotId=snapshot_id, Encrypted=True)  # QEMU encrypts it
    assert volume(ec2, converted)["Encrypted"] is True
    encrypted_file(karri, converted)
    ec2.delete_volume(VolumeId=converted)

    assert ec2.get_ebs_encryption_by_default()["EbsEncryptionByDefault"] is False
    assert ec2.enable_ebs_encryption_by_default()["EbsEncryptionByDefault"] is True
    assert ec2.get_ebs_encryption_by_default()["EbsEncryptionByDefault"] is True
    by_default = new_volume(ec2)
    assert volume(ec2, by_default)["Encrypted"] is True
    default_key = ec2.get_ebs_default_kms_key_id()["KmsKeyId"]
    assert default_key.endswith(":alias/aws/ebs")
    assert (
        ec2.modify_ebs_default_kms_key_id(KmsKeyId="alias/aws/ebs")["KmsKeyId"]
        == (volume(ec2, by_default)["KmsKeyId"])
    )
    assert error_code(ec2.modify_ebs_default_kms_key_id, KmsKeyId="alias/mine") == (
        "InvalidParameterValue"
    )
    assert ec2.reset_ebs_default_kms_key_id()["KmsKeyId"] == default_key
    assert ec2.disable_ebs_encryption_by_default()["EbsEncryptionByDefault"] is False
    assert volume(ec2, new_volume(ec2))["Encrypted"] is False


def test_run_instances_mappings_name_the_key(karri: Karri) -> None:
    """RunInstances' BlockDeviceMapping Ebs.KmsKeyId follows CreateVolume's rules: it needs
    Encrypted, names the account's key (id, ARN or alias), and the volume says which."""
    ec2 = karri.client("ec2", karri.create_account(unique("enc-launch")))
    image_id = tiny_image(karri, ec2)

    def launch(**ebs: object) -> dict:
        mapping = {"DeviceName": "/dev/sdh", "Ebs": {"VolumeSize": 1, **ebs}}
        return ec2.run_instances(
            ImageId=image_id, MinCount=1, MaxCount=1, BlockDeviceMappings=[mapping]
        )["Instances"][0]

    assert error_code(launch, KmsKeyId="alias/aws/ebs") == "InvalidParameterDependency"
    assert error_code(launch, Encrypted=True, KmsKeyId="alias/mine") == "InvalidParameterValue"
    assert (
        ec2.describe_instances(Filters=[{"Name": "image-id", "Values": [image_id]}])["Reservations"]
        == []
    )  # refused launches left nothing behind
    instance_id = launch(Encrypted=True, KmsKeyId="alias/aws/ebs")["InstanceId"]
    try:
        (found,) = ec2.describe_volumes(
            Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}]
        )["Volumes"]
        assert found["Encrypted"] is True and KEY_ARN.match(found["KmsKeyId"])
    finally:
        ec2.terminate_instances(InstanceIds=[instance_id])
        wait_state(ec2, instance_id, "terminated", 120)


def test_encrypted_volumes_attach_and_launch(karri: Karri) -> None:
    """Hot-plugged with the key (a real guest reads one: ``test_ebs_guests.py``); a launch
    from an encrypted snapshot, or from an unencrypted one with encryption by default on,
    makes an encrypted volume."""
    ec2 = karri.client("ec2")
    image_id = tiny_image(karri, ec2)
    instance_id = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1)["Instances"][0][
        "InstanceId"
    ]
    volume_id = new_volume(ec2, Encrypted=True)
    snapshot_id = ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]
    wait_snapshot(ec2, snapshot_id)
    plain = new_volume(ec2)
    plain_snapshot = ec2.create_snapshot(VolumeId=plain)["SnapshotId"]
    wait_snapshot(ec2, plain_snapshot)
    launched = converted = None
    try:
        wait_state(ec2, instance_id, "running", 300)
        ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdf")
        wait_until(lambda: volume(ec2, volume_id)["State"] == "in-use")
        mapping = {"DeviceName": "/dev/sdg", "Ebs": {"SnapshotId": snapshot_id}}
        launched = ec2.run_instances(
            ImageId=image_id, MinCount=1, MaxCount=1, BlockDeviceMappings=[mapping]
        )["Instances"][0]["InstanceId"]
        wait_state(ec2, launched, "running", 300)
        found = ec2.describe_volumes(
            Filters=[{"Name": "attachment.instance-id", "Values": [launched]}]
        )["Volumes"]
        assert [v["Encrypted"] for v in found] == [True]
        mapping = {"DeviceName": "/dev/sdg", "Ebs": {"SnapshotId": plain_snapshot}}
        ec2.enable_ebs_encryption_by_default()  # the launch's new volumes are encrypted
        try:
            converted = ec2.run_instances(
                ImageId=image_id, MinCount=1, MaxCount=1, BlockDeviceMappings=[mapping]
            )["Instances"][0]["InstanceId"]
        finally:
            ec2.disable_ebs_encryption_by_default()
        wait_state(ec2, converted, "running", 300)
        found = ec2.describe_volumes(
            Filters=[{"Name": "attachment.instance-id", "Values": [converted]}]
        )["Volumes"]
        assert [v["Encrypted"] for v in found] == [True]
    finally:
        ids = [i for i in (instance_id, launched, converted) if i]
        ec2.terminate_instances(InstanceIds=ids)
        for i in ids:
            wait_state(ec2, i, "terminated", 120)
        ec2.delete_volume(VolumeId=volume_id)
        for volume_id_ in (plain,):
            ec2.delete_volume(VolumeId=volume_id_)
        for snapshot_id_ in (snapshot_id, plain_snapshot):
            ec2.delete_snapshot(SnapshotId=snapshot_id_)
