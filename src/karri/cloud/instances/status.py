"""DescribeInstanceStatus: each instance's status checks, from what its node observed.

The system check is the host side (the node, the QEMU process, the accelerator), the
instance check the guest itself (life on its network, no panic). Only a running
instance has checks; the others are ``not-applicable``. Nothing is inferred from the
instance's state alone: a running instance whose node has not reported on it yet has
``insufficient-data``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from karri.cloud.filters import FilterSet
from karri.cloud.instances import states
from karri.cloud.instances.models import Instance
from karri.node import Check, InstanceHealth, NodeEvent

REACHABILITY = {
    "ok": "passed",
    "impaired": "failed",
    "initializing": "initializing",
    "insufficient-data": "insufficient-data",
}


@dataclass(frozen=True)
class StatusCheck:
    status: str
    """ok, impaired, initializing, insufficient-data or not-applicable."""
    reason: str = ""
    impaired_since: datetime | None = None

    @property
    def reachability(self) -> str | None:
        """The one detail AWS reports (``reachability``); none when not applicable."""
        return REACHABILITY.get(self.status)


NOT_APPLICABLE = StatusCheck("not-applicable")


@dataclass(frozen=True)
class InstanceEvent:
    event_id: str
    code: str
    description: str
    not_before: datetime


@dataclass(frozen=True)
class InstanceStatus:
    instance: Instance
    system: StatusCheck
    guest: StatusCheck
    events: tuple[InstanceEvent, ...] = ()


def _check(check: Check) -> StatusCheck:
    since = check.impaired_since
    return StatusCheck(
        check.status, check.reason, datetime.fromtimestamp(since, UTC) if since else None
    )


def _event(instance_id: str, event: NodeEvent) -> InstanceEvent:
    digest = hashlib.sha256(f"{instance_id}/{event.at}/{event.code}".encode()).hexdigest()
    return InstanceEvent(
        f"instance-event-{digest[:17]}",
        event.code,
        event.description,
        datetime.fromtimestamp(event.at, UTC),
    )


def status_of(instance: Instance, health: InstanceHealth | str | None) -> InstanceStatus:
    """``health``: what the node observed, or why there is nothing (a string), or None
    when nobody has asked a node (the instance is not running)."""
    if instance.state != states.RUNNING or health is None:
        return InstanceStatus(instance, NOT_APPLICABLE, NOT_APPLICABLE)
    if isinstance(health, str):
        unknown = StatusCheck("insufficient-data", health)
        return InstanceStatus(instance, unknown, unknown)
    return InstanceStatus(
        instance,
        _check(health.system),
        _check(health.instance),
        tuple(_event(instance.id, e) for e in health.events),
    )


FILTERS: FilterSet[InstanceStatus] = FilterSet(
    {
        "availability-zone": lambda s: s.instance.zone,
        "instance-state-name": lambda s: s.instance.state,
        "instance-state-code": lambda s: states.CODES[s.instance.state],
        "instance-status.status": lambda s: s.guest.status,
        "instance-status.reachability": lambda s: s.guest.reachability,
        "system-status.status": lambda s: s.system.status,
        "system-status.reachability": lambda s: s.system.reachability,
        "event.code": lambda s: [e.code for e in s.events],
        "event.description": lambda s: [e.description for e in s.events],
        "event.instance-event-id": lambda s: [e.event_id for e in s.events],
        "event.not-before": lambda s: [e.not_before for e in s.events],
        # no EBS status checks: volumes are files on this host, attached or not
        "attached-ebs-status.status": lambda _s: None,
        "attached-ebs-status.reachability": lambda _s: None,
    },
    tags=False,
)
