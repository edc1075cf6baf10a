"""The bundle format: round trip, compatibility with the openssl/tar/gzip pipeline that
euca2ools and ec2-ami-tools run, and every way a bundle can be broken."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from karri.cloud.certs import CloudCertificate
from karri.cloud.images import crypto, manifest
from karri.cloud.images.bundle import (
    BundleError,
    BundleSpec,
    create_bundle,
    decrypt_key,
    unbundle,
)


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> CloudCertificate:
    return CloudCertificate(tmp_path_factory.mktemp("cloud"))


@pytest.fixture(scope="module")
def user_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def image_bytes(size: int) -> bytes:
    return os.urandom(size // 2) + b"\0" * (size - size // 2)


def chunks_of(path: Path, chunk: int = 65536):
    with open(path, "rb") as handle:
        while data := handle.read(chunk):
            yield data


def read_parts(directory: Path, m: manifest.Manifest):
    return [chunks_of(directory / part.filename) for part in m.parts]


def open_bundle(directory: Path, cert: CloudCertificate, m: manifest.Manifest, **kw) -> bytes:
    key, iv = decrypt_key(cert.decrypt, m)
    out = io.BytesIO()
    unbundle(m, key, iv, read_parts(directory, m), out, **kw)
    return out.getvalue()


def make(tmp_path: Path, cert, data: bytes, **kw):
    spec = BundleSpec(name="disk.img", account_id="123456789012", **kw.pop("spec", {}))
    return create_bundle(io.BytesIO(data), len(data), spec, cert.public_key(), tmp_path, **kw)


def test_round_trip_over_several_parts(tmp_path: Path, cert, user_key) -> None:
    data = image_bytes(300_000)
    m, path = make(tmp_path, cert, data, user_key=user_key, part_size=50_000)
    assert path.name == "disk.img.manifest.xml"
    assert len(m.parts) > 1 and m.parts[0].filename == "disk.img.part.00"
    parsed = manifest.parse(path.read_bytes())
    assert parsed.parts == m.parts and parsed.size == len(data)
    assert parsed.bundled_size == sum((tmp_path / p.filename).stat().st_size for p in m.parts)
    assert open_bundle(tmp_path, cert, parsed) == data


def test_signature_covers_machine_configuration_and_image(tmp_path: Path, cert, user_key):
    m, path = make(tmp_path, cert, b"x" * 1000, user_key=user_key)
    document = path.read_bytes()
    signed = manifest.signed_text_of(document)
    assert signed == m.signed_text()
    assert crypto.verify(user_key.public_key(), signed, manifest.parse(document).signature)
    assert not crypto.verify(user_key.public_key(), signed + b" ", m.signature)


def test_kernel_and_ramdisk_manifests_say_true(tmp_path: Path, cert) -> None:
    _, path = make(tmp_path, cert, b"k" * 100, spec={"image_type": "kernel"})
    text = path.read_text()
    assert "<kernel_id>true</kernel_id>" in text and "<type>kernel</type>" in text
    assert manifest.parse(path.read_bytes()).image_type == "kernel"
    without_type = text.replace("<type>kernel</type>", "")
    assert manifest.parse(without_type.encode()).image_type == "kernel"


def test_openssl_decrypts_what_karri_bundles(tmp_path: Path, cert) -> None:
    """The parts are exactly `tar | gzip | openssl enc -aes-128-cbc`, the key `rsautl -pkcs`."""
    data = image_bytes(100_000)
    m, _ = make(tmp_path, cert, data, part_size=30_000)
    hex_key = subprocess.run(
        ["openssl", "pkeyutl", "-decrypt", "-inkey", str(cert.key_path)],
        input=bytes.fromhex(m.ec2_encrypted_key),
        capture_output=True,
        check=True,
    ).stdout.decode()
    hex_iv = cert.decrypt(bytes.fromhex(m.ec2_encrypted_iv)).decode()
    joined = b"".join((tmp_path / p.filename).read_bytes() for p in m.parts)
    tar = subprocess.run(
        f"openssl enc -d -aes-128-cbc -K {hex_key} -iv {hex_iv} | gzip -dc",
        shell=True,
        input=joined,
        capture_output=True,
        check=True,
    ).stdout
    assert hashlib.sha1(tar).hexdigest() == m.digest
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "-x", "-C", str(out)], input=tar, check=True)
    assert (out / "disk.img").read_bytes() == data


@pytest.mark.parametrize(
    ("name", "tar_format"), [("my.img", "gnu"), ("long-" * 30 + ".img", "gnu"), ("p.img", "pax")]
)
def test_bundle_made_by_the_euca2ools_pipeline_opens(
    tmp_path: Path, cert, name: str, tar_format: str
) -> None:
    """Parts made with GNU tar, gzip and openssl, as euca2ools/ec2-ami-tools do."""
    data = image_bytes(200_000)
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / name).write_bytes(data)
    key_hex, iv_hex = crypto.new_key_and_iv()
    tar = subprocess.run(
        ["tar", f"--format={tar_format}", "-c", "-C", str(tmp_path / "img"), name],
        capture_output=True,
        check=True,
    ).stdout
    encrypted = subprocess.run(
        f"gzip -c | openssl enc -e -aes-128-cbc -K {key_hex} -iv {iv_hex}",
        shell=True,
        input=tar,
        capture_output=True,
        check=True,
    ).stdout
    parts = []
    for index in range(0, len(encrypted), 64_000):
        name = f"my.img.part.{index // 64_000:02d}"
        (tmp_path / name).write_bytes(encrypted[index : index + 64_000])
        parts.append(
            manifest.Part(name, hashlib.sha1(encrypted[index : index + 64_000]).hexdigest())
        )
    encrypt = [
        subprocess.run(
            ["openssl", "pkeyutl", "-encrypt", "-certin", "-inkey", str(cert.cert_path)],
            input=value.encode(),
            capture_output=True,
            check=True,
        ).stdout.hex()
        for value in (key_hex, iv_hex)
    ]
    m = manifest.Manifest(
        architecture="x86_64",
        name="my.img",
        user="123456789012",
        image_type="machine",
        digest=hashlib.sha1(tar).hexdigest(),
        size=len(data),
        bundled_size=len(encrypted),
        ec2_encrypted_key=encrypt[0],
        ec2_encrypted_iv=encrypt[1],
        parts=parts,
    )
    parsed = manifest.parse(m.to_xml())
    assert open_bundle(tmp_path, cert, parsed) == data


def test_tampered_part_is_named(tmp_path: Path, cert) -> None:
    m, _ = make(tmp_path, cert, image_bytes(200_000), part_size=50_000)
    victim = tmp_path / m.parts[1].filename
    raw = bytearray(victim.read_bytes())
    raw[100] ^= 0xFF
    victim.write_bytes(bytes(raw))
    with pytest.raises(BundleError, match=r"part disk.img.part.01 is corrupt"):
        open_bundle(tmp_path, cert, m)


def test_missing_part_bytes_fail(tmp_path: Path, cert) -> None:
    m, _ = make(tmp_path, cert, image_bytes(200_000), part_size=50_000)
    key, iv = decrypt_key(cert.decrypt, m)
    short = list(read_parts(tmp_path, m))[:-1]
    with pytest.raises(BundleError):
        unbundle(m, key, iv, short, io.BytesIO())


def test_bundle_for_another_cloud_is_refused(tmp_path: Path, cert) -> None:
    other = CloudCertificate(tmp_path / "other")
    (tmp_path / "b").mkdir()
    m, _ = make(tmp_path / "b", other, b"z" * 5000)
    with pytest.raises(BundleError, match="certificate"):
        decrypt_key(cert.decrypt, m)


def test_size_limit(tmp_path: Path, cert) -> None:
    m, _ = make(tmp_path, cert, b"\0" * 100_000)
    with pytest.raises(BundleError, match="larger than allowed"):
        open_bundle(tmp_path, cert, m, max_size=50_000)


def test_digest_mismatch_is_refused(tmp_path: Path, cert) -> None:
    m, _ = make(tmp_path, cert, b"a" * 10_000)
    m.digest = "0" * 40
    with pytest.raises(BundleError, match="SHA-1"):
        open_bundle(tmp_path, cert, m)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"this is not xml", "not valid XML"),
        (b"<manifest><version>2007-10-10</version></manifest>", "machine_configuration"),
        (b"<other/>", "not a bundle manifest"),
        (
            b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]>'
            b"<manifest>&b;</manifest>",
            "forbidden",
        ),
    ],
)
def test_bad_manifests(document: bytes, message: str) -> None:
    with pytest.raises(manifest.ManifestError, match=message):
        manifest.parse(document)


def test_manifest_with_a_gap_in_parts(tmp_path: Path, cert) -> None:
    m, path = make(tmp_path, cert, image_bytes(100_000), part_size=30_000)
    text = path.read_text().replace('<part index="1">', '<part index="7">')
    with pytest.raises(manifest.ManifestError, match="out of range"):
        manifest.parse(text.encode())
    text = path.read_text().replace(f'count="{len(m.parts)}"', f'count="{len(m.parts) + 1}"')
    with pytest.raises(manifest.ManifestError, match="lists no part"):
        manifest.parse(text.encode())


def test_cloud_certificate_is_kept(tmp_path: Path) -> None:
    first = CloudCertificate(tmp_path)
    again = CloudCertificate(tmp_path)
    assert first.pem == again.pem
    assert (tmp_path / "cloud-pk.pem").stat().st_mode & 0o077 == 0
    assert len(first.fingerprint().split(":")) == 32
