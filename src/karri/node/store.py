"""What a node keeps on disk per instance, so that a restarted node can adopt it.

``DATA_DIR/node/instances/i-xxxxxxxx/instance.json`` holds the spec, the QEMU pid and its
start time (a pid alone could be recycled), the tap, the public address and the attached
volumes. It is rewritten atomically on every change.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from karri.node.spec import (
    LOCAL_VPC,
    Accelerator,
    Attachment,
    AttachmentState,
    DiskLimits,
    ExitReason,
    FileTarget,
    ImageRef,
    ImageRoot,
    InstanceExit,
    InstanceSpec,
    KernelBoot,
    NbdTarget,
    NetworkCard,
    NodeEvent,
    RbdTarget,
    VolumeDisk,
    VolumeTarget,
)

RECORD = "instance.json"


@dataclass
class InstanceRecord:
    spec: InstanceSpec
    accelerator: Accelerator
    tap: str
    launched_at: float
    pid: int | None = None
    start_ticks: int | None = None
    public_ip: str | None = None
    volumes: dict[str, Attachment] = field(default_factory=dict)
    exit: InstanceExit | None = None
    events: list[NodeEvent] = field(default_factory=list)
    """Recoveries the node carried out (kept across relaunches of the instance)."""

    def save(self, directory: Path) -> None:
        data = {
            "spec": _spec_json(self.spec),
            "accelerator": self.accelerator,
            "tap": self.tap,
            "launched_at": self.launched_at,
            "pid": self.pid,
            "start_ticks": self.start_ticks,
            "public_ip": self.public_ip,
            "volumes": [_no_secret(_jsonable(asdict(a))) for a in self.volumes.values()],
            "exit": asdict(self.exit) if self.exit else None,
            "events": [asdict(e) for e in self.events],
        }
        tmp = directory / (RECORD + ".tmp")
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(directory / RECORD)

    @classmethod
    def load(cls, directory: Path) -> InstanceRecord:
        data = json.loads((directory / RECORD).read_text())
        volumes = [_attachment(v) for v in data["volumes"]]
        return cls(
            spec=_spec_from(data["spec"]),
            accelerator=data["accelerator"],
            tap=data["tap"],
            launched_at=data["launched_at"],
            pid=data["pid"],
            start_ticks=data["start_ticks"],
            public_ip=data["public_ip"],
            volumes={v.volume_id: v for v in volumes},
            exit=_exit(data["exit"]) if data.get("exit") else None,
            events=[NodeEvent(**e) for e in data.get("events", [])],
        )

    def set_volume_state(self, volume_id: str, state: AttachmentState) -> None:
        self.volumes[volume_id] = replace(self.volumes[volume_id], state=state)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _no_secret(disk: dict[str, Any]) -> dict[str, Any]:
    """A disk's record without its passphrase: a key never lands on the node's disk."""
    disk.pop("secret", None)
    return disk


def _spec_json(spec: InstanceSpec) -> dict[str, Any]:
    data = _jsonable(asdict(spec))
    for disk in [data["root"], *data["volumes"]]:
        _no_secret(disk)
    data["root"]["kind"] = "volume" if isinstance(spec.root, VolumeDisk) else "image"
    images = [data["root"].get("image"), *(data["kernel"] or {}).values()]
    for ref in images:
        if isinstance(ref, dict):
            ref["url"] = ""  # a presigned URL is a short-lived credential: not kept
    return data


def _target(data: dict[str, Any]) -> VolumeTarget:
    """A volume's target (records from before targets name the file: ``path``)."""
    target = data.get("target") or {"kind": "file", "path": data["path"]}
    if target["kind"] == "nbd":
        return NbdTarget(target["url"], target["tls_hostname"])
    if target["kind"] == "rbd":
        conf = target.get("conf")
        return RbdTarget(target["pool"], target["image"], target["user"], conf and Path(conf))
    return FileTarget(Path(target["path"]))


def _image(value: dict[str, Any] | str) -> ImageRef:
    """An image reference (records from before them name the cache's file)."""
    if isinstance(value, str):
        file = Path(value)
        size = file.stat().st_size if file.exists() else 0
        return ImageRef(file.parent.name, size, "", "")
    return ImageRef(**value)


def _limits(data: dict[str, Any]) -> DiskLimits | None:
    """A disk's limits (records written before volume types had none)."""
    limits = data.get("limits")
    return DiskLimits(**limits) if limits else None


def _volume(data: dict[str, Any]) -> VolumeDisk:
    return VolumeDisk(data["volume_id"], _target(data), data["format"], _limits(data))


def _attachment(data: dict[str, Any]) -> Attachment:
    return Attachment(
        data["volume_id"], _target(data), data["format"], data["state"], _limits(data)
    )


def _exit(data: dict[str, Any]) -> InstanceExit:
    return InstanceExit(data["instance_id"], ExitReason(data["reason"]), data["detail"], data["at"])


def _spec_from(data: dict[str, Any]) -> InstanceSpec:
    root_data = dict(data["root"])
    root: ImageRoot | VolumeDisk
    if root_data.pop("kind") == "volume":
        root = _volume(root_data)
    else:
        root = ImageRoot(
            _image(root_data["image"]), root_data["image_format"], root_data["size_bytes"]
        )
    kernel = data["kernel"]
    return InstanceSpec(
        instance_id=data["instance_id"],
        vcpus=data["vcpus"],
        memory_mib=data["memory_mib"],
        root=root,
        mac=data["mac"],
        private_ip=data["private_ip"],
        kernel=KernelBoot(
            _image(kernel["kernel"]),
            _image(kernel["ramdisk"]) if kernel["ramdisk"] else None,
            kernel["cmdline"],
        )
        if kernel
        else None,
        ephemeral_gib=data["ephemeral_gib"],
        volumes=tuple(_volume(v) for v in data["volumes"]),
        public_ip=data["public_ip"],
        vpc_id=data.get("vpc_id", LOCAL_VPC),  # records from before VPCs
        subnet=data.get("subnet", "172.31.0.0/16"),
        security_groups=tuple(data.get("security_groups", ())),
        cards=tuple(
            NetworkCard(
                **{
                    **c,
                    "security_groups": tuple(c["security_groups"]),
                    "secondary_ips": tuple(c.get("secondary_ips", ())),
                }
            )
            for c in data.get("cards", ())
        ),
        secondary_ips=tuple(data.get("secondary_ips", ())),
    )
