"""cloud.iam on SQLite: the identity policies reader (and its cache following changes),
key lookup for users and sessions, AssumeRole's trust policy, session expiry by a clock
passed in, and the key store forgetting a key that stopped working."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from karri import policy
from karri.api.auth.credentials import account_keys
from karri.api.auth.errors import ExpiredToken, InvalidToken
from karri.cloud.iam.service import Iam
from karri.db.engine import Database
from karri.db.models import Account
from karri.errors import CloudError

ACCOUNT, OTHER = "111111111111", "222222222222"
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def allow(action: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}],
        }
    )


def trust(principal: str, external_id: str | None = None) -> str:
    statement: dict = {
        "Effect": "Allow",
        "Principal": {"AWS": principal},
        "Action": "sts:AssumeRole",
    }
    if external_id:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


@pytest.fixture
def iam(tmp_path: Path) -> Iam:
    db = Database(f"sqlite:///{tmp_path / 'k.db'}")
    with db.write_session() as session:
        session.add_all([Account(id=ACCOUNT, name="a"), Account(id=OTHER, name="b")])
    return Iam(db)


def user(iam: Iam, name: str = "alice") -> policy.Principal:
    view = iam.users.create_user(ACCOUNT, name, None, {})
    return policy.Principal.user(ACCOUNT, view.name, view.id)


def test_a_users_policies_are_its_own_its_groups_and_attached(iam: Iam) -> None:
    alice = user(iam)
    assert iam.identity_policies(alice) == ()
    iam.policies.put_inline(ACCOUNT, "user", "alice", "own", allow("ec2:Describe*"))
    iam.users.create_group(ACCOUNT, "g", None)
    iam.users.add_user_to_group(ACCOUNT, "g", "alice")
    iam.policies.put_inline(ACCOUNT, "group", "g", "grp", allow("s3:GetObject"))
    iam.policies.attach(ACCOUNT, "user", "alice", "arn:aws:iam::aws:policy/AmazonS3FullAccess")
    managed = iam.policies.create_policy(ACCOUNT, "m", allow("iam:GetUser"), None, "")
    iam.policies.attach(ACCOUNT, "group", "g", managed.arn)
    found = iam.identity_policies(alice)
    actions = {p.statements[0].actions.patterns for p in found}
    assert actions == {("ec2:Describe*",), ("s3:GetObject",), ("s3:*",), ("iam:GetUser",)}
    assert iam.identity_policies(policy.Principal.root(ACCOUNT)) == ()


def test_a_change_holds_from_the_next_call(iam: Iam) -> None:
    alice = user(iam)
    iam.policies.put_inline(ACCOUNT, "user", "alice", "p", allow("ec2:Describe*"))
    first = iam.identity_policies(alice)
    assert iam.identity_policies(alice) is first  # cached
    managed = iam.policies.create_policy(ACCOUNT, "m", allow("ec2:A"), None, "")
    iam.policies.attach(ACCOUNT, "user", "alice", managed.arn)
    assert len(iam.identity_policies(alice)) == 2
    iam.policies.create_version(ACCOUNT, managed.arn, allow("ec2:B"), set_default=True)
    patterns = {p.statements[0].actions.patterns for p in iam.identity_policies(alice)}
    assert ("ec2:B",) in patterns and ("ec2:A",) not in patterns
    iam.policies.delete_inline(ACCOUNT, "user", "alice", "p")
    assert len(iam.identity_policies(alice)) == 1


def test_a_role_sessions_policies_are_its_roles(iam: Iam) -> None:
    role = iam.roles.create_role(ACCOUNT, "r", trust(ACCOUNT))
    iam.policies.put_inline(ACCOUNT, "role", "r", "p", allow("ec2:*"))
    session = policy.Principal.role_session(ACCOUNT, "r", "s", role.id)
    assert [p.statements[0].actions.patterns for p in iam.identity_policies(session)] == [
        ("ec2:*",)
    ]


def test_keys_find_users_and_stop_at_once(iam: Iam) -> None:
    user(iam)
    keys = account_keys(iam.keys, iam.generation)
    iam.key_listeners.append(keys.forget)
    key = iam.access_keys.create(ACCOUNT, "alice")
    found = keys.get(key.access_key_id)
    assert found is not None and found.principal.caller.username == "alice"
    assert not found.principal.is_root
    iam.access_keys.set_active(ACCOUNT, "alice", key.access_key_id, False)
    assert keys.get(key.access_key_id) is None
    iam.access_keys.set_active(ACCOUNT, "alice", key.access_key_id, True)
    assert keys.get(key.access_key_id) is not None
    iam.access_keys.delete(ACCOUNT, "alice", key.access_key_id)
    assert keys.get(key.access_key_id) is None


def test_a_key_store_follows_the_change_counter_of_other_processes(iam: Iam) -> None:
    """An S3 worker's store is told nothing: it sees the shared counter move."""
    user(iam)
    key = iam.access_keys.create(ACCOUNT, "alice")
    elsewhere = account_keys(iam.keys, iam.generation)  # no listener
    assert elsewhere.get(key.access_key_id) is not None
    iam.access_keys.delete(ACCOUNT, "alice", key.access_key_id)
    assert elsewhere.get(key.access_key_id) is None


def test_assume_role_evaluates_the_trust_policy_and_external_id(iam: Iam) -> None:
    role = iam.roles.create_role(ACCOUNT, "r", trust(f"arn:aws:iam::{OTHER}:root", "x"))
    guest = policy.Principal.root(OTHER)
    with pytest.raises(CloudError) as refused:
        iam.sessions.assume_role(guest, (), role.arn, "s1", now=NOW)
    assert refused.value.code == "AccessDenied"
    issued = iam.sessions.assume_role(guest, (), role.arn, "s1", now=NOW, external_id="x")
    assert issued.access_key_id.startswith("ASIA")
    assert issued.assumed_arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/r/s1"
    assert issued.expires_at == NOW + timedelta(hours=1)
    # a user of the other account needs its own policy's allow as well
    outsider = policy.Principal.user(OTHER, "bob", "AIDABOB")
    with pytest.raises(CloudError):
        iam.sessions.assume_role(outsider, (), role.arn, "s1", now=NOW, external_id="x")
    with pytest.raises(CloudError) as too_long:
        iam.sessions.assume_role(guest, (), role.arn, "s1", now=NOW, external_id="x", duration=3601)
    assert too_long.value.code == "ValidationError"


def test_session_credentials_expire(iam: Iam) -> None:
    role = iam.roles.create_role(ACCOUNT, "r", trust(ACCOUNT))
    issued = iam.sessions.assume_role(
        policy.Principal.root(ACCOUNT), (), role.arn, "s1", now=NOW, duration=900
    )
    key = account_keys(iam.keys).get(issued.access_key_id)
    assert key is not None
    assert key.principal.caller.arn == issued.assumed_arn
    key.check_token(issued.token, NOW + timedelta(seconds=899))
    with pytest.raises(ExpiredToken):
        key.check_token(issued.token, NOW + timedelta(seconds=900))
    with pytest.raises(InvalidToken):
        key.check_token("other", NOW)
    with pytest.raises(InvalidToken):
        key.check_token(None, NOW)


def test_session_policies_travel_with_the_key(iam: Iam) -> None:
    role = iam.roles.create_role(ACCOUNT, "r", trust(ACCOUNT))
    issued = iam.sessions.assume_role(
        policy.Principal.root(ACCOUNT),
        (),
        role.arn,
        "s1",
        now=NOW,
        session_policy=allow("ec2:DescribeInstances"),
        policy_arns=["arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"],
    )
    key = account_keys(iam.keys).get(issued.access_key_id)
    assert key is not None and len(key.principal.session_policies) == 2


def test_nothing_crosses_accounts(iam: Iam) -> None:
    user(iam)
    with pytest.raises(CloudError) as missing:
        iam.users.get_user(OTHER, "alice")
    assert (missing.value.code, missing.value.status) == ("NoSuchEntity", 404)
    managed = iam.policies.create_policy(ACCOUNT, "m", allow("ec2:A"), None, "")
    iam.users.create_user(OTHER, "alice", None, {})
    with pytest.raises(CloudError):
        iam.policies.attach(OTHER, "user", "alice", managed.arn)
    assert iam.users.list_users(OTHER)[0].arn == f"arn:aws:iam::{OTHER}:user/alice"


def test_login_profiles_keep_only_a_hash(iam: Iam) -> None:
    from karri.cloud.iam import models
    from karri.cloud.iam.logins import password_matches

    user(iam)
    with pytest.raises(CloudError) as weak:
        iam.logins.create(ACCOUNT, "alice", "password", False)
    assert weak.value.code == "PasswordPolicyViolation"
    iam.logins.create(ACCOUNT, "alice", "Corr3ct-horse", True)
    with iam.users.db.session() as session:
        stored = session.query(models.IamLoginProfile).one().password_hash
    assert "Corr3ct" not in stored and password_matches(stored, "Corr3ct-horse")
    assert not password_matches(stored, "Corr3ct-horsE")
    with pytest.raises(CloudError) as conflict:
        iam.users.delete_user(ACCOUNT, "alice")
    assert conflict.value.code == "DeleteConflict"
    iam.logins.delete(ACCOUNT, "alice")
    iam.users.delete_user(ACCOUNT, "alice")


def test_an_instance_profiles_role_gives_credentials_if_it_trusts_ec2(iam: Iam) -> None:
    ec2_trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "ec2.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    )
    iam.roles.create_role(ACCOUNT, "web", ec2_trust)
    iam.roles.create_instance_profile(ACCOUNT, "web", None)
    with pytest.raises(CloudError) as empty:
        iam.sessions.for_instance(ACCOUNT, "web", "i-12345678", now=NOW)
    assert empty.value.code == "NoSuchEntity"
    iam.roles.add_role_to_instance_profile(ACCOUNT, "web", "web")
    role, issued = iam.sessions.for_instance(ACCOUNT, "web", "i-12345678", now=NOW)
    key = account_keys(iam.keys).get(issued.access_key_id)
    assert role == "web" and key is not None
    assert key.principal.caller.arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/web/i-12345678"
    iam.roles.create_role(ACCOUNT, "other", trust(ACCOUNT))
    iam.roles.create_instance_profile(ACCOUNT, "other", None)
    iam.roles.add_role_to_instance_profile(ACCOUNT, "other", "other")
    with pytest.raises(CloudError) as untrusted:
        iam.sessions.for_instance(ACCOUNT, "other", "i-12345678", now=NOW)
    assert untrusted.value.code == "AccessDenied"


def test_session_tags_and_source_identity_need_the_trust_policys_leave(iam: Iam) -> None:
    root = policy.Principal.root(ACCOUNT)
    plain = iam.roles.create_role(ACCOUNT, "plain", trust(ACCOUNT))
    for extra in ({"tags": {"team": "a"}}, {"source_identity": "alice"}):
        with pytest.raises(CloudError) as refused:
            iam.sessions.assume_role(root, (), plain.arn, "s1", now=NOW, **extra)
        assert refused.value.code == "AccessDenied"
    document = json.loads(trust(ACCOUNT))
    document["Statement"][0]["Action"] = ["sts:AssumeRole", "sts:TagSession"]
    tagged = iam.roles.create_role(ACCOUNT, "tagged", json.dumps(document))
    issued = iam.sessions.assume_role(root, (), tagged.arn, "s1", now=NOW, tags={"team": "a"})
    key = account_keys(iam.keys).get(issued.access_key_id)
    assert key is not None and key.principal.caller.tags == {"team": "a"}
