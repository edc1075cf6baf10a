"""IAM's names, paths and ids: what they may hold, and how an id looks (``AIDA…``)."""

from __future__ import annotations

import re
import secrets
import string

from karri.policy import iam_arn

from .errors import validation_error

_NAME = re.compile(r"[\w+=,.@-]{1,128}")
_PATH = re.compile(r"/([\x21-\x7e]{0,510}/)?")
ROLE_SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}")
_ALPHABET = string.ascii_uppercase + string.digits

# What each kind's unique id begins with, as AWS's do.
PREFIXES = {
    "user": "AIDA",
    "role": "AROA",
    "group": "AGPA",
    "policy": "ANPA",
    "instance-profile": "AIPA",
    "access-key": "AKIA",
    "session": "ASIA",
}
MAX_LENGTH = {"user": 64, "role": 64, "group": 128, "policy": 128, "instance-profile": 128}


def new_unique_id(kind: str) -> str:
    return PREFIXES[kind] + "".join(secrets.choice(_ALPHABET) for _ in range(17))


def new_secret() -> str:
    alphabet = string.ascii_letters + string.digits + "+/"
    return "".join(secrets.choice(alphabet) for _ in range(40))


def check_name(kind: str, name: str, member: str) -> str:
    """``name`` if IAM takes it for this kind, else ``ValidationError`` naming ``member``."""
    limit = MAX_LENGTH.get(kind, 128)
    if not _NAME.fullmatch(name) or len(name) > limit or not name.isascii():
        raise validation_error(
            f"1 validation error detected: Value '{name}' at '{member}' failed to satisfy "
            f"constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+ "
            f"and have length at most {limit}"
        )
    return name


def check_path(path: str | None, member: str = "path") -> str:
    if path is None:
        return "/"
    if not _PATH.fullmatch(path):
        raise validation_error(
            f"1 validation error detected: Value '{path}' at '{member}' failed to satisfy "
            "constraint: Member must satisfy regular expression pattern: "
            "(\\u002F)|(\\u002F[\\u0021-\\u007F]+\\u002F)"
        )
    return path


def arn(account_id: str, kind: str, name: str, path: str = "/") -> str:
    return iam_arn(account_id, kind, name, path)
