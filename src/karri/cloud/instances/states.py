"""Instance states and their codes, as AWS and Eucalyptus report them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

PENDING = "pending"
RUNNING = "running"
SHUTTING_DOWN = "shutting-down"
TERMINATED = "terminated"
STOPPING = "stopping"
STOPPED = "stopped"

CODES = {
    PENDING: 0,
    RUNNING: 16,
    SHUTTING_DOWN: 32,
    TERMINATED: 48,
    STOPPING: 64,
    STOPPED: 80,
}

# States in which an instance holds node resources (vCPUs, memory, a network address).
ACTIVE = frozenset({PENDING, RUNNING, SHUTTING_DOWN, STOPPING})

# Terminated instances stay visible this long, then disappear (as on AWS).
TERMINATED_VISIBLE_SECONDS = 3600

# State reasons (StateReason.Code / Message).
USER_INITIATED = (
    "Client.UserInitiatedShutdown",
    "Client.UserInitiatedShutdown: User initiated shutdown",
)
GUEST_INITIATED = (
    "Client.InstanceInitiatedShutdown",
    "Client.InstanceInitiatedShutdown: Instance initiated shutdown",
)
SERVER_ERROR = "Server.InternalError"


class Listed(Protocol):
    """An instance row as far as its visibility goes."""

    @property
    def state(self) -> str: ...
    @property
    def terminated_at(self) -> datetime | None: ...


def visible(instance: Listed) -> bool:
    """Whether Describe calls list it: a terminated instance only for
    ``TERMINATED_VISIBLE_SECONDS`` after its termination."""
    if instance.state != TERMINATED or instance.terminated_at is None:
        return True
    age = datetime.now(UTC) - instance.terminated_at
    return age.total_seconds() < TERMINATED_VISIBLE_SECONDS
