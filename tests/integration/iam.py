"""IAM identities for tests: a user with keys, a role session's credentials, a policy."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import Creds, Karri


def policy(*statements: dict[str, Any]) -> str:
    """A policy document of these statements."""
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


TRUST_EC2 = policy(
    {
        "Effect": "Allow",
        "Principal": {"Service": "ec2.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }
)
"""A role's trust policy that lets EC2 (an instance profile's instances) assume it."""


def user_creds(karri: Karri, account: Creds, name: str) -> tuple[Creds, dict[str, Any]]:
    """A new user of ``account`` and its first access key (as CreateAccessKey gave it)."""
    iam = karri.client("iam", account)
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return (
        Creds(account.account_id, account.account_name, key["AccessKeyId"], key["SecretAccessKey"]),
        key,
    )


def session_creds(account: Creds, credentials: dict) -> Creds:
    """STS's ``Credentials`` as the test fixtures' ``Creds``."""
    return Creds(
        account.account_id,
        account.account_name,
        credentials["AccessKeyId"],
        credentials["SecretAccessKey"],
        credentials["SessionToken"],
    )
