"""Signatures of the instance identity document, with the key the cloud hands the node.

EC2 serves three: ``signature`` (base64 RSA SHA-256 over the document), ``pkcs7`` (EC2
signs it with a DSA key) and ``rsa2048`` (PKCS#7 SignedData, RSA-2048, SHA-256). karri has
one RSA key, the cloud's, so ``pkcs7`` and ``rsa2048`` are the same RSA SHA-256 PKCS#7 with
the document embedded byte for byte (binary mode: no CRLF conversion), base64 in
64-character lines without PEM armour, as EC2 prints it. Verify with the cloud certificate:
add the armour, then ``openssl smime -verify -binary -inform PEM -certfile cert.pem``.
"""

from __future__ import annotations

import base64
import textwrap
from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7

from karri.node.spec import IdentityKey


def signers(key: IdentityKey | None) -> dict[str, Callable[[bytes], bytes]]:
    """The signed views of the identity document; none without a key."""
    if key is None:
        return {}
    private = serialization.load_pem_private_key(key.private_key_pem, password=None)
    if not isinstance(private, rsa.RSAPrivateKey):
        raise ValueError("the identity key must be an RSA key")
    cert = x509.load_pem_x509_certificate(key.certificate_pem)

    def signature(document: bytes) -> bytes:
        return base64.b64encode(private.sign(document, padding.PKCS1v15(), hashes.SHA256()))

    def signed_data(document: bytes) -> bytes:
        der = (
            pkcs7.PKCS7SignatureBuilder()
            .set_data(document)
            .add_signer(cert, private, hashes.SHA256())
            .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
        )
        return "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64)).encode()

    return {"signature": signature, "pkcs7": signed_data, "rsa2048": signed_data}
