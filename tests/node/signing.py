"""An identity key for the tests (a self-signed RSA-2048 certificate, as the cloud's) and
what checks a signed view with it as a guest's script would (openssl)."""

from __future__ import annotations

import base64
import datetime as dt
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from karri.node import IdentityKey


def identity_key() -> IdentityKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "karri cloud")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return IdentityKey(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        cert.public_bytes(serialization.Encoding.PEM),
    )


def check_signature(certificate_pem: bytes, document: bytes, signature: bytes) -> None:
    """``signature`` (base64) is the certificate key's over ``document`` (raises otherwise)."""
    cert = x509.load_pem_x509_certificate(certificate_pem)
    public = cert.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(base64.b64decode(signature), document, padding.PKCS1v15(), hashes.SHA256())


def pkcs7_content(certificate_pem: bytes, pkcs7: str, scratch: Path) -> bytes:
    """What ``openssl smime -verify`` finds signed by the key's certificate in ``pkcs7``
    (EC2's form: base64 lines without armour)."""
    pem = scratch / "doc.p7"
    pem.write_text(f"-----BEGIN PKCS7-----\n{pkcs7}\n-----END PKCS7-----\n")
    (scratch / "cert.pem").write_bytes(certificate_pem)
    verified = subprocess.run(
        ["openssl", "smime", "-verify", "-binary", "-inform", "PEM", "-in", str(pem), "-noverify",
         "-certfile", str(scratch / "cert.pem")],
        capture_output=True,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    return verified.stdout
