"""Digests computed while bytes stream: the MD5 behind ETags, the SHA-256 a signer
declared, and S3's flexible checksums (CRC32, CRC32C, CRC64NVME, SHA1, SHA256)."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial

from awscrt import checksums as crt
from isal import isal_zlib  # zlib's CRC32, three times as fast (and releases the GIL)

ALGORITHMS = ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")
CRC_BITS = {"CRC32": 32, "CRC32C": 32, "CRC64NVME": 64}


class _Crc:
    def __init__(self, algorithm: str) -> None:
        self.algorithm = algorithm
        self.value = 0
        self._fn = {"CRC32": isal_zlib.crc32, "CRC32C": crt.crc32c, "CRC64NVME": crt.crc64nvme}[
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


# Hashing and writing a large buffer release the GIL: MD5 alone runs at ~500 MiB/s on one
# core, so a MiB of an upload is hashed, checksummed and written on several cores at once.
PARALLEL_MIN = 256 * 1024
_POOL = ThreadPoolExecutor(max_workers=2 * (os.cpu_count() or 2), thread_name_prefix="walrus-hash")
_WAITERS = ThreadPoolExecutor(max_workers=16, thread_name_prefix="walrus-fsync")


def background(function: Callable[..., object], *args) -> Future:
    """Run ``function(*args)`` (a blocking wait such as an fsync) in another thread."""
    return _WAITERS.submit(function, *args)


def in_parallel(jobs: list[Callable[[], object]]) -> None:
    """Run ``jobs`` at once (the last in this thread) and wait for all of them."""
    futures = [_POOL.submit(job) for job in jobs[:-1]]
    try:
        jobs[-1]()
    finally:
        for future in futures:
            future.result()


def encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


class Digests:
    """MD5 always; SHA-256 (hex) and any flexible checksums when asked for."""

    def __init__(self, *, sha256: bool = False, checksums: Iterable[str] = ()) -> None:
        self.md5 = hashlib.md5()
        self.sha256 = hashlib.sha256() if sha256 else None
        self.checksums = {name: new_checksum(name) for name in checksums}

    def update(self, data) -> None:
        for job in self.jobs(data):
            job()

    def jobs(self, data) -> list[Callable[[], None]]:
        """One update per digest, to run in any order or at once (``in_parallel``)."""
        hashers = [self.md5, *self.checksums.values()]
        if self.sha256 is not None:
            hashers.append(self.sha256)
        return [partial(hasher.update, data) for hasher in hashers]

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
