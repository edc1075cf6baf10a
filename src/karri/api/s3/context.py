"""One S3 request as the handlers see it, and the replies they give back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from karri.api.s3.auth import Identity
from karri.api.s3.public_access import NO_BLOCK, PublicAccessBlock
from karri.numbers import integer
from karri.walrus import BucketInfo, ObjectReader, Walrus, access_denied, acls, invalid_argument


@dataclass(frozen=True)
class Access:
    """What authorization found on the bucket's side before the handler runs: whether the
    bucket policy allowed the call (then the bucket's ACL, and the ACLs of the objects its
    owner owns, need not; an object another account owns still needs its own ACL) and
    the public access block in force (``IgnorePublicAcls``, ``BlockPublicAcls``)."""

    owner: str = ""  # the bucket's owner, when authorization looked the bucket up
    by_policy: bool = False
    block: PublicAccessBlock = NO_BLOCK
    lists: bool = False  # the policies let the caller list the bucket (s3:ListBucket)

    def allows(self, acl: dict, principal: str, permission: str | None) -> bool:
        """Whether ``principal`` (an account id, "" anonymous) holds ``permission`` on a
        bucket or object with ``acl``; None: only its owner (or the bucket policy)."""
        if self.by_policy and acl["owner"] == self.owner:
            return True
        if permission is None:
            return bool(principal) and principal == acl["owner"]
        if self.block.IgnorePublicAcls:
            acl = acls.without_public(acl)
        return acls.allows(acl, principal, permission)

    def check_acl(self, acl: dict | None) -> None:
        """AccessDenied for a public ACL where ``BlockPublicAcls`` is on."""
        if acl is not None and self.block.BlockPublicAcls and acls.is_public(acl):
            raise access_denied()


ANY_ACCESS = Access()


@dataclass
class Request:
    request_id: str
    method: str
    bucket: str
    key: str
    pairs: list[tuple[str, str]]  # the decoded query, in order
    query: dict[str, str]
    header: dict[str, str]  # lower-case names; repeated headers joined with ","
    identity: Identity
    walrus: Walrus
    receive: Any
    send: Any
    scope: dict
    body: bytes = b""  # small request documents, read and checked before dispatch
    access: Access = ANY_ACCESS  # the bucket's side, as authorization found it
    source_access: Access = ANY_ACCESS  # the same for a copy's source bucket

    def require_bucket(self, permission: str | None) -> BucketInfo:
        """The request's bucket if the caller may use it with ``permission`` (an ACL
        permission; None: owner only), else ``NoSuchBucket``/``AccessDenied``."""
        bucket = self.walrus.get_bucket(self.bucket)
        if not self.access.allows(bucket.acl, self.principal, permission):
            raise access_denied()
        return bucket

    @property
    def principal(self) -> str:
        return self.identity.principal

    def int_param(self, name: str, default: int, *, low: int = 0, high: int = 1000) -> int:
        value = self.query.get(name)
        if value is None or value == "":
            return default
        number = integer(value)
        if number is None:
            raise invalid_argument(f"Provided {name} not an integer or within integer range")
        if number < low:
            raise invalid_argument(
                f"Argument {name} must be an integer between {low} and 2147483647"
            )
        return min(number, high)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = "application/xml"


@dataclass
class FileReply:
    """An object's bytes (or a range of them), sent zero-copy where possible."""

    reader: ObjectReader
    start: int
    length: int
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
