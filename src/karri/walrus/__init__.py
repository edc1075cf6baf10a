"""Walrus, karri's object store: buckets and objects with S3's semantics.

This package's names are its public face: other components use it through
``cloud.walrus`` (a ``Walrus``), and the S3 API is one more client that imports nothing
below this module (``tests/unit/test_layering.py`` holds it to that). It imports neither
``karri.api`` nor ``karri.cloud``. ``acls`` is the ACL vocabulary (permissions, grantees,
canned ACLs) that callers speak to it in, ``object_lock`` Object Lock's (modes, ``Lock``).
"""

from karri.walrus import acl as acls
from karri.walrus import locks as object_lock
from karri.walrus.acl import ALL_USERS, AUTHENTICATED, CLOUD, SYSTEM_ACCOUNT
from karri.walrus.body import INLINE_MAX, ObjectBody, PutOptions
from karri.walrus.checksums import ALGORITHMS, CRC_BITS, Digests
from karri.walrus.claims import CHECKSUM_TYPES, ClaimedChecksum
from karri.walrus.errors import (
    S3Error,
    access_denied,
    invalid_argument,
    precondition_failed,
)
from karri.walrus.facade import Walrus, blob_store
from karri.walrus.lifecycle import CONFIG as LIFECYCLE
from karri.walrus.lifecycle import (
    Lifecycle,
    LifecycleRule,
    RuleFilter,
    Transition,
    lifecycle_from_json,
)
from karri.walrus.multipart import MAX_PART_NUMBER, RequestedPart
from karri.walrus.names import bundle_bucket, check_bucket_name, check_key
from karri.walrus.types import (
    OWNER_ENFORCED,
    OWNERSHIP,
    BucketInfo,
    DeleteResult,
    ListedObject,
    Listing,
    ObjectInfo,
    ObjectReader,
    PartInfo,
    UploadInfo,
    byte_ranges,
)

__all__ = [
    "ALGORITHMS",
    "ALL_USERS",
    "AUTHENTICATED",
    "CHECKSUM_TYPES",
    "CLOUD",
    "CRC_BITS",
    "INLINE_MAX",
    "LIFECYCLE",
    "MAX_PART_NUMBER",
    "OWNERSHIP",
    "OWNER_ENFORCED",
    "SYSTEM_ACCOUNT",
    "BucketInfo",
    "ClaimedChecksum",
    "DeleteResult",
    "Digests",
    "Lifecycle",
    "LifecycleRule",
    "ListedObject",
    "Listing",
    "ObjectBody",
    "ObjectInfo",
    "ObjectReader",
    "PartInfo",
    "PutOptions",
    "RequestedPart",
    "RuleFilter",
    "S3Error",
    "Transition",
    "UploadInfo",
    "Walrus",
    "access_denied",
    "acls",
    "blob_store",
    "bundle_bucket",
    "byte_ranges",
    "check_bucket_name",
    "check_key",
    "invalid_argument",
    "lifecycle_from_json",
    "object_lock",
    "precondition_failed",
]
