"""Signatures of the instance identity document, made with the cloud's identity key.

EC2 serves three: ``signature`` (base64 RSA SHA-256 over the document), ``pkcs7`` (EC2
signs it with a DSA key) and ``rsa2048`` (PKCS#7 SignedData, RSA-2048, SHA-256). karri has
one RSA key, the cloud's, so ``pkcs7`` and ``rsa2048`` are the same RSA SHA-256 PKCS#7 with
the document embedded byte for byte (binary mode: no CRLF conversion), base64 in
64-character lines without PEM armour, as EC2 prints it. Verify with the cloud certificate
(``karri cloud-cert``): add the armour, then ``openssl smime -verify -binary -inform PEM
-certfile cert.pem``.

Only the cloud holds the key: its own node signs in process (``IdentitySigner``), a joined
node asks the cloud (``CloudLink.sign_identity``), which builds the document from its own
records (``cloud/nodes/identity.py``); ``node/signedviews.py`` serves and caches either.
"""

from __future__ import annotations

import base64
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7

from karri.node.spec import IdentityKey

VIEWS = ("pkcs7", "rsa2048", "signature")
"""The signed views under ``dynamic/instance-identity/``, beside ``document``."""


@dataclass(frozen=True)
class SignedIdentity:
    """An identity document and its signed views (``VIEWS``), as the cloud signed them."""

    document: bytes
    views: Mapping[str, bytes]


class IdentitySigner:
    """Signs identity documents with ``key`` (the cloud's)."""

    def __init__(self, key: IdentityKey) -> None:
        private = serialization.load_pem_private_key(key.private_key_pem, password=None)
        if not isinstance(private, rsa.RSAPrivateKey):
            raise ValueError("the identity key must be an RSA key")
        self._private = private
        self._cert = x509.load_pem_x509_certificate(key.certificate_pem)

    def sign(self, document: bytes) -> SignedIdentity:
        signature = base64.b64encode(
            self._private.sign(document, padding.PKCS1v15(), hashes.SHA256())
        )
        der = (
            pkcs7.PKCS7SignatureBuilder()
            .set_data(document)
            .add_signer(self._cert, self._private, hashes.SHA256())
            .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
        )
        signed = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64)).encode()
        views = {"pkcs7": signed, "rsa2048": signed, "signature": signature}
        return SignedIdentity(document, views)
