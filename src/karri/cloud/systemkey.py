"""The cloud's own access key, for the system account's objects (``walrus.SYSTEM_ACCOUNT``).

Nobody logs in with it: karri presigns short-lived URLs of its system buckets' objects
with it (a node on another host fetches an image through one, ``cloud/images/store.py``).
Made on first use in the data dir (``system-key``, mode 0600) and read by every process
that authenticates S3 requests (``karri up`` and its S3 workers).
"""

from __future__ import annotations

import os
import secrets
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from karri.cloud.iam.keys import FoundKey
from karri.signing import presign_get
from karri.walrus import SYSTEM_ACCOUNT

KEY_FILE = "system-key"
ACCOUNT_NAME = "karri-system"
_ID_ALPHABET = string.ascii_uppercase + "234567"
_SECRET_ALPHABET = string.ascii_letters + string.digits + "+/"


@dataclass(frozen=True)
class SystemKey:
    access_key_id: str
    secret: str = field(repr=False)

    @classmethod
    def load(cls, data_dir: Path) -> SystemKey:
        path = data_dir / KEY_FILE
        if not path.exists():
            key_id = "AKIS" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(16))
            secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40))
            partial = path.with_name(f".{KEY_FILE}.{os.getpid()}")
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(f"{key_id}\n{secret}\n")
            try:
                os.link(partial, path)  # the first process to make one wins
            except FileExistsError:
                pass
            finally:
                partial.unlink()
        key_id, secret = path.read_text().split()
        return cls(key_id, secret)


class KeyFinder(Protocol):
    def find(self, access_key_id: str) -> FoundKey | None: ...


class WithSystemKey:
    """Every access key ``finder`` knows, and the system key (the system account's root)."""

    def __init__(self, finder: KeyFinder, key: SystemKey) -> None:
        self.finder = finder
        self.key = key

    def find(self, access_key_id: str) -> FoundKey | None:
        if access_key_id == self.key.access_key_id:
            return FoundKey(self.key.secret, SYSTEM_ACCOUNT, ACCOUNT_NAME)
        return self.finder.find(access_key_id)


class SystemUrls:
    """Short-lived presigned GET URLs of the system account's objects on the S3 port."""

    def __init__(self, key: SystemKey, endpoint: str, region: str, expires: int = 900) -> None:
        self.key = key
        self.endpoint = endpoint
        self.region = region
        self.expires = expires

    def get(self, bucket: str, object_key: str) -> str:
        return presign_get(
            self.endpoint,
            f"/{bucket}/{object_key}",
            self.key.access_key_id,
            self.key.secret,
            self.region,
            self.expires,
        )
