"""Resource ids in Eucalyptus format: a prefix and 8 random lowercase hex digits."""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Callable

ID_PATTERN = re.compile(r"^([a-z]+)-([0-9a-f]{8}|[0-9a-f]{17})$")


def new_id(prefix: str, taken: Callable[[str], bool] = lambda _id: False) -> str:
    """A fresh id such as ``i-1a2b3c4d``, retried until ``taken`` says it is free."""
    while True:
        candidate = f"{prefix}-{secrets.token_hex(4)}"
        if not taken(candidate):
            return candidate


def new_ids(prefix: str, count: int, taken: Callable[[list[str]], set[str]]) -> list[str]:
    """``count`` distinct fresh ids; ``taken`` says which of a batch already exist (one query)."""
    return fresh(lambda: new_id(prefix), count, taken)


def fresh(make: Callable[[], str], count: int, taken: Callable[[list[str]], set[str]]) -> list[str]:
    """``count`` distinct new values of ``make``; ``taken`` says which of a batch already
    exist (one query a batch)."""
    chosen: list[str] = []
    while len(chosen) < count:
        batch = {make() for _ in range(count - len(chosen))} - set(chosen)
        chosen += sorted(batch - taken(sorted(batch)))
    return chosen


def is_valid_id(value: str, prefix: str) -> bool:
    """True for ``prefix-`` followed by 8 (Eucalyptus) or 17 (AWS long ids) hex digits."""
    match = ID_PATTERN.match(value)
    return bool(match) and match.group(1) == prefix


def new_account_id() -> str:
    """Twelve digits, like an AWS account id, never starting with 0."""
    return str(secrets.randbelow(9 * 10**11) + 10**11)


def new_access_key_id() -> str:
    alphabet = string.ascii_uppercase + string.digits
    return "AKI" + "".join(secrets.choice(alphabet) for _ in range(17))


def new_secret_key() -> str:
    alphabet = string.ascii_letters + string.digits + "+/"
    return "".join(secrets.choice(alphabet) for _ in range(40))
