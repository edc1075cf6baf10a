"""ACLs on the wire: AccessControlPolicy documents, canned x-amz-acl and x-amz-grant-*."""

from __future__ import annotations

import re

from karri.api.s3 import xml
from karri.api.s3.context import Request
from karri.cloud.accounts import ACCOUNT_ID
from karri.walrus import S3Error, acls, invalid_argument

GROUP_URIS = {
    acls.ALL_USERS: "http://acs.amazonaws.com/groups/global/AllUsers",
    acls.AUTHENTICATED: "http://acs.amazonaws.com/groups/global/AuthenticatedUsers",
    acls.LOG_DELIVERY: "http://acs.amazonaws.com/groups/s3/LogDelivery",
}
URI_GROUPS = {uri: group for group, uri in GROUP_URIS.items()}
XSI = "http://www.w3.org/2001/XMLSchema-instance"
GRANTEE_TYPES = ("CanonicalUser", "Group", "AmazonCustomerByEmail")
GRANT_HEADERS = {
    "x-amz-grant-read": acls.READ,
    "x-amz-grant-write": acls.WRITE,
    "x-amz-grant-read-acp": acls.READ_ACP,
    "x-amz-grant-write-acp": acls.WRITE_ACP,
    "x-amz-grant-full-control": acls.FULL_CONTROL,
}
_GRANTEE = re.compile(r'\s*(id|uri|emailAddress)\s*=\s*"?([^",]*)"?\s*(?:,|$)')


def display_name(request: Request, account: str) -> str:
    if account == request.principal and request.identity.name:
        return request.identity.name
    if account == acls.SYSTEM_ACCOUNT:
        return "karri"
    return account


def owner_xml(request: Request, account: str) -> str:
    name = xml.el("DisplayName", display_name(request, account))
    return f"<Owner>{xml.el('ID', account)}{name}</Owner>"


def policy_xml(request: Request, acl: dict) -> bytes:
    grants = []
    for grantee, permission in acl["grants"]:
        if grantee in GROUP_URIS:
            uri = xml.el("URI", GROUP_URIS[grantee])
            who = f'<Grantee xmlns:xsi="{XSI}" xsi:type="Group">{uri}</Grantee>'
        else:
            who = (
                f'<Grantee xmlns:xsi="{XSI}" xsi:type="CanonicalUser">{xml.el("ID", grantee)}'
                f"{xml.el('DisplayName', display_name(request, grantee))}</Grantee>"
            )
        grants.append(f"<Grant>{who}{xml.el('Permission', permission)}</Grant>")
    return xml.document(
        "AccessControlPolicy",
        [owner_xml(request, acl["owner"]), "<AccessControlList>", *grants, "</AccessControlList>"],
    )


def from_headers(
    request: Request, owner: str, bucket_owner: str | None, *, bucket: bool
) -> dict | None:
    """The ACL that x-amz-acl or x-amz-grant-* headers ask for, or None."""
    canned = request.header.get("x-amz-acl")
    grants = []
    for name, permission in GRANT_HEADERS.items():
        value = request.header.get(name)
        if value is None:
            continue
        found = _GRANTEE.findall(value)
        if not found:
            raise invalid_argument(f"Invalid grant in {name}")
        for kind, who in found:
            grants.append([_grantee(kind, who), permission])
    if canned is not None and grants:
        raise S3Error(
            "InvalidRequest", "Specifying both Canned ACLs and Header Grants is not allowed", 400
        )
    acl = None
    if canned is not None:
        acl = acls.canned(canned.strip(), owner, bucket_owner, bucket=bucket)
    elif grants:
        acl = {"owner": owner, "grants": grants}
    request.access.check_acl(acl)  # BlockPublicAcls
    return acl


def _grantee(kind: str, who: str) -> str:
    if kind == "id":
        if not ACCOUNT_ID.match(who):  # karri's canonical user ids are account ids
            raise invalid_argument("Invalid id")
        return who
    if kind == "uri":
        if who not in URI_GROUPS:
            raise invalid_argument("Invalid group uri")
        return URI_GROUPS[who]
    raise S3Error(
        "UnresolvableGrantByEmailAddress",
        "The email address you provided does not match any account on record.",
        400,
    )


def from_body(body: bytes, owner: str) -> dict:
    root = xml.parse(body, "AccessControlPolicy")
    owner_el = xml.child(root, "Owner")
    if owner_el is not None:
        stated = xml.text(owner_el, "ID")
        if stated and stated != owner:
            raise S3Error("AccessDenied", "Access Denied", 403)
    listing = xml.child(root, "AccessControlList")
    grants = []
    for grant in xml.children(listing, "Grant") if listing is not None else []:
        grantee = xml.child(grant, "Grantee")
        permission = xml.text(grant, "Permission")
        if grantee is None or permission not in acls.PERMISSIONS:
            raise S3Error(
                "MalformedACLError",
                "The XML you provided was not well-formed or did not validate against our "
                "published schema",
                400,
            )
        if grantee.get(f"{{{XSI}}}type", "CanonicalUser") not in GRANTEE_TYPES:
            raise S3Error("MalformedACLError", "A grantee is of an unknown type", 400)
        uri = xml.text(grantee, "URI")
        ident = xml.text(grantee, "ID")
        email = xml.text(grantee, "EmailAddress")
        if uri is not None:
            grants.append([_grantee("uri", uri.strip()), permission])
        elif ident is not None:
            grants.append([_grantee("id", ident.strip()), permission])
        elif email is not None:
            _grantee("emailAddress", email)
        else:
            raise S3Error("MalformedACLError", "A grant has no grantee", 400)
    return {"owner": owner, "grants": grants}


def requested(request: Request, owner: str, bucket_owner: str | None, *, bucket: bool) -> dict:
    """The new ACL of PutBucketAcl/PutObjectAcl: headers or an AccessControlPolicy body."""
    from_header = from_headers(request, owner, bucket_owner, bucket=bucket)
    if from_header is not None:
        if request.body.strip():
            raise S3Error("UnexpectedContent", "This request does not support content", 400)
        return from_header
    if not request.body.strip():
        raise S3Error("MissingSecurityHeader", "Your request was missing a required header", 400)
    acl = from_body(request.body, owner)
    request.access.check_acl(acl)  # BlockPublicAcls
    return acl
