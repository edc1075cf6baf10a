"""The whole-object checksum of a multipart object, and the one a client claims for it
on CompleteMultipartUpload (``x-amz-checksum-<algorithm>`` and ``x-amz-checksum-type``):
checked against the object the parts make, never against the request's own body."""

from __future__ import annotations

from dataclasses import dataclass

from karri.walrus.checksums import CRC_BITS, composite_checksum, full_object_crc
from karri.walrus.errors import S3Error
from karri.walrus.types import PartInfo, UploadInfo

CHECKSUM_TYPES = ("COMPOSITE", "FULL_OBJECT")


@dataclass(frozen=True)
class ClaimedChecksum:
    """What a CompleteMultipartUpload request says of the object: ``algorithm`` and
    ``value`` ("" when only the type is given) and ``kind`` ("" when not given)."""

    algorithm: str = ""
    value: str = ""
    kind: str = ""


def _kind(upload: UploadInfo, claim: ClaimedChecksum | None, algorithm: str) -> str:
    if upload.checksum:
        return upload.checksum_type or "COMPOSITE"
    if claim is not None and claim.kind:
        return claim.kind
    if claim is not None and claim.value and "-" not in claim.value and algorithm in CRC_BITS:
        return "FULL_OBJECT"
    return "COMPOSITE"


def object_checksums(
    upload: UploadInfo, parts: list[PartInfo], claim: ClaimedChecksum | None = None
) -> dict[str, str]:
    """The object's checksum from its parts': the upload's algorithm, or (an upload made
    without one) the algorithm the client claims, when every part carries it."""
    algorithm = upload.checksum or (claim.algorithm if claim is not None else "")
    if not algorithm or not all(algorithm in part.checksums for part in parts):
        return {}
    values = [part.checksums[algorithm] for part in parts]
    if _kind(upload, claim, algorithm) == "FULL_OBJECT" and algorithm in CRC_BITS:
        sizes = [part.size for part in parts]
        return {algorithm: full_object_crc(algorithm, zip(values, sizes, strict=True))}
    return {algorithm: composite_checksum(algorithm, values)}


def bad_digest(message: str) -> S3Error:
    return S3Error("BadDigest", message, 400)


def check_claim(upload: UploadInfo, claim: ClaimedChecksum, computed: dict[str, str]) -> None:
    """BadDigest unless the claimed type and value are those of the object; InvalidRequest
    for an algorithm the upload was not made with."""
    if claim.kind and upload.checksum and claim.kind != (upload.checksum_type or "COMPOSITE"):
        raise bad_digest(
            f"The {claim.kind} checksum type you specified did not match the "
            f"{upload.checksum_type} checksum type of the upload."
        )
    if not claim.algorithm:
        return
    if upload.checksum and claim.algorithm != upload.checksum:
        raise S3Error(
            "InvalidRequest",
            f"The upload was created using a {upload.checksum.lower()} checksum. The complete "
            f"request must use the same checksum algorithm: {claim.algorithm.lower()} given.",
            400,
        )
    actual = computed.get(claim.algorithm)
    if actual is None:
        raise S3Error(
            "InvalidRequest",
            f"The {claim.algorithm.lower()} checksum of the object cannot be checked: not "
            "every part was uploaded with it.",
            400,
        )
    if claim.value not in (actual, actual.partition("-")[0]):
        raise bad_digest(
            f"The {claim.algorithm.lower()} you specified did not match the calculated checksum."
        )
