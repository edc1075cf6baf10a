"""Walrus, karri's object store: buckets and objects with S3's semantics.

Other components use it through ``cloud.walrus`` (a ``Walrus``); the S3 API is one more
client of the same interface. It imports neither ``karri.api`` nor ``karri.cloud``.
"""

from karri.walrus.acl import ALL_USERS, AUTHENTICATED, CLOUD, SYSTEM_ACCOUNT
from karri.walrus.errors import S3Error
from karri.walrus.facade import Walrus
from karri.walrus.types import BucketInfo, DeleteResult, Listing, ObjectInfo, ObjectReader

__all__ = [
    "ALL_USERS",
    "AUTHENTICATED",
    "CLOUD",
    "SYSTEM_ACCOUNT",
    "BucketInfo",
    "DeleteResult",
    "Listing",
    "ObjectInfo",
    "ObjectReader",
    "S3Error",
    "Walrus",
]
