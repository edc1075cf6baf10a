"""Block device mappings as values: what RegisterImage records, what RunInstances asks for,
and what a launch turns into volumes.

The API layer builds them from a request once; ``mapping_checks.normalize`` checks them
and fills in their defaults. An image keeps its mappings in a JSON column, in the record
shape below (botocore's member names: the shape every existing cloud has stored), which
only ``to_record`` and ``from_record`` know.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class EbsDevice:
    """A mapping's EBS volume. As asked for, any field may be missing (None); normalized,
    ``volume_size``, ``volume_type``, ``delete_on_termination`` and ``encrypted`` are set."""

    snapshot_id: str | None = None
    volume_size: int | None = None
    volume_type: str | None = None
    delete_on_termination: bool | None = None
    iops: int | None = None
    throughput: int | None = None
    encrypted: bool | None = None
    kms_key_id: str | None = None  # as asked for; an account has one key (``keys.py``)

    def over(self, base: EbsDevice) -> EbsDevice:
        """This device's fields where given, ``base``'s elsewhere (a launch's override).
        Another volume type does not inherit the base's Iops and Throughput."""
        given = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.volume_type not in (None, base.volume_type):
            base = replace(base, iops=None, throughput=None)
        return replace(base, **{k: v for k, v in given.items() if v is not None})


@dataclass(frozen=True)
class BlockDeviceMapping:
    """One device: an EBS volume, an instance-store volume (``virtual_name``: ephemeralN,
    swap), or, in a launch's overrides, ``no_device`` (the image's device removed).
    ``device_name`` is empty only in a request that left it out."""

    device_name: str
    ebs: EbsDevice | None = None
    virtual_name: str | None = None
    no_device: bool = False


def root_from_snapshot(device: str, snapshot_id: str) -> BlockDeviceMapping:
    """An EBS-backed image's root device: a volume made from the snapshot, deleted with
    its instance (ImportImage, the default EBS image)."""
    return BlockDeviceMapping(
        device, ebs=EbsDevice(snapshot_id=snapshot_id, delete_on_termination=True)
    )


def snapshot_ids(mappings: Iterable[BlockDeviceMapping]) -> set[str]:
    """The snapshots mappings make volumes from (what keeps them from being deleted)."""
    return {m.ebs.snapshot_id for m in mappings if m.ebs and m.ebs.snapshot_id}


def ebs_mappings(mappings: Iterable[BlockDeviceMapping]) -> list[BlockDeviceMapping]:
    return [m for m in mappings if m.ebs is not None]


# -- the stored record ------------------------------------------------------------------

_EBS_KEYS = {
    "snapshot_id": "SnapshotId",
    "volume_size": "VolumeSize",
    "volume_type": "VolumeType",
    "delete_on_termination": "DeleteOnTermination",
    "iops": "Iops",
    "throughput": "Throughput",
    "encrypted": "Encrypted",
    "kms_key_id": "KmsKeyId",
}


def to_record(mapping: BlockDeviceMapping) -> dict[str, Any]:
    record: dict[str, Any] = {"DeviceName": mapping.device_name}
    if mapping.virtual_name is not None:
        record["VirtualName"] = mapping.virtual_name
    if mapping.ebs is not None:
        values = ((key, getattr(mapping.ebs, name)) for name, key in _EBS_KEYS.items())
        record["Ebs"] = {key: value for key, value in values if value is not None}
    return record


def from_record(record: Mapping[str, Any]) -> BlockDeviceMapping:
    ebs = record.get("Ebs")
    return BlockDeviceMapping(
        device_name=record["DeviceName"],
        ebs=None if ebs is None else EbsDevice(**{n: ebs.get(k) for n, k in _EBS_KEYS.items()}),
        virtual_name=record.get("VirtualName"),
    )


def to_records(mappings: Iterable[BlockDeviceMapping]) -> list[dict[str, Any]]:
    return [to_record(m) for m in mappings]


def from_records(records: Sequence[Mapping[str, Any]] | None) -> tuple[BlockDeviceMapping, ...]:
    return tuple(from_record(r) for r in records or ())
