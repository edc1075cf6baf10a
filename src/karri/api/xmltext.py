"""Text an XML 1.0 document can carry."""

from __future__ import annotations

import re

# Control characters, lone surrogates (JSON can hold them) and the two non-characters.
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_safe(text: str) -> str:
    """``text`` with what XML 1.0 cannot carry replaced by U+FFFD: for error messages and
    resources, which quote what a client sent."""
    return NOT_XML.sub("\ufffd", text)
