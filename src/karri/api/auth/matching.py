"""Comparing the signature a client sent with the one karri computed."""

from __future__ import annotations

import hmac


def signature_matches(expected: str, given: str) -> bool:
    """In constant time. ``hmac.compare_digest`` refuses to compare strings holding
    non-ASCII characters; a signature with any (``expected`` never has) cannot match."""
    return given.isascii() and hmac.compare_digest(expected, given)
