"""The stock command-line clients, unchanged but for the endpoint: the AWS CLI, s3cmd
(SigV4 and SigV2) and rclone; and keys with every odd character through list and get."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Karri
from tests.integration.s3_helpers import http, unique

BIN = Path(sys.executable).parent
ODD_KEYS = [
    "plain",
    "with space",
    "slash/in/it",
    "../dot-dot/../escape",
    "percent%20not-decoded%",
    "plus+and&amp=eq?q#hash",
    "ünïcødé/日本語/😀",
    "/leading-slash",
    "//double//slashes",
    "trailing/",
    "tab\tand~tilde'quote\"",
    "a" * 1000,
]


def run(*args: str, env: dict | None = None) -> str:
    result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tree")
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "big.bin").write_bytes(os.urandom(9 * 1024 * 1024))
    (root / "small file.txt").write_text("small")
    (root / "sub" / "é%+.txt").write_text("odd name")
    (root / "sub" / "deeper" / "empty").write_bytes(b"")
    return root


def test_aws_cli_s3_and_s3api(karri: Karri, tree: Path, tmp_path: Path) -> None:
    bucket = unique("awscli")
    aws_s3(karri, "mb", f"s3://{bucket}")
    aws_s3(karri, "cp", str(tree / "big.bin"), f"s3://{bucket}/big.bin")
    aws_s3(karri, "sync", str(tree), f"s3://{bucket}/tree/")
    listing = subprocess.run(
        [BIN / "aws", "s3", "ls", "--recursive", f"s3://{bucket}/tree/"],
        capture_output=True,
        text=True,
        env=karri.aws_env(),
        check=True,
    ).stdout
    assert "tree/sub/é%+.txt" in listing and "tree/small file.txt" in listing
    aws_s3(karri, "sync", f"s3://{bucket}/tree/", str(tmp_path / "back"))
    for path in tree.rglob("*"):
        if path.is_file():
            assert (tmp_path / "back" / path.relative_to(tree)).read_bytes() == path.read_bytes()
    presigned = subprocess.run(
        [BIN / "aws", "s3", "presign", f"s3://{bucket}/big.bin", "--expires-in", "60"],
        capture_output=True,
        text=True,
        env=karri.aws_env(),
        check=True,
    ).stdout.strip()
    assert http("GET", presigned)[2] == (tree / "big.bin").read_bytes()
    head = karri.aws("s3api", "head-object", "--bucket", bucket, "--key", "big.bin")
    assert head["ContentLength"] == 9 * 1024 * 1024 and head["ETag"].endswith('-2"')
    karri.aws(
        "s3api",
        "put-object-tagging",
        "--bucket",
        bucket,
        "--key",
        "big.bin",
        "--tagging",
        "TagSet=[{Key=k,Value=v}]",
    )
    assert karri.aws("s3api", "get-object-tagging", "--bucket", bucket, "--key", "big.bin")[
        "TagSet"
    ] == [{"Key": "k", "Value": "v"}]
    aws_s3(karri, "rm", "--recursive", f"s3://{bucket}/tree/")
    keys = karri.aws("s3api", "list-objects-v2", "--bucket", bucket)["Contents"]
    assert [k["Key"] for k in keys] == ["big.bin"]
    aws_s3(karri, "rb", "--force", f"s3://{bucket}")
    failed = karri.aws("s3api", "head-bucket", "--bucket", bucket, check=False)
    assert failed.returncode != 0


def aws_s3(karri: Karri, *args: str) -> str:
    """``aws s3 ...`` (text output, unlike ``karri.aws`` which parses JSON)."""
    return run(str(BIN / "aws"), "s3", *args, env=karri.aws_env())


def _s3cmd_config(karri: Karri, path: Path, v2: bool) -> Path:
    port = karri.s3_url.rsplit(":", 1)[1]
    path.write_text(
        "[default]\n"
        f"access_key = {karri.admin.access_key_id}\nsecret_key = {karri.admin.secret_access_key}\n"
        f"host_base = 127.0.0.1:{port}\nhost_bucket = 127.0.0.1:{port}\nuse_https = False\n"
        f"signature_v2 = {v2}\nbucket_location = {karri.region}\n"
    )
    return path


@pytest.mark.parametrize("v2", [False, True], ids=["sigv4", "sigv2"])
def test_s3cmd(karri: Karri, tree: Path, tmp_path: Path, v2: bool) -> None:
    config = _s3cmd_config(karri, tmp_path / "s3cfg", v2)
    s3cmd = [str(BIN / "s3cmd"), "-c", str(config)]
    bucket = unique("s3cmd")
    run(*s3cmd, "mb", f"s3://{bucket}")
    ownership = '{"Rules": [{"ObjectOwnership": "ObjectWriter"}]}'  # ACLs on, for setacl
    karri.aws(
        "s3api", "put-bucket-ownership-controls", "--bucket", bucket,
        "--ownership-controls", ownership,
    )  # fmt: skip
    run(
        *s3cmd,
        "--multipart-chunk-size-mb=5",
        "put",
        str(tree / "big.bin"),
        f"s3://{bucket}/x y/big.bin",
    )
    run(*s3cmd, "sync", f"{tree}/", f"s3://{bucket}/tree/")
    listing = run(*s3cmd, "ls", "-r", f"s3://{bucket}")
    assert "s3://" + bucket + "/tree/sub/é%+.txt" in listing
    run(*s3cmd, "get", "--force", f"s3://{bucket}/x y/big.bin", str(tmp_path / "big.out"))
    assert (tmp_path / "big.out").read_bytes() == (tree / "big.bin").read_bytes()
    run(*s3cmd, "setacl", "--acl-public", f"s3://{bucket}/tree/small file.txt")
    assert http("GET", f"{karri.s3_url}/{bucket}/tree/small%20file.txt")[2] == b"small"
    info = run(*s3cmd, "info", f"s3://{bucket}")
    assert "Location" in info
    run(*s3cmd, "del", "--recursive", "--force", f"s3://{bucket}")
    run(*s3cmd, "rb", f"s3://{bucket}")


def test_rclone_copy_and_check(karri: Karri, tree: Path, tmp_path: Path) -> None:
    config = tmp_path / "rclone.conf"
    config.write_text(
        "[karri]\ntype = s3\nprovider = Other\n"
        f"access_key_id = {karri.admin.access_key_id}\n"
        f"secret_access_key = {karri.admin.secret_access_key}\n"
        f"endpoint = {karri.s3_url}\nregion = {karri.region}\n"
    )
    rclone = [str(BIN / "rclone"), "--config", str(config)]
    bucket = unique("rclone")
    run(*rclone, "mkdir", f"karri:{bucket}")
    run(
        *rclone,
        "copy",
        "--s3-upload-cutoff",
        "5M",
        "--s3-chunk-size",
        "5M",
        str(tree),
        f"karri:{bucket}/tree",
    )
    run(*rclone, "check", str(tree), f"karri:{bucket}/tree")
    run(*rclone, "copy", f"karri:{bucket}/tree", str(tmp_path / "back"))
    run(*rclone, "check", str(tree), str(tmp_path / "back"))
    run(*rclone, "purge", f"karri:{bucket}")


def test_odd_keys_round_trip(karri: Karri) -> None:
    s3 = karri.client("s3")
    bucket = unique("oddkeys")
    s3.create_bucket(Bucket=bucket)
    for key in ODD_KEYS:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert listed == sorted(ODD_KEYS, key=lambda k: k.encode())
    assert [o["Key"] for o in s3.list_objects(Bucket=bucket)["Contents"]] == listed
    for key in ODD_KEYS:
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode()
    v2 = karri.client("s3", signature_version="s3")
    for key in ODD_KEYS:
        assert v2.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode()
    walrus = karri.data_dir / "walrus"
    names = {p.name for p in walrus.rglob("*")}
    assert not any(part in names for key in ODD_KEYS for part in key.split("/") if len(part) > 3)
    known = ("blobs", "tmp", "bucket-changes", "account-changes", "write.lock")
    assert all(len(p.name) in (2, 32) or p.name in known for p in walrus.rglob("*"))
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in ODD_KEYS]})
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_odd_keys_through_the_cli(karri: Karri, tmp_path: Path) -> None:
    bucket = unique("oddcli")
    aws_s3(karri, "mb", f"s3://{bucket}")
    source = tmp_path / "f"
    source.write_bytes(b"cli")
    for key in ("ünï cødé/%41+x", "q?a=1&b#c"):
        aws_s3(karri, "cp", str(source), f"s3://{bucket}/{key}")
        out = tmp_path / hashlib.md5(key.encode()).hexdigest()
        aws_s3(karri, "cp", f"s3://{bucket}/{key}", str(out))
        assert out.read_bytes() == b"cli"
