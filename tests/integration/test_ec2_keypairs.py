"""Key pairs: CreateKeyPair (RSA, ED25519), ImportKeyPair, DescribeKeyPairs, DeleteKeyPair."""

from __future__ import annotations

import base64
import hashlib
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tests.conftest import Karri
from tests.integration.ec2_wire import error_of, unique


def colon_hex(digest: bytes) -> str:
    return ":".join(f"{b:02x}" for b in digest)


def openssh_blob(public_key) -> bytes:
    line = public_key.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return base64.b64decode(line.split()[1])


def sha256_fingerprint(public_key) -> str:
    """What AWS reports for ED25519 keys: the SHA-256 of the key blob, base64 (ssh-keygen -l)."""
    return base64.b64encode(hashlib.sha256(openssh_blob(public_key)).digest()).decode()


def created_rsa_fingerprint(private_key: rsa.RSAPrivateKey) -> str:
    """AWS's fingerprint of an RSA key it created: SHA-1 of the PKCS#8 DER private key."""
    der = private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return colon_hex(hashlib.sha1(der).digest())


def imported_rsa_fingerprint(public_key: rsa.RSAPublicKey) -> str:
    """AWS's fingerprint of an imported RSA key: MD5 of the DER public key (SPKI)."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return colon_hex(hashlib.md5(der).digest())


def openssh_public(public_key) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )


def test_create_rsa_key_pair(karri: Karri) -> None:
    ec2 = karri.client("ec2")
    name = unique("rsa")
    created = ec2.create_key_pair(KeyName=name)
    private = serialization.load_pem_private_key(created["KeyMaterial"].encode(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey) and private.key_size == 2048
    assert created["KeyMaterial"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert created["KeyFingerprint"] == created_rsa_fingerprint(private)
    assert created["KeyPairId"].startswith("key-") and len(created["KeyPairId"]) == 12

    described = ec2.describe_key_pairs(KeyNames=[name], IncludePublicKey=True)["KeyPairs"]
    assert len(described) == 1
    info = described[0]
    assert info["KeyPairId"] == created["KeyPairId"]
    assert info["KeyType"] == "rsa"
    assert info["KeyFingerprint"] == created["KeyFingerprint"]
    assert info["CreateTime"].year >= 2024
    assert info["PublicKey"].split()[:2] == openssh_public(private.public_key()).decode().split()
    assert "KeyMaterial" not in info


def test_create_ed25519_key_pair(karri: Karri) -> None:
    ec2 = karri.client("ec2")
    name = unique("ed")
    created = ec2.create_key_pair(KeyName=name, KeyType="ed25519")
    private = serialization.load_ssh_private_key(created["KeyMaterial"].encode(), password=None)
    assert isinstance(private, ed25519.Ed25519PrivateKey)
    assert created["KeyFingerprint"] == sha256_fingerprint(private.public_key())
    info = ec2.describe_key_pairs(KeyNames=[name])["KeyPairs"][0]
    assert info["KeyType"] == "ed25519"
    assert info["KeyFingerprint"] == created["KeyFingerprint"]


@pytest.mark.parametrize("key_type", ["rsa", "ed25519"])
def test_create_a_putty_key(karri: Karri, tmp_path: Path, key_type: str) -> None:
    """KeyFormat=ppk: a PuTTY private key file that PuTTY's own puttygen reads (it checks
    the file's MAC) and whose key is the key pair's."""
    ec2 = karri.client("ec2")
    name = unique("putty")
    created = ec2.create_key_pair(KeyName=name, KeyType=key_type, KeyFormat="ppk")
    assert created["KeyMaterial"].startswith("PuTTY-User-Key-File-3: ssh-")
    key_file = tmp_path / "key.ppk"
    key_file.write_text(created["KeyMaterial"])
    converted = subprocess.run(
        ["puttygen", str(key_file), "-O", "public-openssh"],
        capture_output=True,
        text=True,
        check=True,
    )
    public = ec2.describe_key_pairs(KeyNames=[name], IncludePublicKey=True)["KeyPairs"][0]
    assert converted.stdout.split()[:2] == public["PublicKey"].split()[:2]
    assert error_of(ec2.create_key_pair, KeyName=unique("putty"), KeyFormat="pfx")[0] == (
        "InvalidParameterValue"
    )


def test_private_key_is_never_stored(karri: Karri) -> None:
    created = karri.client("ec2").create_key_pair(KeyName=unique("secret"))
    body = "".join(created["KeyMaterial"].splitlines()[1:-1])
    stored = b"".join(p.read_bytes() for p in karri.data_dir.glob("karri.db*"))
    stored += (karri.data_dir / "logs" / "karri.log").read_bytes()
    for start in range(0, len(body) - 64, 300):
        assert body[start : start + 64].encode() not in stored


def test_import_openssh_rsa_and_ed25519(karri: Karri) -> None:
    ec2 = karri.client("ec2")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    ed_key = ed25519.Ed25519PrivateKey.generate().public_key()
    for key, key_type, fingerprint in (
        (rsa_key, "rsa", imported_rsa_fingerprint(rsa_key)),
        (ed_key, "ed25519", sha256_fingerprint(ed_key)),
    ):
        name = unique(f"imp-{key_type}")
        material = openssh_public(key) + b" user@host"
        imported = ec2.import_key_pair(KeyName=name, PublicKeyMaterial=material)
        assert imported["KeyFingerprint"] == fingerprint
        assert imported["KeyPairId"].startswith("key-")
        info = ec2.describe_key_pairs(KeyNames=[name], IncludePublicKey=True)["KeyPairs"][0]
        assert info["KeyType"] == key_type
        assert info["PublicKey"].split()[:2] == openssh_public(key).decode().split()


def test_import_pem_der_and_rfc4716(karri: Karri) -> None:
    ec2 = karri.client("ec2")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    blob = base64.b64encode(openssh_blob(key)).decode()
    rfc4716 = (
        "---- BEGIN SSH2 PUBLIC KEY ----\n"
        'Comment: "2048-bit RSA, converted"\n'
        + "\n".join(blob[i : i + 70] for i in range(0, len(blob), 70))
        + "\n---- END SSH2 PUBLIC KEY ----\n"
    ).encode()
    for material in (pem, base64.b64encode(der), rfc4716):
        imported = ec2.import_key_pair(KeyName=unique("fmt"), PublicKeyMaterial=material)
        assert imported["KeyFingerprint"] == imported_rsa_fingerprint(key)


@pytest.mark.parametrize(
    "material",
    [
        b"hello, not a key",
        b"ssh-rsa AAAAthisisnotbase64!!! user",
        b"ssh-rsa " + base64.b64encode(b"\x00\x00\x00\x07ssh-rsa\x00\x00") + b" truncated",
        b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        b"---- BEGIN SSH2 PUBLIC KEY ----\n!!!!\n---- END SSH2 PUBLIC KEY ----\n",
    ],
)
def test_import_bad_material_is_invalid_key_format(karri: Karri, material: bytes) -> None:
    ec2 = karri.client("ec2")
    name = unique("bad")
    assert error_of(ec2.import_key_pair, KeyName=name, PublicKeyMaterial=material) == (
        "InvalidKey.Format",
        400,
    )
    assert error_of(ec2.describe_key_pairs, KeyNames=[name])[0] == "InvalidKeyPair.NotFound"


def test_import_private_or_unsupported_keys_is_invalid_key_format(karri: Karri) -> None:
    ec2 = karri.client("ec2")
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    ecdsa = openssh_public(ec.generate_private_key(ec.SECP256R1()).public_key())
    for material in (private_pem, ecdsa):
        assert error_of(
            ec2.import_key_pair, KeyName=unique("unsup"), PublicKeyMaterial=material
        ) == ("InvalidKey.Format", 400)


def test_duplicate_names(karri: Karri) -> None:
    ec2 = karri.client("ec2")
    name = unique("dup")
    ec2.create_key_pair(KeyName=name)
    assert error_of(ec2.create_key_pair, KeyName=name) == ("InvalidKeyPair.Duplicate", 400)
    public = openssh_public(ed25519.Ed25519PrivateKey.generate().public_key())
    assert error_of(ec2.import_key_pair, KeyName=name, PublicKeyMaterial=public) == (
        "InvalidKeyPair.Duplicate",
        400,
    )


def test_describe_not_found(karri: Karri) -> None:
    ec2 = karri.client("ec2")
    name = unique("present")
    ec2.create_key_pair(KeyName=name)
    assert error_of(ec2.describe_key_pairs, KeyNames=[name, "absent"]) == (
        "InvalidKeyPair.NotFound",
        400,
    )
    assert error_of(ec2.describe_key_pairs, KeyPairIds=["key-0badc0de"]) == (
        "InvalidKeyPair.NotFound",
        400,
    )


def test_describe_by_id_and_filters(karri: Karri) -> None:
    ec2 = karri.client("ec2")
    prefix = unique("flt")
    rsa_pair = ec2.create_key_pair(KeyName=f"{prefix}-a")
    ed_pair = ec2.create_key_pair(KeyName=f"{prefix}-b", KeyType="ed25519")
    by_id = ec2.describe_key_pairs(KeyPairIds=[ed_pair["KeyPairId"]])["KeyPairs"]
    assert [k["KeyName"] for k in by_id] == [f"{prefix}-b"]

    def names(*filters: dict) -> list[str]:
        found = ec2.describe_key_pairs(Filters=list(filters))["KeyPairs"]
        return sorted(k["KeyName"] for k in found)

    mine = {"Name": "key-name", "Values": [f"{prefix}-*"]}
    assert names(mine) == [f"{prefix}-a", f"{prefix}-b"]
    assert names({"Name": "key-name", "Values": [f"{prefix}-?"]}) == [f"{prefix}-a", f"{prefix}-b"]
    assert names(mine, {"Name": "key-type", "Values": ["ed25519"]}) == [f"{prefix}-b"]
    assert names({"Name": "fingerprint", "Values": [rsa_pair["KeyFingerprint"]]}) == [f"{prefix}-a"]
    assert names({"Name": "key-pair-id", "Values": [rsa_pair["KeyPairId"]]}) == [f"{prefix}-a"]


def test_delete_by_name_and_id_is_idempotent(karri: Karri) -> None:
    ec2 = karri.client("ec2")
    first, second = unique("del1"), unique("del2")
    ec2.create_key_pair(KeyName=first)
    key_id = ec2.create_key_pair(KeyName=second)["KeyPairId"]
    deleted = ec2.delete_key_pair(KeyName=first)
    assert deleted["Return"] is True and deleted["KeyPairId"].startswith("key-")
    assert ec2.delete_key_pair(KeyPairId=key_id)["KeyPairId"] == key_id
    for again in ({"KeyName": first}, {"KeyPairId": key_id}, {"KeyName": "never-existed"}):
        assert ec2.delete_key_pair(**again)["Return"] is True
    assert error_of(ec2.describe_key_pairs, KeyNames=[first])[0] == "InvalidKeyPair.NotFound"
    # The name is free again.
    ec2.create_key_pair(KeyName=first)


def test_key_names(karri: Karri) -> None:
    ec2 = karri.client("ec2")
    long_name = unique("n").ljust(255, "x")
    assert ec2.create_key_pair(KeyName=long_name)["KeyName"] == long_name
    assert error_of(ec2.create_key_pair, KeyName=long_name + "y") == (
        "InvalidParameterValue",
        400,
    )
    assert error_of(ec2.create_key_pair, KeyName="clé") == ("InvalidParameterValue", 400)
    spaced = unique("with space and / + = chars")
    assert ec2.describe_key_pairs(KeyNames=[ec2.create_key_pair(KeyName=spaced)["KeyName"]])


def test_tags_at_creation(karri: Karri) -> None:
    ec2 = karri.client("ec2")
    spec = [
        {
            "ResourceType": "key-pair",
            "Tags": [{"Key": "team", "Value": "blue"}, {"Key": "empty", "Value": ""}],
        }
    ]
    created = ec2.create_key_pair(KeyName=unique("tagged"), TagSpecifications=spec)
    expected = [{"Key": "empty", "Value": ""}, {"Key": "team", "Value": "blue"}]
    assert sorted(created["Tags"], key=lambda t: t["Key"]) == expected
    public = openssh_public(ed25519.Ed25519PrivateKey.generate().public_key())
    imported = ec2.import_key_pair(
        KeyName=unique("tagged-imp"), PublicKeyMaterial=public, TagSpecifications=spec
    )
    assert sorted(imported["Tags"], key=lambda t: t["Key"]) == expected
    info = ec2.describe_key_pairs(KeyPairIds=[imported["KeyPairId"]])["KeyPairs"][0]
    assert sorted(info["Tags"], key=lambda t: t["Key"]) == expected
    wrong_type = [{"ResourceType": "instance", "Tags": [{"Key": "a", "Value": "b"}]}]
    assert error_of(
        ec2.create_key_pair, KeyName=unique("wrongtype"), TagSpecifications=wrong_type
    ) == ("InvalidParameterValue", 400)


def test_key_pairs_with_the_aws_cli(karri: Karri, tmp_path: Path) -> None:
    name = unique("cli")
    material = karri.aws(
        "ec2",
        "create-key-pair",
        "--key-name",
        name,
        "--key-type",
        "ed25519",
        "--tag-specifications",
        "ResourceType=key-pair,Tags=[{Key=via,Value=cli}]",
    )["KeyMaterial"]
    serialization.load_ssh_private_key(material.encode(), password=None)
    public = tmp_path / "id.pub"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    public.write_bytes(openssh_public(key))
    imported = karri.aws(
        "ec2",
        "import-key-pair",
        "--key-name",
        name + "-imp",
        "--public-key-material",
        f"fileb://{public}",
    )
    assert imported["KeyFingerprint"] == imported_rsa_fingerprint(key)
    described = karri.aws(
        "ec2",
        "describe-key-pairs",
        "--filters",
        "Name=tag:via,Values=cli",
        f"Name=key-name,Values={name}",
    )["KeyPairs"]
    assert [k["KeyName"] for k in described] == [name]
    karri.aws("ec2", "delete-key-pair", "--key-name", name)
    missing = karri.aws("ec2", "describe-key-pairs", "--key-names", name, check=False)
    assert missing.returncode != 0 and "InvalidKeyPair.NotFound" in missing.stderr
