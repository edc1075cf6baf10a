"""Each account's EBS key: what encrypts its volumes at rest (the ``aws/ebs`` key of AWS).

An account's key is 32 random bytes made at its first use, stored wrapped (AES-256-GCM,
the account id as associated data) by the cloud's master key, a file of 32 random bytes in
the data dir (0600) made at the first start that needs it. Unwrapped, the key is the LUKS
passphrase of the account's volumes (``karri.storage.luks``). Clients see it as
``arn:aws:kms:REGION:ACCOUNT:key/<uuid>``; ``alias/aws/ebs`` names it too. There are no
customer keys: naming any other key is an unknown key.
"""

from __future__ import annotations

import base64
import contextlib
import os
import uuid
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.orm import Session

from karri.cloud.volumes.models import EbsEncryption
from karri.db.engine import Database
from karri.errors import CloudError

MASTER_KEY = "ebs-master.key"
ALIAS = "alias/aws/ebs"
_NONCE = 12


def unknown_key(name: str) -> CloudError:
    return CloudError("InvalidParameterValue", f"Invalid KMS key: '{name}' does not exist.")


def encryption_of(
    *,
    requested: bool,
    kms_key_id: str | None,
    by_default: bool,
    snapshot_encrypted: bool | None,
) -> bool:
    """Whether a new volume is encrypted (CreateVolume's rules): a snapshot's encryption
    carries over; without one, or from an unencrypted one, the request or the account's
    default decides. A key named without ``Encrypted`` is refused."""
    if kms_key_id and not requested:
        raise CloudError(
            "InvalidParameterDependency",
            "The parameter KmsKeyId requires the parameter Encrypted to be set.",
        )
    if snapshot_encrypted:
        return True
    return requested or by_default


class MasterKey:
    """The cloud's master key, read (or made, once) from its file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._key: bytes | None = None

    def key(self) -> bytes:
        if self._key is None:
            self._key = self._load()
        return self._key

    def _load(self) -> bytes:
        with contextlib.suppress(FileNotFoundError):
            return self._checked(self.path.read_bytes())
        tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, os.urandom(32))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, self.path)  # never replaces a key another process made first
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
        return self._checked(self.path.read_bytes())

    def _checked(self, key: bytes) -> bytes:
        if len(key) != 32:
            raise RuntimeError(f"{self.path} is not a 32-byte key")
        return key


class EbsKeys:
    def __init__(self, db: Database, master: MasterKey, region: str) -> None:
        self.db = db
        self.master = master
        self.region = region

    # -- the account's key -------------------------------------------------------------------

    def _row(self, account_id: str, session: Session | None = None) -> EbsEncryption:
        """The account's key, made at its first use (two first uses agree on one); in
        ``session`` when the caller is inside a transaction that may already write (its
        write lock keeps a second first use out on SQLite)."""
        if session is not None:
            row = session.get(EbsEncryption, account_id)
            if row is None:
                row = self._new_row(account_id)
                session.add(row)
                session.flush()
            return row
        with self.db.session() as own:
            row = own.get(EbsEncryption, account_id)
        if row is not None:
            return row
        with self.db.write_session() as own:  # made meanwhile? then that one it is
            return self._row(account_id, own)

    def _new_row(self, account_id: str) -> EbsEncryption:
        return EbsEncryption(
            account_id=account_id,
            key_id=str(uuid.uuid4()),
            wrapped_key=self._wrap(account_id, os.urandom(32)),
            by_default=False,
        )

    def key_arn(self, account_id: str, session: Session | None = None) -> str:
        key_id = self._row(account_id, session).key_id
        return f"arn:aws:kms:{self.region}:{account_id}:key/{key_id}"

    def passphrase(self, account_id: str) -> bytes:
        """What opens the account's encrypted volumes (the LUKS passphrase)."""
        row = self._row(account_id)
        nonce, sealed = row.wrapped_key[:_NONCE], row.wrapped_key[_NONCE:]
        data_key = AESGCM(self.master.key()).decrypt(nonce, sealed, account_id.encode())
        return base64.b64encode(data_key)

    def _wrap(self, account_id: str, data_key: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + AESGCM(self.master.key()).encrypt(nonce, data_key, account_id.encode())

    def resolve(self, account_id: str, name: str | None, session: Session | None = None) -> str:
        """The key ARN a request's ``KmsKeyId`` names (None: the default): the key's id,
        ARN, ``alias/aws/ebs`` or the alias's ARN; anything else is an unknown key."""
        arn = self.key_arn(account_id, session)
        if name is None:
            return arn
        key_id = arn.rsplit("/", 1)[1]
        alias_arn = f"arn:aws:kms:{self.region}:{account_id}:{ALIAS}"
        if name in (arn, key_id, ALIAS, alias_arn):
            return arn
        raise unknown_key(name)

    # -- encryption by default ----------------------------------------------------------------

    def by_default(self, account_id: str, session: Session | None = None) -> bool:
        """Whether the account's new volumes are encrypted (read in ``session`` when the
        caller is inside a transaction)."""
        if session is not None:
            row = session.get(EbsEncryption, account_id)
            return bool(row and row.by_default)
        with self.db.session() as own:
            return self.by_default(account_id, own)

    def set_by_default(self, account_id: str, value: bool) -> bool:
        with self.db.write_session() as session:
            self._row(account_id, session).by_default = value
        return value
