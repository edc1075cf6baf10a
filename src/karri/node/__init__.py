"""The node controller (Eucalyptus's NC): the QEMU instances of one host.

The cloud controller uses only what this module exports; see docs/architecture.md,
"Node controller".
"""

from karri.node.errors import (
    DetachTimeout,
    InstanceExists,
    InsufficientCapacity,
    LaunchError,
    NetworkError,
    NodeError,
    UnknownInstance,
    VolumeError,
)
from karri.node.firewall import GroupRules, Rule
from karri.node.metadata import InstanceMetadata, MetadataLookup
from karri.node.node import ExitCallback, Node, RecoveryCallback
from karri.node.spec import (
    LOCAL_VPC,
    AdoptReport,
    Attachment,
    Capacity,
    Check,
    DiskFormat,
    DiskLimits,
    ExitReason,
    IdentityKey,
    ImageRoot,
    InstanceExit,
    InstanceHealth,
    InstanceInfo,
    InstanceSpec,
    KernelBoot,
    NodeEvent,
    NodeSettings,
    VmState,
    VolumeDisk,
)

__all__ = [
    "LOCAL_VPC",
    "AdoptReport",
    "Attachment",
    "Capacity",
    "Check",
    "DetachTimeout",
    "DiskFormat",
    "DiskLimits",
    "ExitCallback",
    "ExitReason",
    "GroupRules",
    "IdentityKey",
    "ImageRoot",
    "InstanceExists",
    "InstanceExit",
    "InstanceHealth",
    "InstanceInfo",
    "InstanceMetadata",
    "InstanceSpec",
    "InsufficientCapacity",
    "KernelBoot",
    "LaunchError",
    "MetadataLookup",
    "NetworkError",
    "Node",
    "NodeError",
    "NodeEvent",
    "NodeSettings",
    "RecoveryCallback",
    "Rule",
    "UnknownInstance",
    "VmState",
    "VolumeDisk",
    "VolumeError",
]
