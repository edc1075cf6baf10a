"""cloud.instances.profiles on SQLite with the real cloud.iam: naming a profile (by name
or ARN, the caller's, holding a role) and the metadata service's credentials: issued on
first use, cached, renewed 15 minutes before they end, by a clock passed in."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from karri.api.auth.credentials import account_keys
from karri.cloud.iam.service import Iam
from karri.cloud.instances.profiles import InstanceProfiles
from karri.cloud.instances.requests import ProfileRef
from karri.db.engine import Database
from karri.db.models import Account
from karri.errors import CloudError

ACCOUNT, OTHER = "111111111111", "222222222222"
START = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def trust(principal: dict[str, str]) -> str:
    statement = {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def world(tmp_path: Path) -> tuple[Iam, InstanceProfiles, Clock]:
    db = Database(f"sqlite:///{tmp_path / 'k.db'}")
    with db.write_session() as session:
        session.add_all([Account(id=ACCOUNT, name="a"), Account(id=OTHER, name="b")])
    iam = Iam(db)
    for account in (ACCOUNT, OTHER):
        iam.roles.create_role(account, "web", trust({"Service": "ec2.amazonaws.com"}))
        iam.roles.create_instance_profile(account, "web", "/apps/")
        iam.roles.add_role_to_instance_profile(account, "web", "web")
    iam.roles.create_instance_profile(ACCOUNT, "empty", None)
    clock = Clock()
    return iam, InstanceProfiles(db, iam.roles, iam.sessions, clock), clock


def _code(call, *args) -> str:
    with pytest.raises(CloudError) as error:
        call(*args)
    return f"{error.value.code}: {error.value.message}"


def test_a_profile_is_named_by_name_or_arn_in_the_callers_account(world) -> None:
    _iam, profiles, _clock = world
    arn = f"arn:aws:iam::{ACCOUNT}:instance-profile/apps/web"
    by_name = profiles.resolve(ACCOUNT, ProfileRef(name="web"))
    assert by_name.arn == arn and by_name.id.startswith("AIPA")
    assert profiles.resolve(ACCOUNT, ProfileRef(arn=arn)) == by_name
    assert profiles.resolve(ACCOUNT, ProfileRef(arn=arn, name="web")) == by_name
    invalid_name = "InvalidParameterValue: Value ({}) for parameter iamInstanceProfile.name"
    for name in ("nosuch", "empty"):
        assert _code(profiles.resolve, ACCOUNT, ProfileRef(name=name)).startswith(
            invalid_name.format(name)
        )
    for wrong in (
        f"arn:aws:iam::{OTHER}:instance-profile/apps/web",  # another account's
        f"arn:aws:iam::{ACCOUNT}:instance-profile/web",  # not its path
        f"arn:aws:iam::{ACCOUNT}:role/apps/web",
        "web",
    ):
        message = _code(profiles.resolve, ACCOUNT, ProfileRef(arn=wrong))
        assert message.startswith(f"InvalidParameterValue: Value ({wrong}) for parameter ")
        assert "iamInstanceProfile.arn is invalid" in message
    assert _code(profiles.resolve, ACCOUNT, ProfileRef(arn=arn, name="other")).startswith(
        invalid_name.format("other")
    )
    assert _code(profiles.resolve, ACCOUNT, ProfileRef()).startswith("MissingParameter")


def test_credentials_are_issued_once_cached_and_renewed_before_they_end(world) -> None:
    iam, profiles, clock = world
    assert profiles.metadata("i-00000009") is None  # no profile: no iam/
    with profiles.db.write_session() as session:
        profile = profiles.resolve(ACCOUNT, ProfileRef(name="web"))
        profiles.attach(session, ACCOUNT, ["i-0000000a"], profile)
    first = profiles.metadata("i-0000000a")
    assert first is not None and first.code == "Success" and first.role_name == "web"
    assert (first.arn, first.id, first.last_updated) == (profile.arn, profile.id, START)
    credentials = first.credentials
    assert credentials is not None and credentials.expiration == START + timedelta(hours=6)
    key = account_keys(iam.keys).get(credentials.access_key_id)
    assert key is not None
    assert key.principal.caller.arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/web/i-0000000a"
    clock.now = START + timedelta(hours=5, minutes=44)
    assert profiles.metadata("i-0000000a") == first  # not yet
    clock.now = START + timedelta(hours=5, minutes=46)
    renewed = profiles.metadata("i-0000000a")
    assert renewed is not None and renewed.credentials is not None
    assert renewed.credentials.access_key_id != credentials.access_key_id
    assert renewed.last_updated == clock.now
    assert renewed.credentials.expiration == clock.now + timedelta(hours=6)


def test_a_role_that_does_not_trust_ec2_is_reported_not_served(world) -> None:
    iam, profiles, clock = world
    iam.roles.create_role(ACCOUNT, "mine", trust({"AWS": ACCOUNT}))
    iam.roles.create_instance_profile(ACCOUNT, "mine", None)
    iam.roles.add_role_to_instance_profile(ACCOUNT, "mine", "mine")
    with profiles.db.write_session() as session:
        profile = profiles.resolve(ACCOUNT, ProfileRef(name="mine"))
        profiles.attach(session, ACCOUNT, ["i-0000000b"], profile)
    served = profiles.metadata("i-0000000b")
    assert served is not None and served.credentials is None
    assert (served.code, served.role_name) == ("AssumeRoleUnauthorizedAccess", "mine")
    assert "EC2 cannot assume the role mine" in served.message
    iam.roles.update_trust_policy(ACCOUNT, "mine", trust({"Service": "ec2.amazonaws.com"}))
    assert profiles.metadata("i-0000000b") == served  # asked again a minute later
    clock.now = START + timedelta(seconds=61)
    again = profiles.metadata("i-0000000b")
    assert again is not None and again.code == "Success" and again.credentials is not None
