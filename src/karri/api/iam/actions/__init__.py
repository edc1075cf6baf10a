"""IAM's and STS's handlers; importing this registers them."""

from karri.api.iam.actions import (
    account,
    details,
    groups,
    keys,
    policies,
    roles,
    simulate,
    sts,
    tagging,
    users,
)
from karri.api.iam.actions.authorization import authorize_call

__all__ = [
    "account",
    "authorize_call",
    "details",
    "groups",
    "keys",
    "policies",
    "roles",
    "simulate",
    "sts",
    "tagging",
    "users",
]
