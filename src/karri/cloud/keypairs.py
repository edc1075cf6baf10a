"""Key pairs: created (the private key returned once, never kept) or imported."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from karri.cloud.filters import FilterSet
from karri.cloud.ppk import ppk
from karri.cloud.tags import Taggable, Tags, owned_ids
from karri.db.engine import Database
from karri.db.models import KeyPair, Tag
from karri.db.reads import CompiledQuery
from karri.errors import CloudError, invalid_value, missing_parameter
from karri.ids import new_id

PublicKey = rsa.RSAPublicKey | ed25519.Ed25519PublicKey

FILTERS: FilterSet[KeyPair] = FilterSet(
    {
        "key-pair-id": lambda k: k.id,
        "key-name": lambda k: k.name,
        "fingerprint": lambda k: k.fingerprint,
        "key-type": lambda k: k.key_type,
    }
)


# DescribeKeyPairs is the hottest read: one query (key pairs and their tags), built once.
_KEYS_WITH_TAGS = (
    select(
        KeyPair.id,
        KeyPair.name,
        KeyPair.key_type,
        KeyPair.fingerprint,
        KeyPair.public_key,
        KeyPair.created_at,
        Tag.key.label("tag_key"),
        Tag.value.label("tag_value"),
    )
    .outerjoin(Tag, Tag.resource_id == KeyPair.id)
    .where(KeyPair.account_id == bindparam("account_id"))
    .order_by(KeyPair.name)
)


class KeyRow(NamedTuple):
    """A key pair as describe() reads it: KeyPair's attributes without an ORM instance."""

    id: str
    name: str
    key_type: str
    fingerprint: str
    public_key: str
    created_at: datetime


@dataclass(frozen=True)
class KeyPairView:
    key: KeyPair | KeyRow
    tags: dict[str, str]


def _colon_hex(digest: bytes) -> str:
    return ":".join(f"{b:02x}" for b in digest)


def _ed25519_fingerprint(key: ed25519.Ed25519PublicKey) -> str:
    blob = base64.b64decode(
        key.public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        ).split()[1]
    )
    return base64.b64encode(hashlib.sha256(blob).digest()).decode()


def openssh_line(key: PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()


def generate(key_type: str, key_format: str = "pem", name: str = "") -> tuple[str, str, str]:
    """A new key: (private key material, fingerprint as AWS computes it, public key line).

    The material is PEM (OpenSSH's format for ed25519), or a PuTTY file for ``ppk``
    (commented with the key pair's ``name``)."""
    private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if key_type == "ed25519":
        private = ed25519.Ed25519PrivateKey.generate()
        fingerprint = _ed25519_fingerprint(private.public_key())
        pem_format = serialization.PrivateFormat.OpenSSH
    else:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pkcs8 = private.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fingerprint = _colon_hex(hashlib.sha1(pkcs8).digest())
        pem_format = serialization.PrivateFormat.TraditionalOpenSSL
    if key_format == "ppk":
        material = ppk(private, name)
    else:
        material = private.private_bytes(
            serialization.Encoding.PEM, pem_format, serialization.NoEncryption()
        ).decode()
    return material, fingerprint, openssh_line(private.public_key())


def load_public_key(material: bytes) -> PublicKey:
    """Read an imported public key: OpenSSH, SSH2 (RFC 4716), PEM or base64 DER."""
    text = material.decode("ascii", "replace").strip()
    if text.startswith("---- BEGIN SSH2 PUBLIC KEY ----"):
        body = [line for line in text.splitlines()[1:-1] if ":" not in line]
        try:
            text = _ssh2_to_openssh("".join(line.strip() for line in body))
        except (ValueError, UnicodeDecodeError):
            raise CloudError("InvalidKey.Format", "Key is not a valid SSH2 public key") from None
    loaders = []
    loaders.append(lambda: serialization.load_ssh_public_key(text.encode()))
    loaders.append(lambda: serialization.load_pem_public_key(text.encode()))
    loaders.append(lambda: serialization.load_der_public_key(base64.b64decode(text)))
    for loader in loaders:
        try:
            key = loader()
        except Exception:
            continue
        if isinstance(key, rsa.RSAPublicKey):
            if not 1024 <= key.key_size <= 16384:
                raise CloudError("InvalidKey.Format", "RSA keys must be 1024 to 16384 bits long")
            return key
        if isinstance(key, ed25519.Ed25519PublicKey):
            return key
        raise CloudError("InvalidKey.Format", "Only RSA and ED25519 keys are supported")
    raise CloudError(
        "InvalidKey.Format",
        "Key is not in valid OpenSSH public key format",
    )


def _ssh2_to_openssh(blob: str) -> str:
    raw = base64.b64decode(blob)
    length = int.from_bytes(raw[:4], "big")
    return f"{raw[4 : 4 + length].decode()} {blob}"


def imported_fingerprint(key: PublicKey) -> str:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return _ed25519_fingerprint(key)
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = hashes.Hash(hashes.MD5())
    digest.update(der)
    return _colon_hex(digest.finalize())


def validate_name(name: str | None) -> str:
    if not name:
        raise missing_parameter("KeyName")
    if len(name) > 255 or not name.isascii() or not name.isprintable():
        raise invalid_value("Key names are up to 255 printable ASCII characters")
    return name


class KeyPairs:
    def __init__(self, db: Database, tags: Tags) -> None:
        self.db = db
        self.tags = tags
        self._keys_with_tags = CompiledQuery(db.engine, _KEYS_WITH_TAGS)
        tags.register(
            Taggable("key", "key-pair", "InvalidKeyPair.NotFound", "key pair", owned_ids(KeyPair))
        )

    def create(
        self,
        account_id: str,
        name: str | None,
        key_type: str = "rsa",
        key_format: str = "pem",
        tags: Mapping[str, str] | None = None,
    ) -> tuple[KeyPairView, str]:
        name = validate_name(name)
        if key_type not in ("rsa", "ed25519"):
            raise invalid_value(f"Value ({key_type}) for parameter KeyType is invalid.")
        if key_format not in ("pem", "ppk"):
            raise invalid_value(f"Value ({key_format}) for parameter KeyFormat is invalid.")
        self._check_free(account_id, name)
        material, fingerprint, public = generate(key_type, key_format, name)
        view = self._store(account_id, name, key_type, fingerprint, public, dict(tags or {}))
        return view, material

    def import_(
        self,
        account_id: str,
        name: str | None,
        material: bytes | None,
        tags: Mapping[str, str] | None = None,
    ) -> KeyPairView:
        name = validate_name(name)
        if not material:
            raise missing_parameter("PublicKeyMaterial")
        key = load_public_key(material)
        key_type = "ed25519" if isinstance(key, ed25519.Ed25519PublicKey) else "rsa"
        return self._store(
            account_id,
            name,
            key_type,
            imported_fingerprint(key),
            openssh_line(key),
            dict(tags or {}),
        )

    def _check_free(self, account_id: str, name: str) -> None:
        with self.db.session() as session:
            if self._by_name(session, account_id, name):
                raise CloudError(
                    "InvalidKeyPair.Duplicate", f"The keypair '{name}' already exists."
                )

    @staticmethod
    def _by_name(session: Session, account_id: str, name: str) -> KeyPair | None:
        return session.scalar(
            select(KeyPair).where(KeyPair.account_id == account_id, KeyPair.name == name)
        )

    def _store(
        self,
        account_id: str,
        name: str,
        key_type: str,
        fingerprint: str,
        public: str,
        tags: dict[str, str],
    ) -> KeyPairView:
        with self.db.write_session() as session:
            if self._by_name(session, account_id, name):
                raise CloudError(
                    "InvalidKeyPair.Duplicate", f"The keypair '{name}' already exists."
                )
            key = KeyPair(
                id=new_id("key", lambda i: session.get(KeyPair, i) is not None),
                account_id=account_id,
                name=name,
                key_type=key_type,
                fingerprint=fingerprint,
                public_key=public,
            )
            session.add(key)
            session.flush()
            if tags:
                self.tags.put(session, account_id, [key.id], tags)
            return KeyPairView(key, tags)

    def describe(
        self,
        account_id: str,
        names: Sequence[str] | None = None,
        ids: Sequence[str] | None = None,
        filters: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[KeyPairView]:
        keys: list[KeyRow] = []
        tags: dict[str, dict[str, str]] = {}
        for *columns, tag_key, tag_value in self._keys_with_tags.rows(account_id=account_id):
            key_tags = tags.get(columns[0])
            if key_tags is None:
                key_tags = tags[columns[0]] = {}
                keys.append(KeyRow(*columns))
            if tag_key is not None:
                key_tags[tag_key] = tag_value
        for wanted, attr, what in ((names, "name", "key pair"), (ids, "id", "key pair ID")):
            if wanted:
                have = {getattr(k, attr) for k in keys}
                for item in wanted:
                    if item not in have:
                        raise CloudError(
                            "InvalidKeyPair.NotFound", f"The {what} '{item}' does not exist"
                        )
                keys = [k for k in keys if getattr(k, attr) in set(wanted)]
        keys = FILTERS.apply(keys, filters, lambda k: tags[k.id])
        return [KeyPairView(k, tags[k.id]) for k in keys]

    def names_by_id(self, account_id: str, key_ids: Sequence[str]) -> dict[str, str]:
        """The names of the account's key pairs with these ids (a key pair's ARN has its
        name), for authorization."""
        with self.db.session() as session:
            rows = session.execute(
                select(KeyPair.id, KeyPair.name).where(
                    KeyPair.account_id == account_id, KeyPair.id.in_(list(key_ids))
                )
            )
            return {key_id: name for key_id, name in rows}

    def delete(self, account_id: str, name: str | None, key_id: str | None) -> str | None:
        """Delete by name or id; deleting a key that does not exist succeeds, as on AWS."""
        if not name and not key_id:
            raise missing_parameter("KeyName")
        with self.db.write_session() as session:
            query = select(KeyPair).where(KeyPair.account_id == account_id)
            query = (
                query.where(KeyPair.id == key_id) if key_id else query.where(KeyPair.name == name)
            )
            key = session.scalar(query)
            if key is None:
                return None
            self.tags.forget(session, [key.id])
            session.delete(key)
            return key.id

    def public_key(self, account_id: str, name: str) -> str | None:
        with self.db.session() as session:
            key = self._by_name(session, account_id, name)
            return key.public_key if key else None
