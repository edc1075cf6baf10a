"""Accounts are isolated: account B cannot see, tag or delete account A's key pair."""

from __future__ import annotations

import pytest

from tests.conftest import Creds, Karri
from tests.integration.ec2_wire import error_of, unique


@pytest.fixture(scope="module")
def other_account(karri: Karri) -> Creds:
    """One second account for the module: each `karri account create` costs a process."""
    return karri.create_account(unique("bob").lower())


def test_other_account_cannot_see_tag_or_delete(karri: Karri, other_account: Creds) -> None:
    alice, bob = karri.client("ec2"), karri.client("ec2", other_account)
    name = unique("private")
    key = alice.create_key_pair(
        KeyName=name,
        TagSpecifications=[{"ResourceType": "key-pair", "Tags": [{"Key": "o", "Value": "a"}]}],
    )
    key_id = key["KeyPairId"]

    # See: neither listed, nor by name, id, filter or its tags.
    assert bob.describe_key_pairs()["KeyPairs"] == []
    assert error_of(bob.describe_key_pairs, KeyNames=[name])[0] == "InvalidKeyPair.NotFound"
    assert error_of(bob.describe_key_pairs, KeyPairIds=[key_id])[0] == "InvalidKeyPair.NotFound"
    found = bob.describe_key_pairs(Filters=[{"Name": "key-pair-id", "Values": [key_id]}])
    assert found["KeyPairs"] == []
    assert bob.describe_tags(Filters=[{"Name": "resource-id", "Values": [key_id]}])["Tags"] == []

    # Tag: as if it did not exist.
    tag = [{"Key": "owned-by", "Value": "bob"}]
    assert error_of(bob.create_tags, Resources=[key_id], Tags=tag) == (
        "InvalidKeyPair.NotFound",
        400,
    )
    assert error_of(bob.delete_tags, Resources=[key_id]) == ("InvalidKeyPair.NotFound", 400)

    # Delete: succeeds as for any missing key (as on AWS) and leaves Alice's key alone.
    bob.delete_key_pair(KeyName=name)
    bob.delete_key_pair(KeyPairId=key_id)
    info = alice.describe_key_pairs(KeyPairIds=[key_id])["KeyPairs"][0]
    assert info["KeyFingerprint"] == key["KeyFingerprint"]
    assert {t["Key"]: t["Value"] for t in info["Tags"]} == {"o": "a"}


def test_names_are_per_account(karri: Karri, other_account: Creds) -> None:
    alice, bob = karri.client("ec2"), karri.client("ec2", other_account)
    name = unique("shared-name")
    a = alice.create_key_pair(KeyName=name)
    b = bob.create_key_pair(KeyName=name)
    assert a["KeyPairId"] != b["KeyPairId"]
    bob.delete_key_pair(KeyName=name)
    assert alice.describe_key_pairs(KeyNames=[name])["KeyPairs"][0]["KeyPairId"] == a["KeyPairId"]
    assert error_of(bob.describe_key_pairs, KeyNames=[name])[0] == "InvalidKeyPair.NotFound"


def test_the_admin_account_is_ordinary_for_ec2(karri: Karri, other_account: Creds) -> None:
    """``eucalyptus`` has no extra sight through the EC2 API."""
    bob, admin = karri.client("ec2", other_account), karri.client("ec2")
    key_id = bob.create_key_pair(KeyName=unique("bobs"))["KeyPairId"]
    assert error_of(admin.describe_key_pairs, KeyPairIds=[key_id])[0] == "InvalidKeyPair.NotFound"
    assert admin.describe_tags(Filters=[{"Name": "resource-id", "Values": [key_id]}])["Tags"] == []
