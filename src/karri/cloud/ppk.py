"""PuTTY's private key files (PPK version 3, unencrypted): CreateKeyPair's ``KeyFormat=ppk``.

The format (PuTTY's documentation, appendix C): a header naming the algorithm, the SSH wire
encoding of the public key and of the private parts in base64 lines of 64 characters, and
an HMAC-SHA-256 over all of it; for an unencrypted file the MAC's key is empty.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _mpint(value: int) -> bytes:
    """SSH's mpint: big-endian two's complement, a leading zero byte if the top bit is set."""
    data = value.to_bytes(value.bit_length() // 8 + 1, "big") if value else b""
    return _string(data)


def _lines(data: bytes) -> list[str]:
    text = base64.b64encode(data).decode()
    return [text[i : i + 64] for i in range(0, len(text), 64)]


def ppk(key: PrivateKey, comment: str) -> str:
    """The key as a PuTTY ``.ppk`` file."""
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    algorithm, blob = public.split()[:2]
    public_blob = base64.b64decode(blob)
    if isinstance(key, rsa.RSAPrivateKey):
        numbers = key.private_numbers()
        private_blob = b"".join(_mpint(n) for n in (numbers.d, numbers.p, numbers.q, numbers.iqmp))
    else:
        raw = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        private_blob = _string(raw)
    encryption = b"none"
    signed = b"".join(
        _string(part)
        for part in (algorithm, encryption, comment.encode(), public_blob, private_blob)
    )
    mac = hmac.new(b"", signed, hashlib.sha256).hexdigest()
    public_lines, private_lines = _lines(public_blob), _lines(private_blob)
    return "\n".join(
        [
            f"PuTTY-User-Key-File-3: {algorithm.decode()}",
            f"Encryption: {encryption.decode()}",
            f"Comment: {comment}",
            f"Public-Lines: {len(public_lines)}",
            *public_lines,
            f"Private-Lines: {len(private_lines)}",
            *private_lines,
            f"Private-MAC: {mac}",
            "",
        ]
    )
