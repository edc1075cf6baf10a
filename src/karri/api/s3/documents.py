"""Small request documents (XML bodies), read whole and checked like any payload."""

from __future__ import annotations

from karri.api.s3.context import Request
from karri.api.s3.payload import BodyCheck, ClientGone, requested_checksum
from karri.walrus import Digests, S3Error

MAX_DOCUMENT = 2 * 1024 * 1024


def digests_for(request: Request, header: dict[str, str] | None = None) -> tuple[Digests, str]:
    payload = request.identity.payload
    algorithm = requested_checksum(request.header if header is None else header, payload.trailer)
    digests = Digests(sha256=payload.sha256 is not None, checksums=[algorithm] if algorithm else [])
    return digests, algorithm


async def read_document(
    request: Request, limit: int = MAX_DOCUMENT, *, header: dict[str, str] | None = None
) -> bytes:
    """The whole (decoded) body; ``MaxMessageLengthExceeded`` past ``limit``. ``header``:
    the request's headers that speak of this body, when some speak of something else."""
    header = request.header if header is None else header
    digests, _algorithm = digests_for(request, header)
    buffer = bytearray()

    def sink(data) -> None:
        digests.update(data)
        buffer.extend(data)
        if len(buffer) > limit:
            raise S3Error("MaxMessageLengthExceeded", "Your request was too big.", 400)

    check = BodyCheck(request.identity.payload, header, sink, digests)
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


def require_content_md5(request: Request) -> None:
    """Documents S3 takes only with an integrity header (DeleteObjects, lifecycle, ...)."""
    if "content-md5" not in request.header and not any(
        name.startswith("x-amz-checksum-") for name in request.header
    ):
        raise S3Error(
            "InvalidRequest", "Missing required header for this request: Content-MD5", 400
        )
