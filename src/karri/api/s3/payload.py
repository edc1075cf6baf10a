"""Reading request bodies: aws-chunked framing, chunk and trailer signatures, and every
integrity check S3 makes (x-amz-content-sha256, Content-MD5, x-amz-checksum-*).

The decoding is synchronous and runs next to the disk writes in a worker thread; the
event loop only moves network bytes (see ``pump``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable
from concurrent.futures import Executor

from karri.api.auth.matching import signature_matches
from karri.api.s3.auth import ChunkSigning, Payload
from karri.numbers import hexadecimal
from karri.walrus import ALGORITHMS, Digests, S3Error

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_CHUNK_HEADER = 4096
MAX_TRAILER = 16 * 1024
PUMP_BATCH = 4 * 1024 * 1024
SMALL_BODY = 256 * 1024  # bodies up to this size are read whole, then written in one go


def incomplete() -> S3Error:
    return S3Error(
        "IncompleteBody",
        "You did not provide the number of bytes specified by the Content-Length HTTP header",
        400,
    )


def bad_chunk(message: str = "Invalid chunked upload encoding") -> S3Error:
    return S3Error("InvalidRequest", message, 400)


def signature_mismatch() -> S3Error:
    return S3Error(
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method.",
        403,
    )


class ChunkedDecoder:
    """aws-chunked: ``hex-size[;chunk-signature=sig]\\r\\n data \\r\\n`` ... ``0`` then
    optional trailer lines and an empty line. Hands the payload to ``out``."""

    def __init__(self, out: Callable[[memoryview], None], signing: ChunkSigning | None) -> None:
        self.out = out
        self.signing = signing
        self.previous = signing.seed if signing else ""
        self.trailers: dict[str, str] = {}
        self.done = False
        self._line = bytearray()
        self._remaining = 0  # payload bytes left in the current chunk
        self._state = "size"  # size, data, crlf, trailer
        self._chunk_sig: str | None = None
        self._hash = None
        self._trailer_bytes = 0

    def feed(self, data: bytes | bytearray) -> None:
        view = memoryview(data)
        while view:
            if self.done:
                if bytes(view).strip(b"\r\n"):
                    raise bad_chunk("Data after the final chunk")
                return
            if self._state == "data":
                take = min(self._remaining, len(view))
                piece = view[:take]
                if self._hash is not None:
                    self._hash.update(piece)
                self.out(piece)
                self._remaining -= take
                view = view[take:]
                if self._remaining == 0:
                    self._state = "crlf"
                continue
            newline = bytes(view[: MAX_CHUNK_HEADER + 2]).find(b"\n")
            if newline < 0:
                self._line += view
                if len(self._line) > (
                    MAX_TRAILER if self._state == "trailer" else MAX_CHUNK_HEADER
                ):
                    raise bad_chunk()
                return
            self._line += view[:newline]
            view = view[newline + 1 :]
            line = bytes(self._line).rstrip(b"\r")
            self._line.clear()
            self._line_done(line)

    def _line_done(self, line: bytes) -> None:
        if self._state == "crlf":
            if line:
                raise bad_chunk()
            self._end_chunk()
            self._state = "size"
        elif self._state == "size":
            self._start_chunk(line)
        elif self._state == "trailer":
            self._trailer_bytes += len(line)
            if self._trailer_bytes > MAX_TRAILER:
                raise bad_chunk("Trailer too large")
            if not line:
                self._finish_trailer()
                return
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep:
                raise bad_chunk("Malformed trailer")
            self.trailers[name.strip().lower()] = value.strip()

    def _start_chunk(self, line: bytes) -> None:
        size_text, _, extension = line.partition(b";")
        size = hexadecimal(size_text.decode("latin-1"))
        if size is None:
            raise bad_chunk()
        self._chunk_sig = None
        if extension:
            name, _, value = extension.decode("latin-1").partition("=")
            if name.strip() == "chunk-signature":
                self._chunk_sig = value.strip()
        if self.signing is not None and not self._chunk_sig:
            raise signature_mismatch()
        self._hash = hashlib.sha256() if self.signing is not None else None
        self._remaining = size
        if size == 0:
            self._end_chunk()
            self._state = "trailer"
        else:
            self._state = "data"

    def _end_chunk(self) -> None:
        if self.signing is None:
            return
        digest = self._hash.hexdigest() if self._hash is not None else EMPTY_SHA256
        text = (
            f"AWS4-HMAC-SHA256-PAYLOAD\n{self.signing.timestamp}\n{self.signing.scope}\n"
            f"{self.previous}\n{EMPTY_SHA256}\n{digest}"
        )
        expected = hmac.new(self.signing.key, text.encode(), "sha256").hexdigest()
        if not signature_matches(expected, self._chunk_sig or ""):
            raise signature_mismatch()
        self.previous = expected

    def _finish_trailer(self) -> None:
        signature = self.trailers.pop("x-amz-trailer-signature", None)
        if self.signing is not None and self.trailers:
            canonical = "".join(f"{k}:{v}\n" for k, v in self.trailers.items())
            text = (
                f"AWS4-HMAC-SHA256-TRAILER\n{self.signing.timestamp}\n{self.signing.scope}\n"
                f"{self.previous}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
            )
            expected = hmac.new(self.signing.key, text.encode(), "sha256").hexdigest()
            if not signature_matches(expected, signature or ""):
                raise signature_mismatch()
        self.done = True

    def close(self) -> None:
        if not self.done:
            if self._state == "trailer" and not self._line:
                self._finish_trailer()  # a final CRLF some clients leave out
                return
            raise incomplete()


class BodyCheck:
    """Feeds the payload to ``sink`` and, at the end, checks it against every claim."""

    def __init__(
        self,
        payload: Payload,
        header: dict[str, str],
        sink: Callable[[memoryview | bytes], None],
        digests: Digests,
    ) -> None:
        self.payload = payload
        self.header = header
        self.digests = digests
        self.sink = sink
        self.size = 0
        self.checksum = requested_checksum(header, payload.trailer)
        self._decoder = ChunkedDecoder(self._out, payload.signing) if payload.chunked else None

    def _out(self, data) -> None:
        self.size += len(data)
        self.sink(data)

    def feed(self, data: bytes | bytearray) -> None:
        if self._decoder is not None:
            self._decoder.feed(data)
        else:
            self._out(data)

    def finish(self) -> dict[str, str]:
        """Run every check; returns the verified flexible checksums (algorithm -> value)."""
        trailers: dict[str, str] = {}
        if self._decoder is not None:
            self._decoder.close()
            trailers = self._decoder.trailers
            declared = self.header.get("x-amz-decoded-content-length")
            if declared is not None and declared != str(self.size):
                raise incomplete()
        if self.payload.sha256 is not None and self.digests.sha256_hex() != self.payload.sha256:
            raise S3Error(
                "XAmzContentSHA256Mismatch",
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
                400,
            )
        md5 = self.header.get("content-md5")
        if md5 is not None:
            try:
                expected = base64.b64decode(md5, validate=True)
            except (binascii.Error, ValueError):
                expected = b""
            if len(expected) != 16:
                raise S3Error("InvalidDigest", "The Content-MD5 you specified was invalid.", 400)
            if expected != self.digests.md5.digest():
                raise S3Error(
                    "BadDigest",
                    "The Content-MD5 you specified did not match what we received.",
                    400,
                )
        verified = {}
        if self.checksum:
            name = f"x-amz-checksum-{self.checksum.lower()}"
            value = trailers.get(name) or self.header.get(name)
            if value is None:
                raise S3Error("InvalidRequest", f"The {name} checksum is missing", 400)
            if value != self.digests.checksum(self.checksum):
                raise S3Error(
                    "BadDigest",
                    f"The {self.checksum} you specified did not match the calculated checksum.",
                    400,
                )
            verified[self.checksum] = value
        return verified


def requested_checksum(header: dict[str, str], trailer: bool) -> str:
    """The flexible checksum algorithm a request carries (header or trailer), or ""."""
    found = [a for a in ALGORITHMS if f"x-amz-checksum-{a.lower()}" in header]
    if trailer:
        declared = header.get("x-amz-trailer", "").strip().lower()
        if declared:
            if not declared.startswith("x-amz-checksum-"):
                raise S3Error("InvalidRequest", "Unsupported x-amz-trailer", 400)
            found.append(declared.removeprefix("x-amz-checksum-").upper())
    if len(set(found)) > 1:
        raise S3Error("InvalidRequest", "Expecting a single x-amz-checksum- header", 400)
    if found and found[0] not in ALGORITHMS:
        raise S3Error("InvalidRequest", "Unsupported checksum algorithm", 400)
    sdk_algorithm = header.get("x-amz-sdk-checksum-algorithm", "").upper()
    if sdk_algorithm and sdk_algorithm not in ALGORITHMS:
        raise S3Error("InvalidRequest", "Unsupported x-amz-sdk-checksum-algorithm", 400)
    if not found and sdk_algorithm and trailer:
        found.append(sdk_algorithm)
    return found[0] if found else ""


class ClientGone(Exception):
    """The client went away before sending the whole body."""


async def pump(
    receive, feed: Callable[[bytearray], None], executor: Executor, limit: int | None = None
) -> int:
    """Move the body from the network to ``feed`` (run in ``executor``), PUMP_BATCH at a time,
    overlapping the next receive with the previous feed. Returns the bytes received."""
    loop = asyncio.get_running_loop()
    pending: asyncio.Future | None = None
    buffer = bytearray()
    total = 0
    more = True
    try:
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone()
            body = message.get("body", b"")
            more = message.get("more_body", False)
            total += len(body)
            if limit is not None and total > limit:
                raise S3Error(
                    "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size", 400
                )
            buffer += body
            if len(buffer) >= PUMP_BATCH or (not more and buffer):
                if pending is not None:
                    await pending
                pending = loop.run_in_executor(executor, feed, buffer)
                buffer = bytearray()
        if pending is not None:
            await pending
            pending = None
    finally:
        if pending is not None:
            await asyncio.wait([pending])
    return total


async def read_small(receive, length: int) -> bytes:
    """A body of a declared small ``length``, read whole (a little slack for framing)."""
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        body = message.get("body", b"")
        size += len(body)
        if size > length:
            raise incomplete()
        chunks.append(body)
        more = message.get("more_body", False)
    return b"".join(chunks)
