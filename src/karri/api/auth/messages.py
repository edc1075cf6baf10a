"""EC2's encoded authorization failure message: sealed so that only the cloud can read it.

AWS encrypts the message because it tells more than the caller may know (the statements
that decided, the request's context); STS DecodeAuthorizationMessage opens it for a
caller allowed ``sts:DecodeAuthorizationMessage``. Here it is JSON sealed with Fernet
(AES-CBC and HMAC-SHA256) under a key the cloud keeps in its data dir, so a message stays
readable across restarts and by every process of one cloud.

Until ``use_key_file`` is called the key is the process's own (fine for tests).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

KEY_FILE = "authorization-message.key"

_fernet = Fernet(Fernet.generate_key())


class InvalidMessage(Exception):
    """Not a message this cloud sealed (STS: ``InvalidAuthorizationMessageException``)."""


def use_key_file(data_dir: Path) -> None:
    """Seal and open with the key in ``data_dir`` (made on first use, readable by karri only)."""
    global _fernet
    path = data_dir / KEY_FILE
    try:
        key = path.read_bytes().strip()
    except FileNotFoundError:
        key = Fernet.generate_key()
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process of this cloud made it first
            key = path.read_bytes().strip()
        else:
            with os.fdopen(descriptor, "wb") as file:
                file.write(key)
    _fernet = Fernet(key)


def encode(message: dict[str, Any]) -> str:
    return _fernet.encrypt(json.dumps(message, separators=(",", ":")).encode()).decode()


def decode(encoded: str) -> dict[str, Any]:
    """The message ``encode`` sealed; `InvalidMessage` for anything else."""
    try:
        return json.loads(_fernet.decrypt(encoded.strip().encode()))
    except (InvalidToken, ValueError, UnicodeError):
        raise InvalidMessage("The encoded message is not valid") from None
