"""What S3 accepts as bucket names and object keys."""

from __future__ import annotations

import re

from karri.walrus.errors import S3Error, invalid_argument

MAX_KEY_BYTES = 1024
# Bucket names the cloud keeps for itself (karri-images, karri-ebs-snapshots, ...): no
# account may take one first and break the component that needs it. The exception is
# BUNDLES_PREFIX + an access key id (lower case): where `karri images bundle` puts the
# bundles of whoever holds that key, made by that key.
SYSTEM_PREFIX = "karri-"
BUNDLES_PREFIX = "karri-bundles-"
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IP = re.compile(r"^\d+\.\d+\.\d+\.\d+$")


def valid_bucket_name(name: str) -> bool:
    return bool(
        _BUCKET.match(name)
        and ".." not in name
        and ".-" not in name
        and "-." not in name
        and not _IP.match(name)
        and not name.startswith(("xn--", "sthree-"))
        and not name.endswith(("-s3alias", "--ol-s3"))
    )


def bundle_bucket(access_key_id: str) -> str:
    return BUNDLES_PREFIX + access_key_id.lower()


def check_bucket_name(name: str) -> None:
    if not valid_bucket_name(name):
        raise S3Error("InvalidBucketName", "The specified bucket is not valid.", 400)


def check_key(key: str) -> None:
    if not key:
        raise invalid_argument("Object keys must not be empty")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise S3Error("KeyTooLongError", "Your key is too long", 400)
    if "\x00" in key:
        raise invalid_argument("Object keys must not contain NUL")
