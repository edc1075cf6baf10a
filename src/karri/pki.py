"""Keys, requests and fingerprints of karri's mutual TLS (node <-> cloud): what both the
cloud's node CA (``cloud/nodes/ca.py``) and a joining node (``node/membership.py``) use."""

from __future__ import annotations

import datetime
import hashlib
import os
import re
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import NameOID

GATEWAY_NAME = "karri-cloud"
"""The DNS name in the cloud's gateway and client certificates, which no node may take as
its name (a node's certificate names it, and serves its agent): a node checks its
gateway by this name, whatever address the gateway is at."""
CLOUD_SUBJECT = x509.Name(
    [
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "karri"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "cloud"),
        x509.NameAttribute(NameOID.COMMON_NAME, GATEWAY_NAME),
    ]
)
"""The subject of the cloud's client certificate: the node CA gives it to no node (a
node's subject is its name alone), so a node agent takes calls only from its holder."""
_JOIN_TOKEN = re.compile(r"^([0-9a-f]{6})\.([0-9a-f]{32})\.([0-9a-f]{64})$")


def parse_join_token(token: str) -> tuple[str, str, str]:
    """A node join token's id, secret and CA fingerprint; ValueError if it is not one."""
    found = _JOIN_TOKEN.match(token.strip())
    if found is None:
        raise ValueError("not a karri join token")
    return found.group(1), found.group(2), found.group(3)


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def authority(
    key: CertificateIssuerPrivateKeyTypes, common_name: str, days: int, path_length: int | None
) -> x509.CertificateBuilder:
    """A self-signed CA certificate of karri's, valid for ``days`` (from yesterday), ready
    for more extensions and ``.sign``."""
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "karri"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
    )


def csr_for(key: ec.EllipticCurvePrivateKey, name: str) -> bytes:
    """A certificate signing request for ``name`` (its CN), signed with ``key``."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    request = x509.CertificateSigningRequestBuilder().subject_name(subject)
    return request.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def fingerprint(cert_pem: bytes) -> str:
    """The hex SHA-256 of the certificate's DER (what a join token names of the CA)."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def subject_of(cert_pem: str | bytes) -> x509.Name:
    data = cert_pem.encode() if isinstance(cert_pem, str) else cert_pem
    return x509.load_pem_x509_certificate(data).subject


def common_name_of(subject: x509.Name) -> str:
    names = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def write_file(path: Path, data: bytes, mode: int) -> None:
    """``data`` at ``path`` with ``mode``, whole or not at all (written aside, synced,
    renamed)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


def client_context(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    """A TLS client that trusts ``ca`` only and presents ``cert`` (mutual TLS)."""
    context = ssl.create_default_context(cafile=str(ca))
    context.load_cert_chain(str(cert), str(key))
    return context
