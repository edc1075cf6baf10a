"""Small request documents (XML bodies), read whole and checked like any payload."""

from __future__ import annotations

from karri.api.s3.context import Request
from karri.api.s3.payload import BodyCheck, ClientGone, requested_checksum
from karri.walrus import Digests, S3Error

MAX_DOCUMENT = 2 * 1024 * 1024


def digests_for(request: Request) -> tuple[Digests, str]:
    payload = request.identity.payload
    algorithm = requested_checksum(request.header, payload.trailer)
    digests = Digests(sha256=payload.sha256 is not None, checksums=[algorithm] if algorithm else [])
    return digests, algorithm


async def read_document(request: Request, limit: int = MAX_DOCUMENT) -> bytes:
    """The whole (decoded) body; ``MaxMessageLengthExceeded`` past ``limit``."""
    digests, _algorithm = digests_for(request)
    buffer = bytearray()

    def sink(data) -> None:
        digests.update(data)
        buffer.extend(data)
        if len(buffer) > limit:
            raise S3Error("MaxMessageLengthExceeded", "Your request was too big.", 400)

    check = BodyCheck(request.identity.payload, request.header, sink, digests)
    received = 0
    more = True
    while more:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        received += len(chunk)
        if received > limit * 2:
            raise S3Error("MaxMessageLengthExceeded", "Your request was too big.", 400)
        check.feed(chunk)
        more = message.get("more_body", False)
    check.finish()
    return bytes(buffer)
