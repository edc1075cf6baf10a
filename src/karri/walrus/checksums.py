"""Digests computed while bytes stream: the MD5 behind ETags, the SHA-256 a signer
declared, and S3's flexible checksums (CRC32, CRC32C, CRC64NVME, SHA1, SHA256)."""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Iterable

from awscrt import checksums as crt

ALGORITHMS = ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")
CRC_BITS = {"CRC32": 32, "CRC32C": 32, "CRC64NVME": 64}


class _Crc:
    def __init__(self, algorithm: str) -> None:
        self.algorithm = algorithm
        self.value = 0
        self._fn = {"CRC32": zlib.crc32, "CRC32C": crt.crc32c, "CRC64NVME": crt.crc64nvme}[
            algorithm
        ]

    def update(self, data) -> None:
        self.value = self._fn(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(CRC_BITS[self.algorithm] // 8, "big")


def new_checksum(algorithm: str):
    """A hashlib-like object for one of ``ALGORITHMS``."""
    if algorithm in CRC_BITS:
        return _Crc(algorithm)
    return hashlib.new(algorithm.lower())


def encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


class Digests:
    """MD5 always; SHA-256 (hex) and any flexible checksums when asked for."""

    def __init__(self, *, sha256: bool = False, checksums: Iterable[str] = ()) -> None:
        self.md5 = hashlib.md5()
        self.sha256 = hashlib.sha256() if sha256 else None
        self.checksums = {name: new_checksum(name) for name in checksums}

    def update(self, data) -> None:
        self.md5.update(data)
        if self.sha256 is not None:
            self.sha256.update(data)
        for checksum in self.checksums.values():
            checksum.update(data)

    @property
    def etag(self) -> str:
        return self.md5.hexdigest()

    def sha256_hex(self) -> str:
        assert self.sha256 is not None
        return self.sha256.hexdigest()

    def checksum(self, algorithm: str) -> str:
        """The base64 value of one flexible checksum, as S3 headers carry it."""
        return encode(self.checksums[algorithm].digest())


def multipart_etag(part_md5s: Iterable[str]) -> str:
    """S3's multipart ETag: the MD5 of the parts' binary MD5s, then ``-N``."""
    digests = [bytes.fromhex(value) for value in part_md5s]
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"


def composite_checksum(algorithm: str, part_values: Iterable[str]) -> str:
    """The COMPOSITE checksum of a multipart object: the checksum of the parts' checksums."""
    values = [base64.b64decode(value) for value in part_values]
    checksum = new_checksum(algorithm)
    checksum.update(b"".join(values))
    return f"{encode(checksum.digest())}-{len(values)}"


# CRC combination (zlib's crc32_combine, for any reflected CRC): the CRC of A+B from
# crc(A), crc(B) and len(B), so FULL_OBJECT checksums of multipart objects need no re-read.
_POLY = {"CRC32": 0xEDB88320, "CRC32C": 0x82F63B78, "CRC64NVME": 0x9A6C9329AC4BC9B5}


def _gf2_times(matrix: list[int], vector: int) -> int:
    total, index = 0, 0
    while vector:
        if vector & 1:
            total ^= matrix[index]
        vector >>= 1
        index += 1
    return total


def _gf2_square(matrix: list[int]) -> list[int]:
    return [_gf2_times(matrix, row) for row in matrix]


def crc_combine(algorithm: str, crc1: int, crc2: int, length2: int) -> int:
    if length2 == 0:
        return crc1
    bits = CRC_BITS[algorithm]
    odd = [_POLY[algorithm]] + [1 << i for i in range(bits - 1)]
    even = _gf2_square(odd)
    odd = _gf2_square(even)
    while True:
        even = _gf2_square(odd)
        if length2 & 1:
            crc1 = _gf2_times(even, crc1)
        length2 >>= 1
        if not length2:
            break
        odd = _gf2_square(even)
        if length2 & 1:
            crc1 = _gf2_times(odd, crc1)
        length2 >>= 1
        if not length2:
            break
    return crc1 ^ crc2


def full_object_crc(algorithm: str, parts: Iterable[tuple[str, int]]) -> str:
    """The FULL_OBJECT CRC of a multipart object from its parts' (base64 CRC, size)."""
    bits = CRC_BITS[algorithm]
    total = 0
    for value, size in parts:
        crc = int.from_bytes(base64.b64decode(value), "big")
        total = crc_combine(algorithm, total, crc, size)
    return encode(total.to_bytes(bits // 8, "big"))
