"""The `karri` admin command: accounts and their credentials, `karri status`."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.conftest import Karri, read_rc
from tests.integration.ec2_wire import unique


def test_account_create_list_credentials(karri: Karri, tmp_path: Path) -> None:
    name = unique("acct").lower()
    created = karri.create_account(name)
    assert re.fullmatch(r"[1-9]\d{11}", created.account_id)
    assert created.account_name == name
    assert created.access_key_id and len(created.secret_access_key) >= 40

    listed = json.loads(karri.cli("account", "list", "--json").stdout)
    assert {"account_id": created.account_id, "account_name": name} in listed
    assert "eucalyptus" in {a["account_name"] for a in listed}

    again = karri.cli("account", "create", name, check=False)
    assert again.returncode != 0 and "already exists" in again.stdout + again.stderr

    rc_path = tmp_path / "acct.rc"
    karri.cli("account", "credentials", name, "-o", str(rc_path))
    assert rc_path.stat().st_mode & 0o077 == 0
    rc = read_rc(rc_path)
    assert rc["AWS_ACCESS_KEY_ID"] == created.access_key_id
    assert rc["AWS_SECRET_ACCESS_KEY"] == created.secret_access_key
    assert rc["EC2_URL"].rstrip("/") == karri.ec2_url
    assert rc["AWS_ENDPOINT_URL_S3_CONTROL"] == karri.s3_url
    assert rc["AWS_DATA_PATH"] == karri.rc["AWS_DATA_PATH"]  # s3control's endpoint rules
    # The rc file's credentials work against the cloud.
    ec2 = karri.client("ec2", created)
    assert ec2.describe_key_pairs()["KeyPairs"] == []
    missing = karri.cli("account", "credentials", "nobody-here", check=False)
    assert missing.returncode != 0


def test_status_json(karri: Karri) -> None:
    karri.client("ec2").create_key_pair(KeyName=unique("status"))
    report = json.loads(karri.cli("status", "--json").stdout)
    assert report["running"] is True
    assert report["pid"] == karri.process.pid
    assert report["endpoints"]["ec2"].rstrip("/") == karri.ec2_url
    assert report["endpoints"]["s3"].rstrip("/") == karri.s3_url
    assert report["components"] and all(isinstance(v, str) for v in report["components"].values())
    assert "accelerator" in report
    assert report["s3_processes"][0] == karri.process.pid
    assert report["counts"]["accounts"] >= 1 and report["counts"]["key pairs"] >= 1
    table = karri.cli("status").stdout
    assert "running" in table and karri.ec2_url in table and "S3 processes" in table
