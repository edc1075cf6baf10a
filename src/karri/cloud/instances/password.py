"""GetPasswordData: the administrator password a Windows guest published on its console.

EC2Config and EC2Launch write the password, encrypted with the instance's key pair and
base64-encoded, between ``<Password>`` and ``</Password>`` on the serial console; EC2
hands it back as written, and the client decrypts it with the private key
(``aws ec2 get-password-data --priv-launch-key``). A Linux guest writes none: empty.
"""

from __future__ import annotations

import re

# one character class between two literals: no two quantifiers compete for a character,
# so a guest printing hostile text costs a linear scan
_PASSWORD = re.compile(rb"<Password>([A-Za-z0-9+/=\s]{1,8192})</Password>")


def password_data(console: bytes) -> str:
    """The last password block on the console, whitespace removed; "" when there is none."""
    found = _PASSWORD.findall(console)
    return b"".join(found[-1].split()).decode() if found else ""
