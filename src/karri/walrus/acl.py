"""Access control lists: who may do what with a bucket or an object.

An ACL is stored as ``{"owner": id, "grants": [[grantee, permission], ...]}``. A grantee
is an account id (``CLOUD`` is the cloud's own), ``ALL_USERS`` (anyone, signed or not)
or ``AUTHENTICATED`` (any signed request).
"""

from __future__ import annotations

from typing import Any

from karri.walrus.errors import invalid_argument

ALL_USERS = "AllUsers"
AUTHENTICATED = "AuthenticatedUsers"
LOG_DELIVERY = "LogDelivery"
# The cloud itself: owner of its own buckets (snapshots, ...) and the reader that
# ``aws-exec-read`` grants (AWS's EC2 bundle reader; euca2ools uploads bundles with it).
SYSTEM_ACCOUNT = "000000000000"
CLOUD = SYSTEM_ACCOUNT
ANONYMOUS = ""

READ, WRITE, READ_ACP, WRITE_ACP, FULL_CONTROL = (
    "READ",
    "WRITE",
    "READ_ACP",
    "WRITE_ACP",
    "FULL_CONTROL",
)
PERMISSIONS = (READ, WRITE, READ_ACP, WRITE_ACP, FULL_CONTROL)
GROUPS = (ALL_USERS, AUTHENTICATED, LOG_DELIVERY)

BUCKET_CANNED = {
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "log-delivery-write",
    "aws-exec-read",
}
OBJECT_CANNED = {
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "aws-exec-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
}

ACL = dict[str, Any]


def canned(name: str, owner: str, bucket_owner: str | None = None, *, bucket: bool) -> ACL:
    """The ACL a canned name stands for; ``InvalidArgument`` for an unknown one."""
    allowed = BUCKET_CANNED if bucket else OBJECT_CANNED
    if name not in allowed:
        raise invalid_argument(f"Invalid canned ACL: {name}")
    grants: list[list[str]] = [[owner, FULL_CONTROL]]
    if name in ("public-read", "public-read-write"):
        grants.append([ALL_USERS, READ])
    if name == "public-read-write":
        grants.append([ALL_USERS, WRITE])
    elif name == "authenticated-read":
        grants.append([AUTHENTICATED, READ])
    elif name == "aws-exec-read":
        grants.append([CLOUD, READ])
    elif name == "log-delivery-write":
        grants += [[LOG_DELIVERY, WRITE], [LOG_DELIVERY, READ_ACP]]
    elif name.startswith("bucket-owner-") and bucket_owner and bucket_owner != owner:
        permission = READ if name == "bucket-owner-read" else FULL_CONTROL
        grants.append([bucket_owner, permission])
    return {"owner": owner, "grants": grants}


def private(owner: str) -> ACL:
    return {"owner": owner, "grants": [[owner, FULL_CONTROL]]}


def matches(grantee: str, principal: str) -> bool:
    """Whether a grant to ``grantee`` applies to a request by ``principal``.

    ``principal`` is an account id (``CLOUD`` included) or ``ANONYMOUS`` when unsigned.
    """
    if grantee == ALL_USERS:
        return True
    if grantee == AUTHENTICATED:
        return principal != ANONYMOUS
    return grantee == principal


def allows(acl: ACL, principal: str, permission: str) -> bool:
    """True when ``acl`` grants ``permission`` (or FULL_CONTROL) to ``principal``."""
    if principal and principal == acl["owner"] and permission in (READ_ACP, WRITE_ACP):
        return True  # an owner can always read and replace the ACL
    for grantee, granted in acl["grants"]:
        if granted in (permission, FULL_CONTROL) and matches(grantee, principal):
            return True
    return False


PUBLIC_GROUPS = (ALL_USERS, AUTHENTICATED)


def is_public(acl: ACL) -> bool:
    """Whether the ACL grants anything to everyone or to every signed caller (S3's public
    ACLs, which a public access block refuses or ignores)."""
    return any(grantee in PUBLIC_GROUPS for grantee, _permission in acl["grants"])


def without_public(acl: ACL) -> ACL:
    """The ACL with its public grants left out (``IgnorePublicAcls``)."""
    if not is_public(acl):
        return acl
    grants = [grant for grant in acl["grants"] if grant[0] not in PUBLIC_GROUPS]
    return {**acl, "grants": grants}
