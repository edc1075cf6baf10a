"""The cryptography of bundles: AES-128-CBC with PKCS#7 padding (``openssl enc``), the key and
IV as hex text encrypted with RSA PKCS#1 v1.5 (``openssl rsautl -pkcs``), and RSA-SHA1
manifest signatures (``openssl pkeyutl -pkeyopt digest:sha1``)."""

from __future__ import annotations

import binascii
import secrets

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric import padding as rsa_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 16


def new_key_and_iv() -> tuple[str, str]:
    """A fresh AES-128 key and IV as 32 hex digits each, as euca2ools makes them."""
    return secrets.token_hex(16), secrets.token_hex(16)


def encrypt_for(public_key: rsa.RSAPublicKey, hex_text: str) -> str:
    """The hex of ``hex_text`` encrypted for the key's owner."""
    return public_key.encrypt(hex_text.encode(), rsa_padding.PKCS1v15()).hex()


def key_bytes(decrypted: bytes) -> bytes:
    """A decrypted key or IV: 32 hex digits (euca2ools, ec2-ami-tools) or 16 raw bytes."""
    text = decrypted.strip()
    if len(text) == 2 * BLOCK:
        try:
            return binascii.unhexlify(text)
        except (binascii.Error, ValueError):
            pass
    if len(decrypted) == BLOCK:
        return decrypted
    raise ValueError("the decrypted key is not a 128-bit AES key")


def sign(private_key: rsa.RSAPrivateKey, data: bytes) -> str:
    return private_key.sign(data, rsa_padding.PKCS1v15(), hashes.SHA1()).hex()


def verify(public_key: rsa.RSAPublicKey, data: bytes, signature_hex: str) -> bool:
    try:
        public_key.verify(bytes.fromhex(signature_hex), data, rsa_padding.PKCS1v15(), hashes.SHA1())
    except (InvalidSignature, ValueError):
        return False
    return True


class Encryptor:
    """Streaming AES-128-CBC encryption with PKCS#7 padding."""

    def __init__(self, key: bytes, iv: bytes) -> None:
        self._cipher = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        self._padder = padding.PKCS7(128).padder()

    def update(self, data: bytes) -> bytes:
        return self._cipher.update(self._padder.update(data))

    def finalize(self) -> bytes:
        return self._cipher.update(self._padder.finalize()) + self._cipher.finalize()


class Decryptor:
    """Streaming AES-128-CBC decryption; a bad key or a cut stream fails on the padding."""

    def __init__(self, key: bytes, iv: bytes) -> None:
        self._cipher = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
        self._unpadder = padding.PKCS7(128).unpadder()

    def update(self, data: bytes) -> bytes:
        return self._unpadder.update(self._cipher.update(data))

    def finalize(self) -> bytes:
        try:
            return self._unpadder.update(self._cipher.finalize()) + self._unpadder.finalize()
        except ValueError:
            raise ValueError("the bundle does not decrypt (wrong key or truncated)") from None
