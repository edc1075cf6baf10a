"""What an S3 call asks for in IAM's terms, and the policy engine's answer to it.

Each operation (as `routes.resolve` names it) is one IAM action on the bucket
(``arn:aws:s3:::bucket``), on the object (``arn:aws:s3:::bucket/key``) or on ``*``
(ListAllMyBuckets, the account's public access block), its ``…Version…`` form when the
request names a version; the keys are S3's (``s3:prefix``, ``s3:delimiter``,
``s3:max-keys``, ``s3:x-amz-acl``, ``s3:x-amz-copy-source``, ``s3:versionid``,
``s3:RequestObjectTag/…``, ``s3:ExistingObjectTag/…``) and the global ones of the call. A
copy needs to read its source as well; a multi-object delete is judged key by key
(`S3Authorization.allows`), a browser POST once its form names the key (`require`).
Object Lock headers also need ``s3:PutObjectRetention``/``s3:PutObjectLegalHold``, a
bypass of governance retention ``s3:BypassGovernanceRetention`` (`_lock_actions`).

A bucket without a policy: only callers that are not an account's root are evaluated
(anonymous requests stay with the ACLs); within its own account an IAM user needs an
identity-policy Allow, and the ACL and ownership checks of the handlers decide across
accounts. A bucket with a policy (`bucket_policy`): every caller is evaluated against it
as the resource's policy, root and anonymous ones too, as AWS does:

- an explicit Deny in any policy refuses (the bucket owner's root may still read, change
  and delete the bucket policy);
- an Allow that the engine accepts with the bucket policy among its reasons (in the
  owner's account: the bucket policy or the identity policy; across accounts: the bucket
  policy and the caller's identity policy, root needing none) stands in for the ACLs: the
  handlers then skip the bucket's ACL and those of objects the bucket owner owns
  (`context.Access`); an object another account owns still needs its own ACL;
- otherwise the call is judged as without a policy (identity policies, then ACLs).

The public access block in force (`public_access`) comes along: ``RestrictPublicBuckets``
ignores a public policy's Allows for callers outside the owner's account,
``IgnorePublicAcls`` and ``BlockPublicAcls`` are applied by the ACL checks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote

from karri import policy
from karri.api.auth.authorizer import PolicySource, decide, refusal_reason
from karri.api.auth.credentials import Principal
from karri.api.s3 import bucket_policy, public_access
from karri.api.s3.context import ANY_ACCESS, Access, Request
from karri.api.s3.public_access import NO_BLOCK, PublicAccessBlock
from karri.policy.context import KeyValue
from karri.walrus import BucketInfo, S3Error, Walrus


class ObjectHeads(Protocol):
    """Walrus's object metadata, for ``s3:ExistingObjectTag/…``."""

    def head_object(self, bucket: str, key: str, version_id: str | None = None) -> Any: ...


@dataclass(frozen=True)
class Operation:
    action: str  # s3:Action
    level: str  # "object", "bucket" or "*"
    versioned: str | None = None  # the action when the request names a version
    existing_tags: bool = False  # s3:ExistingObjectTag/… applies


def _object(action: str, versioned: str | None = None, tags: bool = False) -> Operation:
    return Operation(action, "object", versioned, tags)


def _bucket(action: str) -> Operation:
    return Operation(action, "bucket")


OPERATIONS: dict[str, Operation] = {
    "ListBuckets": Operation("s3:ListAllMyBuckets", "*"),
    "CreateBucket": _bucket("s3:CreateBucket"),
    "HeadBucket": _bucket("s3:ListBucket"),
    "DeleteBucket": _bucket("s3:DeleteBucket"),
    "ListObjects": _bucket("s3:ListBucket"),
    "ListObjectsV2": _bucket("s3:ListBucket"),
    "ListVersions": _bucket("s3:ListBucketVersions"),
    "ListUploads": _bucket("s3:ListBucketMultipartUploads"),
    "GetLocation": _bucket("s3:GetBucketLocation"),
    "GetBucketAcl": _bucket("s3:GetBucketAcl"),
    "PutBucketAcl": _bucket("s3:PutBucketAcl"),
    "GetVersioning": _bucket("s3:GetBucketVersioning"),
    "PutVersioning": _bucket("s3:PutBucketVersioning"),
    "GetBucketTagging": _bucket("s3:GetBucketTagging"),
    "PutBucketTagging": _bucket("s3:PutBucketTagging"),
    "DeleteBucketTagging": _bucket("s3:PutBucketTagging"),
    "GetBucketLifecycleConfiguration": _bucket("s3:GetLifecycleConfiguration"),
    "PutBucketLifecycleConfiguration": _bucket("s3:PutLifecycleConfiguration"),
    "DeleteBucketLifecycle": _bucket("s3:PutLifecycleConfiguration"),
    "GetObjectAttributes": _object(
        "s3:GetObjectAttributes", "s3:GetObjectVersionAttributes", tags=True
    ),
    "GetBucketCors": _bucket("s3:GetBucketCORS"),
    "PutBucketCors": _bucket("s3:PutBucketCORS"),
    "DeleteBucketCors": _bucket("s3:PutBucketCORS"),
    "GetBucketOwnershipControls": _bucket("s3:GetBucketOwnershipControls"),
    "PutBucketOwnershipControls": _bucket("s3:PutBucketOwnershipControls"),
    "DeleteBucketOwnershipControls": _bucket("s3:PutBucketOwnershipControls"),
    "GetObject": _object("s3:GetObject", "s3:GetObjectVersion", tags=True),
    "HeadObject": _object("s3:GetObject", "s3:GetObjectVersion", tags=True),
    "PutObject": _object("s3:PutObject"),
    "CopyObject": _object("s3:PutObject"),
    "DeleteObject": _object("s3:DeleteObject", "s3:DeleteObjectVersion"),
    "GetObjectAcl": _object("s3:GetObjectAcl", "s3:GetObjectVersionAcl", tags=True),
    "PutObjectAcl": _object("s3:PutObjectAcl", "s3:PutObjectVersionAcl", tags=True),
    "GetObjectTagging": _object("s3:GetObjectTagging", "s3:GetObjectVersionTagging", tags=True),
    "PutObjectTagging": _object("s3:PutObjectTagging", "s3:PutObjectVersionTagging", tags=True),
    "DeleteObjectTagging": _object(
        "s3:DeleteObjectTagging", "s3:DeleteObjectVersionTagging", tags=True
    ),
    "CreateUpload": _object("s3:PutObject"),
    "UploadPart": _object("s3:PutObject"),
    "UploadPartCopy": _object("s3:PutObject"),
    "CompleteUpload": _object("s3:PutObject"),
    "AbortUpload": _object("s3:AbortMultipartUpload"),
    "ListParts": _object("s3:ListMultipartUploadParts"),
    "GetObjectRetention": _object("s3:GetObjectRetention"),
    "PutObjectRetention": _object("s3:PutObjectRetention"),
    "GetObjectLegalHold": _object("s3:GetObjectLegalHold"),
    "PutObjectLegalHold": _object("s3:PutObjectLegalHold"),
    "GetObjectLockConfiguration": _bucket("s3:GetBucketObjectLockConfiguration"),
    "PutObjectLockConfiguration": _bucket("s3:PutBucketObjectLockConfiguration"),
    "GetBucketPolicy": _bucket("s3:GetBucketPolicy"),
    "PutBucketPolicy": _bucket("s3:PutBucketPolicy"),
    "DeleteBucketPolicy": _bucket("s3:DeleteBucketPolicy"),
    "GetBucketPolicyStatus": _bucket("s3:GetBucketPolicyStatus"),
    "GetPublicAccessBlock": _bucket("s3:GetBucketPublicAccessBlock"),
    "PutPublicAccessBlock": _bucket("s3:PutBucketPublicAccessBlock"),
    "DeletePublicAccessBlock": _bucket("s3:PutBucketPublicAccessBlock"),
    "GetAccountPublicAccessBlock": Operation("s3:GetAccountPublicAccessBlock", "*"),
    "PutAccountPublicAccessBlock": Operation("s3:PutAccountPublicAccessBlock", "*"),
    "DeleteAccountPublicAccessBlock": Operation("s3:PutAccountPublicAccessBlock", "*"),
}
# Object Lock: what a write's lock headers (or a bypass of governance retention) also need.
LOCK_ACTIONS = {
    "x-amz-object-lock-mode": "s3:PutObjectRetention",
    "x-amz-object-lock-retain-until-date": "s3:PutObjectRetention",
    "x-amz-object-lock-legal-hold": "s3:PutObjectLegalHold",
}
LOCKING = frozenset({"PutObject", "CopyObject", "CreateUpload"})
BYPASSING = frozenset({"DeleteObject", "PutObjectRetention"})
BYPASS = "s3:BypassGovernanceRetention"
# The bucket owner's root may always use these, whatever the bucket policy says (AWS: so
# that a policy denying everyone can still be repaired).
OWNER_ROOT_ALWAYS = frozenset({"s3:getbucketpolicy", "s3:putbucketpolicy", "s3:deletebucketpolicy"})
# Bucket configurations karri does not keep (routes.ABSENT_CONFIG): IAM's action for each
# method (HEAD reads; DELETE is the Put action where AWS has no Delete of its own).
CONFIGURATIONS = {
    "website": ("s3:GetBucketWebsite", "s3:PutBucketWebsite", "s3:DeleteBucketWebsite"),
    "encryption": (
        "s3:GetEncryptionConfiguration",
        "s3:PutEncryptionConfiguration",
        "s3:PutEncryptionConfiguration",
    ),
    "replication": (
        "s3:GetReplicationConfiguration",
        "s3:PutReplicationConfiguration",
        "s3:PutReplicationConfiguration",
    ),
}
for _name, (_get, _put, _delete) in CONFIGURATIONS.items():
    for _method, _action in (("GET", _get), ("HEAD", _get), ("PUT", _put), ("DELETE", _delete)):
        OPERATIONS[f"{_method}Bucket{_name}"] = _bucket(_action)
# Sub-resources karri cannot set, whose GET says "none set" (routes.UNSET_CONFIG).
UNSET_CONFIGURATIONS = {
    "logging": "s3:GetBucketLogging",
    "notification": "s3:GetBucketNotification",
    "requestPayment": "s3:GetBucketRequestPayment",
    "accelerate": "s3:GetAccelerateConfiguration",
}
for _name, _action in UNSET_CONFIGURATIONS.items():
    OPERATIONS[f"GETBucket{_name}"] = _bucket(_action)
# Checked elsewhere: key by key (DeleteObjects), once the form is read (PostObject).
LATER = frozenset({"DeleteObjects", "PostObject"})
EXISTING_TAG = "s3:existingobjecttag/"
LIST_KEYS = {"prefix": "s3:prefix", "delimiter": "s3:delimiter", "max-keys": "s3:max-keys"}


def evaluated(principal: Principal | None) -> bool:
    """Whether a caller's requests are put to the engine without a bucket policy: signed,
    and not an account's root."""
    return principal is not None and not principal.is_root


# The engine's anonymous caller, with no policies of its own.
ANONYMOUS = Principal("", "", "", identity=policy.Principal.anonymous())
ACL_HEADERS = ("x-amz-acl", "x-amz-grant-")
COPIES = ("CopyObject", "UploadPartCopy")
READS = frozenset({"s3:GetObject", "s3:GetObjectVersion"})  # a missing key answers NoSuchKey


class S3Authorization:
    """``check`` raises AccessDenied for a call the policies refuse, and leaves on the
    request what the handlers' ACL checks need (`context.Access`)."""

    def __init__(self, policies: PolicySource) -> None:
        self.policies = policies

    def blocking(self, request: Request, operation: str) -> bool:
        """Whether ``check`` may wait on the database (then it runs off the event loop):
        the bucket's record or its owner's settings are not cached, or the object's tags
        must be read."""
        if not request.bucket or operation not in OPERATIONS:
            return False
        bucket = request.walrus.peek_bucket(request.bucket)
        if bucket is None:
            return True
        settings = bucket.config(bucket_policy.CONFIG) or _needs_block(request, bucket)
        if settings and not request.walrus.accounts.fresh(bucket.owner):
            return True
        return self._reads_tags(request, OPERATIONS[operation], bucket)

    def reads_tags(self, request: Request, operation: str) -> bool:
        """Whether ``check`` reads the object's tags (Walrus, the database)."""
        found = OPERATIONS.get(operation)
        if found is None:
            return False
        return self._reads_tags(request, found, self._bucket(request.walrus, request.bucket))

    def _reads_tags(self, request: Request, found: Operation, bucket: BucketInfo | None) -> bool:
        """Whether the caller's policies or the bucket's ask about
        ``s3:ExistingObjectTag/…`` (then the object's tags are read)."""
        if not found.existing_tags:
            return False
        documents = list(self._identity(request.identity.key))
        resource_policy = bucket_policy.stored(bucket) if bucket is not None else None
        if resource_policy is not None:
            documents.append(resource_policy)
        principal = request.identity.key
        if principal is not None:
            documents.extend(principal.session_policies)
        return _mentions(documents, EXISTING_TAG)

    def check(self, request: Request, operation: str) -> None:
        found = OPERATIONS.get(operation)
        principal = request.identity.key
        if found is None:
            # LATER's operations are checked by their handlers (the bucket's side is noted
            # for their ACL checks); the sub-resources karri answers NotImplemented for
            # (routes.UNSUPPORTED) do nothing to authorize.
            if operation in LATER and request.bucket:
                bucket = self._bucket(request.walrus, request.bucket)
                if bucket is not None:
                    request.access = Access(bucket.owner, False, self._block(request, bucket))
            return
        creating = operation == "CreateBucket"  # another's bucket of that name is no matter
        bucket = None
        if found.level != "*" and not creating:
            bucket = self._bucket(request.walrus, request.bucket)
        copying = "x-amz-copy-source" in request.header and operation in COPIES
        if creating and principal is not None and _writes_acl(request):
            block = _account_block(request.walrus, principal.account_id)
            request.access = Access(block=block)  # BlockPublicAcls at creation
        plain = bucket is not None and not copying and not evaluated(principal)
        if plain and bucket_policy.stored(bucket) is None:  # the hot path: ACLs only
            request.access = Access(bucket.owner, False, self._block(request, bucket))
            return
        version = request.query.get("versionId")
        action = found.versioned if version is not None and found.versioned else found.action
        keys = _keys(request, found)
        if version is not None:
            keys["s3:versionid"] = version
        if self._reads_tags(request, found, bucket):
            keys.update(_existing_tags(request, version))
        key = request.key if found.level == "object" else None
        target = request.bucket if found.level != "*" else None
        access = self._judge(request, principal, action, target, key, bucket, keys)
        if not creating:
            request.access = access
        if copying:
            self._check_copy_source(request, principal, keys)
        for extra in _lock_actions(request, operation):
            self._judge(request, principal, extra, target, key, bucket, keys)

    def allows(self, request: Request, action: str, key: str) -> bool:
        """Whether the caller may ``action`` on ``key`` of the request's bucket (a bucket
        policy's Allow does not stand in for the bucket's ACL here: its Deny does count)."""
        bucket = self._bucket(request.walrus, request.bucket)
        try:
            self._judge(
                request, request.identity.key, action, request.bucket, key, bucket, _keys(request)
            )
        except S3Error:
            return False
        return True

    def grants(self, request: Request, action: str) -> bool:
        """Whether the policies let the caller ``action`` on the request's object, no ACL
        standing in (GET/HEAD show a version's lock only to a caller allowed
        ``s3:GetObjectRetention``/``s3:GetObjectLegalHold``): the bucket policy's Allow,
        or the caller is of the bucket's account (its root, or a user its identity
        policies allow); an explicit Deny refuses."""
        bucket = self._bucket(request.walrus, request.bucket)
        if bucket is None:
            return False
        keys = _keys(request)
        version = request.query.get("versionId")
        if version is not None:
            keys["s3:versionid"] = version
        principal = request.identity.key
        try:
            access = self._judge(
                request, principal, action, request.bucket, request.key, bucket, keys
            )
        except S3Error:
            return False
        return access.by_policy or (principal is not None and principal.account_id == bucket.owner)

    def require(self, request: Request, principal: Principal | None, action: str, key: str) -> None:
        """AccessDenied unless ``principal`` (who signed, perhaps a form) may ``action``;
        the bucket's side is left on the request for the handler's ACL check."""
        bucket = self._bucket(request.walrus, request.bucket)
        request.access = self._judge(
            request, principal, action, request.bucket, key, bucket, _keys(request)
        )

    def _check_copy_source(
        self, request: Request, principal: Principal | None, keys: dict[str, KeyValue]
    ) -> None:
        path, _, query = request.header["x-amz-copy-source"].partition("?")
        source, _, key = unquote(path).lstrip("/").partition("/")
        if not source or not key:
            return  # malformed: the handler says how
        version = dict(parse_qsl(query)).get("versionId")
        action = "s3:GetObjectVersion" if version else "s3:GetObject"
        bucket = self._bucket(request.walrus, source)
        request.source_access = self._judge(request, principal, action, source, key, bucket, keys)

    # -- the decision -----------------------------------------------------------------

    def _judge(
        self,
        request: Request,
        principal: Principal | None,
        action: str,
        target: str | None,
        key: str | None,
        bucket: BucketInfo | None,
        keys: Mapping[str, KeyValue],
    ) -> Access:
        """The bucket's side of a call (see the module's docstring), or AccessDenied."""
        resource_policy = bucket_policy.stored(bucket) if bucket is not None else None
        if bucket is None or resource_policy is None:
            if evaluated(principal):
                assert principal is not None
                self._require(principal, action, target, key, keys)
            if bucket is None:
                return ANY_ACCESS
            return Access(bucket.owner, False, self._block(request, bucket))
        caller = principal or ANONYMOUS
        block = block_in_force(request.walrus, bucket)
        resource = policy.Resource(
            policy.s3_arn(bucket.name, key), account=bucket.owner, policy=resource_policy
        )
        identity = self._identity(principal)
        decision = decide(identity, caller, action, [resource], keys)
        owner_root = (
            principal is not None and principal.is_root and principal.account_id == bucket.owner
        )
        if decision.verdict is policy.Verdict.EXPLICIT_DENY:
            if owner_root and action.lower() in OWNER_ROOT_ALWAYS:
                return Access(bucket.owner, False, block)
            raise _denied(decision, identity, caller)
        restricted = (
            block.RestrictPublicBuckets
            and caller.account_id != bucket.owner
            and policy.is_public(resource_policy)
        )
        lists = False
        if action in READS and not restricted:  # may a missing key say NoSuchKey?
            listing = policy.Resource(
                policy.s3_arn(bucket.name, None), account=bucket.owner, policy=resource_policy
            )
            lists = decide(identity, caller, "s3:ListBucket", [listing], keys).allowed
        if decision.allowed and not restricted:
            by_policy = any(m.policy is resource_policy for m in decision.matched)
            return Access(bucket.owner, by_policy, block, lists)
        if evaluated(principal):  # as without the policy: identity policies, then ACLs
            assert principal is not None
            self._require(principal, action, target, key, keys)
        return Access(bucket.owner, False, block, lists)

    def _require(
        self,
        principal: Principal,
        action: str,
        bucket: str | None,
        key: str | None,
        keys: Mapping[str, KeyValue],
    ) -> None:
        """AccessDenied unless the caller's own policies allow (no resource policy)."""
        identity = self._identity(principal)
        resource = _resource(bucket, key) if bucket is not None else policy.Resource()
        decision = decide(identity, principal, action, [resource], keys)
        if not decision.allowed:
            raise _denied(decision, identity, principal)

    def _identity(self, principal: Principal | None) -> tuple[policy.Policy, ...]:
        if principal is None or principal.is_root:
            return ()
        return self.policies.identity_policies(principal.caller)

    def _block(self, request: Request, bucket: BucketInfo) -> PublicAccessBlock:
        """The block in force, when the call is one it can touch (else none: the owner's
        calls without ACLs in them skip the account's settings)."""
        if not _needs_block(request, bucket):
            return NO_BLOCK
        return block_in_force(request.walrus, bucket)

    @staticmethod
    def _bucket(walrus: Walrus, name: str) -> BucketInfo | None:
        if not name:
            return None
        try:
            return walrus.get_bucket(name)
        except S3Error:
            return None  # the handler answers NoSuchBucket


def block_in_force(walrus: Walrus, bucket: BucketInfo) -> PublicAccessBlock:
    """The bucket's public access block ORed with its owner's account's."""
    own = PublicAccessBlock.of(bucket.config(public_access.CONFIG))
    return _account_block(walrus, bucket.owner) | own


def _account_block(walrus: Walrus, account: str) -> PublicAccessBlock:
    return PublicAccessBlock.of(walrus.account_config(account, public_access.CONFIG))


def _needs_block(request: Request, bucket: BucketInfo) -> bool:
    """Whether a public access block could change the call: a caller from outside the
    owner's account, or ACLs being written."""
    return request.principal != bucket.owner or _writes_acl(request)


def _writes_acl(request: Request) -> bool:
    """Whether the request sets an ACL (headers, or PutBucketAcl/PutObjectAcl's body)."""
    if request.method == "PUT" and "acl" in request.query:
        return True
    return any(name.startswith(ACL_HEADERS) for name in request.header)


def _denied(
    decision: policy.Decision, identity: Sequence[policy.Policy], principal: Principal
) -> S3Error:
    if principal is ANONYMOUS:
        return S3Error("AccessDenied", "Access Denied", 403)
    reason = refusal_reason(decision, identity, principal.session_policies, quote_resource=True)
    return S3Error("AccessDenied", reason, 403)


def bypasses(request: Request) -> bool:
    """Whether the request asks to bypass governance retention (Object Lock)."""
    return request.header.get("x-amz-bypass-governance-retention", "").strip().lower() == "true"


def object_lock_requested(request: Request) -> bool:
    """Whether a CreateBucket asks for Object Lock."""
    value = request.header.get("x-amz-bucket-object-lock-enabled", "")
    return value.strip().lower() == "true"


def _lock_actions(request: Request, operation: str) -> set[str]:
    """The Object Lock actions a request needs besides its own."""
    needed = set()
    if operation in LOCKING:
        needed = {action for name, action in LOCK_ACTIONS.items() if name in request.header}
    if operation in BYPASSING and bypasses(request):
        needed.add(BYPASS)
    if operation == "CreateBucket" and object_lock_requested(request):
        needed |= {"s3:PutBucketObjectLockConfiguration", "s3:PutBucketVersioning"}
    return needed


def _resource(bucket: str, key: str | None) -> policy.Resource:
    """The resource as the caller's own policies see it (no resource policy)."""
    return policy.Resource(policy.s3_arn(bucket, key))


def _keys(request: Request, operation: Operation | None = None) -> dict[str, KeyValue]:
    scope = request.scope
    client = scope.get("client")
    keys = policy.environment_keys(
        source_ip=client[0] if client else None,
        secure_transport=scope.get("scheme") == "https",
    )
    if operation is None:
        return keys
    if operation.action in ("s3:ListBucket", "s3:ListBucketVersions"):
        for name, key in LIST_KEYS.items():
            if name in request.query:
                keys[key] = request.query[name]
    header = request.header
    if "x-amz-acl" in header:
        keys["s3:x-amz-acl"] = header["x-amz-acl"]
    if "x-amz-copy-source" in header:
        keys["s3:x-amz-copy-source"] = header["x-amz-copy-source"]
    if "x-amz-metadata-directive" in header:
        keys["s3:x-amz-metadata-directive"] = header["x-amz-metadata-directive"]
    if operation.action == "s3:PutObject":  # conditional writes
        for name in ("if-match", "if-none-match"):
            if name in header:
                keys[f"s3:{name}"] = header[name]
    tagging = header.get("x-amz-tagging")
    if tagging is not None and operation.action == "s3:PutObject":
        tags = dict(parse_qsl(tagging, keep_blank_values=True))
        keys.update(policy.tag_keys("s3:RequestObjectTag", tags))
        keys["s3:RequestObjectTagKeys"] = list(tags)
    return keys


def _mentions(documents: Sequence[policy.Policy], prefix: str) -> bool:
    """Whether any condition of ``documents`` names a key starting with ``prefix``."""
    return any(
        key.lower().startswith(prefix)
        for document in documents
        for statement in document.statements
        for pairs in statement.source.get("Condition", {}).values()
        if isinstance(pairs, dict)
        for key in pairs
    )


def _existing_tags(request: Request, version: str | None) -> dict[str, KeyValue]:
    """``s3:ExistingObjectTag/…`` of the object (none when it does not exist)."""
    heads: ObjectHeads = request.walrus
    try:
        info = heads.head_object(request.bucket, request.key, version)
    except S3Error:
        return {}
    return dict(policy.tag_keys("s3:ExistingObjectTag", info.tags or {}))
