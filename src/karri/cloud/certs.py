"""The cloud's own certificate and key (Eucalyptus's cloud-cert.pem / cloud-pk.pem).

Created on first start in the data dir. Bundlers encrypt each bundle's AES key and IV with
this certificate's public key (euca2ools' ``--ec2cert``), and the cloud decrypts them with
the private key when it registers the image.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from karri.pki import authority, write_file

CERT_FILE = "cloud-cert.pem"
KEY_FILE = "cloud-pk.pem"
KEY_BITS = 2048
VALID_DAYS = 3650


class CloudCertificate:
    """The certificate and private key in ``data_dir``, made on first use."""

    def __init__(self, data_dir: Path, region: str = "eucalyptus") -> None:
        self.cert_path = data_dir / CERT_FILE
        self.key_path = data_dir / KEY_FILE
        if not (self.cert_path.exists() and self.key_path.exists()):
            data_dir.mkdir(parents=True, exist_ok=True)
            _create(self.cert_path, self.key_path, region)
        self.certificate = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        self._key = serialization.load_pem_private_key(self.key_path.read_bytes(), None)
        if not isinstance(self._key, rsa.RSAPrivateKey):
            raise ValueError(f"{self.key_path} is not an RSA private key")

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    def fingerprint(self, algorithm: str = "SHA-256") -> str:
        """Colon-separated upper-case hex, as Eucalyptus prints it."""
        name = {"SHA-1": "sha1", "SHA-256": "sha256"}[algorithm]
        return ":".join(f"{b:02X}" for b in hashlib.new(name, self.der).digest())

    def decrypt(self, ciphertext: bytes) -> bytes:
        """RSA PKCS#1 v1.5, what ``openssl rsautl -encrypt -pkcs`` produced."""
        return self._key.decrypt(ciphertext, padding.PKCS1v15())

    def public_key(self) -> rsa.RSAPublicKey:
        key = self.certificate.public_key()
        assert isinstance(key, rsa.RSAPublicKey)
        return key


def _create(cert_path: Path, key_path: Path, region: str) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    cert = authority(key, f"karri cloud {region}", VALID_DAYS, None).sign(key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    write_file(key_path, key_pem, 0o600)
    write_file(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
