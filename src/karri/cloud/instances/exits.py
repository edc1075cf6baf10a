"""What a guest's end, or a node's relaunch of it, makes of its instance: the one rule the
leader's reconciler acts on (``Reconciler._exited``) and a standby front end records for
it (``standby.StandbyHearer``: the node reported to the gateway of a front end that does
not run the reconciler)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from karri.cloud.instances import states
from karri.cloud.instances.models import Instance
from karri.node import ExitReason, InstanceExit, NodeEvent

RELAUNCH, STOP, TERMINATE = "relaunch", "stop", "terminate"


@dataclass(frozen=True)
class Outcome:
    action: str  # RELAUNCH, STOP or TERMINATE
    reason: tuple[str, str]  # the StateReason's code and message


def outcome(row: Instance, report: InstanceExit) -> Outcome | None:
    """None: the instance is past caring (not running, stopping or pending)."""
    if row.state not in (states.RUNNING, states.STOPPING, states.PENDING):
        return None
    if report.reason == ExitReason.NETWORK_UPGRADE and row.state == states.RUNNING:
        why = f"{states.SERVER_ERROR}: restarted once: {report.detail}"
        return Outcome(RELAUNCH, (states.SERVER_ERROR, why))
    ebs = row.root_device_type == "ebs"
    if report.reason in (ExitReason.GUEST_SHUTDOWN, ExitReason.HOST_SHUTDOWN):
        reason = states.GUEST_INITIATED
        stop = ebs and row.shutdown_behavior == "stop"
    else:
        reason = (states.SERVER_ERROR, f"{states.SERVER_ERROR}: {report.detail or report.reason}")
        stop = ebs
    return Outcome(STOP if stop else TERMINATE, reason)


def relaunch(session: Session, instance_id: str, reason: tuple[str, str]) -> bool:
    """The running instance goes through ``pending`` again, with the reason."""
    row = session.get(Instance, instance_id)
    if row is None or row.state != states.RUNNING:
        return False
    row.state = states.PENDING
    row.state_reason_code, row.state_reason_message = reason
    return True


def record(session: Session, report: InstanceExit) -> None:
    """A standby's part: the end becomes intent (``stopping``/``shutting-down`` with its
    reason, or ``pending`` again), which the leader's reconciler finishes at its next
    pass, as it would have at once."""
    row = session.get(Instance, report.instance_id)
    found = outcome(row, report) if row is not None else None
    if row is None or found is None:
        return
    if found.action == RELAUNCH:
        relaunch(session, row.id, found.reason)
        return
    if found.action == STOP:
        row.state, row.desired = states.STOPPING, states.STOPPED
    else:
        row.state, row.desired = states.SHUTTING_DOWN, states.TERMINATED
    row.state_reason_code, row.state_reason_message = found.reason


def note_recovery(session: Session, instance_id: str, event: NodeEvent) -> None:
    """The node relaunched an instance on its own: the user sees why in StateReason."""
    row = session.get(Instance, instance_id)
    if row is not None and row.state == states.RUNNING:
        row.state_reason_code = states.SERVER_ERROR
        row.state_reason_message = f"{states.SERVER_ERROR}: {event.description}"
