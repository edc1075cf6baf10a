"""Whole numbers written in requests: ASCII digits only, and few enough of them.

``str.isdigit`` also accepts digits such as "²" that ``int`` refuses (or other scripts' digits),
and ``int`` refuses strings of more than 4,300 digits: checking with one and converting
with the other turned such input into server errors."""

from __future__ import annotations

import re

MAX_DIGITS = 30  # far past any size, count or part number a request may carry
_HEX = re.compile(r"[0-9a-fA-F]{1,16}")


def natural(text: str, max_digits: int = MAX_DIGITS) -> int | None:
    """The value of ``text`` if it is 1 to ``max_digits`` ASCII digits, else None."""
    if 0 < len(text) <= max_digits and text.isascii() and text.isdigit():
        return int(text)
    return None


def integer(text: str) -> int | None:
    """``natural`` with an optional leading minus sign."""
    value = natural(text.removeprefix("-"))
    return -value if value is not None and text.startswith("-") else value


def hexadecimal(text: str) -> int | None:
    """The value of ``text`` if it is 1 to 16 hex digits (no sign, prefix or spaces)."""
    return int(text, 16) if _HEX.fullmatch(text) else None
