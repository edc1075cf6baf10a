"""Small helpers every front end needs: request ids, query decoding, bounded bodies, the
request log."""

from __future__ import annotations

import itertools
import logging
import random
import secrets
import uuid
from urllib.parse import parse_qsl

from starlette.requests import Request

from karri.errors import CloudError
from karri.numbers import natural

request_log = logging.getLogger("karri.request")
# Seeded once from the OS; a request id must be unique, not secret.
_ids = random.Random()


# S3's ids: 16 hex digits, a per-process prefix and a counter.
_S3_ID_PREFIX = secrets.token_hex(4).upper()
_s3_counter = itertools.count(1)


def new_request_id() -> str:
    """EC2's: a random (version 4) UUID, made without a system call (uuid4 reads
    os.urandom)."""
    return str(uuid.UUID(int=_ids.getrandbits(128), version=4))


def new_s3_request_id() -> str:
    return f"{_S3_ID_PREFIX}{next(_s3_counter):08X}"


def query_pairs(text: str) -> list[tuple[str, str]]:
    """A query string or form body (``text`` holding its bytes as latin-1, or decoded) as
    name/value pairs in order, blanks kept; ``%xx`` escapes are strict UTF-8
    (``UnicodeDecodeError``: each API refuses it in its own words)."""
    return parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        length = natural(declared)
        if length is None:
            raise CloudError("InvalidParameterValue", "Invalid Content-Length", 400)
        if length > limit:
            raise too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def too_large(limit: int) -> CloudError:
    return CloudError(
        "RequestEntityTooLarge", f"The request body is larger than {limit} bytes", 413
    )


def log_request(
    request_id: str, account: str, action: str, status: int, duration_ms: float
) -> None:
    request_log.info(
        "request_id=%s account=%s action=%s status=%d duration_ms=%.1f",
        request_id,
        account or "-",
        action or "-",
        status,
        duration_ms,
    )
