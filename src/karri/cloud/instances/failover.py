"""Instances of a BROKEN node (many-hosts step 7): a joined node whose heartbeats were
missed (``registry.MISSED_BEATS`` in a row) is not heard from, so nothing new is known of
its instances. Their state stays as last observed; DescribeInstanceStatus shows their
system check ``impaired`` (reachability ``failed``) and their instance check
``insufficient-data``.

They leave the node only when asked: StopInstances with ``Force=true`` (EBS-backed ones)
or ``karri node evacuate``, which stops EBS-backed instances (StartInstances places them
again, on any node of their zone with room) and terminates instance-store ones, whose
disks are lost with the host, as AWS does on a hardware failure. Either way the StateReason
is ``Server.InternalError`` and says which node failed; the reconciler then records the
end without the node (``Reconciler._stop``/``_destroy``), and ends what the node still runs
if it comes back (``Reconciler._connected``: the cloud's desired state wins).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from karri.cloud.instances import states
from karri.cloud.instances.fleet import NodeListing
from karri.cloud.instances.models import Instance
from karri.node import Check, InstanceHealth

FAILED = f"{states.SERVER_ERROR}: its node failed"


def broken_health(instance_id: str, node: NodeListing) -> InstanceHealth:
    """What is known of an instance of a BROKEN node: that its host is not heard from."""
    return InstanceHealth(
        instance_id,
        Check("impaired", f"node {node.name} missed its heartbeats", node.last_seen),
        Check("insufficient-data", f"node {node.name} is not heard from"),
    )


def failed_reason(node: str | None) -> tuple[str, str]:
    return states.SERVER_ERROR, f"{FAILED} ({node})"


def forced(instance: Instance) -> bool:
    """Whether its stop was forced off a failed node (it runs nowhere the cloud reaches)."""
    message = instance.state_reason_message or ""
    return instance.state_reason_code == states.SERVER_ERROR and message.startswith(FAILED)


def force_stop(instance: Instance) -> None:
    """StopInstances Force=true of a running EBS-backed instance whose node is BROKEN."""
    instance.state, instance.desired = states.STOPPING, states.STOPPED
    instance.state_reason_code, instance.state_reason_message = failed_reason(instance.node)


def evacuate(session: Session, node: str) -> list[tuple[str, str]]:
    """Every live instance of ``node`` (a BROKEN one) leaves it: EBS-backed ones stop,
    instance-store ones terminate. The (instance id, state it goes to) of each."""
    rows: Sequence[Instance] = session.scalars(
        select(Instance).where(Instance.node == node, Instance.state.in_(states.ACTIVE))
    ).all()
    moved = []
    for instance in rows:
        if instance.root_device_type == "ebs" and instance.desired != states.TERMINATED:
            force_stop(instance)
            moved.append((instance.id, states.STOPPED))
        else:
            instance.state, instance.desired = states.SHUTTING_DOWN, states.TERMINATED
            instance.state_reason_code, instance.state_reason_message = failed_reason(node)
            moved.append((instance.id, states.TERMINATED))
    return moved
