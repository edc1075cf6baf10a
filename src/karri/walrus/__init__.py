"""Walrus, karri's object store: buckets and objects with S3's semantics.

This package's names are its public face: other components use it through
``cloud.walrus`` (a ``Walrus``), and the S3 API is one more client that imports nothing
below this module (``tests/unit/test_layering.py`` holds it to that). It imports neither
``karri.api`` nor ``karri.cloud``. ``acls`` is the ACL vocabulary (permissions, grantees,
canned ACLs) that callers speak to it in.
"""

from karri.walrus import acl as acls
from karri.walrus.acl import ALL_USERS, AUTHENTICATED, CLOUD, SYSTEM_ACCOUNT
from karri.walrus.body import INLINE_MAX, ObjectBody, PutOptions
from karri.walrus.checksums import ALGORITHMS, CRC_BITS, Digests
from karri.walrus.errors import (
    S3Error,
    access_denied,
    invalid_argument,
    precondition_failed,
)
from karri.walrus.facade import Walrus
from karri.walrus.multipart import MAX_PART_NUMBER, RequestedPart
from karri.walrus.names import check_bucket_name, check_key
from karri.walrus.types import (
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
    "CLOUD",
    "CRC_BITS",
    "INLINE_MAX",
    "MAX_PART_NUMBER",
    "SYSTEM_ACCOUNT",
    "BucketInfo",
    "DeleteResult",
    "Digests",
    "ListedObject",
    "Listing",
    "ObjectBody",
    "ObjectInfo",
    "ObjectReader",
    "PartInfo",
    "PutOptions",
    "RequestedPart",
    "S3Error",
    "UploadInfo",
    "Walrus",
    "access_denied",
    "acls",
    "byte_ranges",
    "check_bucket_name",
    "check_key",
    "invalid_argument",
    "precondition_failed",
]
