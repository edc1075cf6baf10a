"""The node CA: the cloud's own certificate authority for node<->cloud mutual TLS.

Made on first use in the data dir (``node-ca.pem``, ``node-ca.key``; EC P-256). It signs
each node's certificate at join (the node keeps its key; the CA sees only its CSR), and
the cloud's own gateway certificate, and the cloud's client certificate, the only one with
the subject ``CLOUD_SUBJECT`` (a node's holds its name alone): what a node agent takes
calls from. A node's certificate serves it both ways (it calls the gateway; its agent
serves the cloud under its name). A node trusts the cloud by this CA, whose SHA-256 its
join token carries (as kubeadm's discovery hash): the join itself may travel in clear.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from karri.pki import (
    CLOUD_SUBJECT,
    GATEWAY_NAME,
    authority,
    common_name_of,
    fingerprint,
    key_pem,
    new_key,
    write_file,
)

CA_CERT = "node-ca.pem"
CA_KEY = "node-ca.key"
CA_DAYS = 3650
NODE_DAYS = 825


class BadRequest(ValueError):
    """A CSR that is not one, or does not hold what a node's must."""


class NodeCA:
    """The CA in ``data_dir``, made on first use."""

    def __init__(self, data_dir: Path) -> None:
        self.cert_path = data_dir / CA_CERT
        self.key_path = data_dir / CA_KEY
        if not (self.cert_path.exists() and self.key_path.exists()):
            data_dir.mkdir(parents=True, exist_ok=True)
            self._create()
        self.pem = self.cert_path.read_bytes()
        self.cert = x509.load_pem_x509_certificate(self.pem)
        key = serialization.load_pem_private_key(self.key_path.read_bytes(), None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{self.key_path} is not an EC private key")
        self._key = key
        self.fingerprint = fingerprint(self.pem)  # hex SHA-256, as join tokens carry it

    def _create(self) -> None:
        key = new_key()
        cert = (
            authority(key, "karri node CA", CA_DAYS, 0)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True,
                    crl_sign=True, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )  # fmt: skip
        write_file(self.key_path, key_pem(key), 0o600)
        write_file(self.cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)

    def issue(self, csr_pem: bytes, name: str) -> tuple[bytes, str]:
        """A node's certificate (PEM) for ``name`` from its CSR, and its serial (hex)."""
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError as error:
            raise BadRequest(f"not a certificate signing request: {error}") from None
        if not csr.is_signature_valid:
            raise BadRequest("the request's signature is not valid")
        if common_name_of(csr.subject) != name:
            raise BadRequest("the request must name the node (CN)")
        key = csr.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise BadRequest("the node's key must be an EC key")
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
        return self._sign(key, _named(name), [x509.DNSName(name)], usages)

    def cloud_identity(self, directory: Path) -> tuple[Path, Path]:
        """The cloud's client certificate and key files (made on first use): what it
        calls node agents with."""
        cert_path, key_path = directory / "node-cloud.pem", directory / "node-cloud.key"
        if cert_path.exists() and key_path.exists():
            current = x509.load_pem_x509_certificate(cert_path.read_bytes())
            if _issued_by(current, self.cert):
                return cert_path, key_path
        key = new_key()
        names: list[x509.GeneralName] = [x509.DNSName(GATEWAY_NAME)]
        cert_pem, _serial = self._sign(
            key.public_key(), CLOUD_SUBJECT, names, [ExtendedKeyUsageOID.CLIENT_AUTH]
        )
        write_file(key_path, key_pem(key), 0o600)
        write_file(cert_path, cert_pem, 0o644)
        return cert_path, key_path

    def gateway_identity(self, directory: Path, hosts: list[str]) -> tuple[Path, Path]:
        """The cloud gateway's certificate and key files for ``hosts`` (addresses or
        names), made again when the hosts change."""
        cert_path, key_path = directory / "node-gateway.pem", directory / "node-gateway.key"
        names: list[x509.GeneralName] = [x509.DNSName(GATEWAY_NAME)]
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        if cert_path.exists() and key_path.exists():
            current = x509.load_pem_x509_certificate(cert_path.read_bytes())
            san = current.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            if set(san.value) == set(names) and _issued_by(current, self.cert):
                return cert_path, key_path
        key = new_key()
        cert_pem, _serial = self._sign(
            key.public_key(), _named(GATEWAY_NAME), names, [ExtendedKeyUsageOID.SERVER_AUTH]
        )
        write_file(key_path, key_pem(key), 0o600)
        write_file(cert_path, cert_pem, 0o644)
        return cert_path, key_path

    def _sign(
        self,
        key: ec.EllipticCurvePublicKey,
        subject: x509.Name,
        alt_names: list[x509.GeneralName],
        usages: list[x509.ObjectIdentifier],
    ) -> tuple[bytes, str]:
        now = datetime.datetime.now(datetime.UTC)
        serial = x509.random_serial_number()
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(key)
            .serial_number(serial)
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=NODE_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM), format(serial, "x")


def _named(name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
