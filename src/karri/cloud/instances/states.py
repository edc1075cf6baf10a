"""Instance states and their codes, as AWS and Eucalyptus report them."""

from __future__ import annotations

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
