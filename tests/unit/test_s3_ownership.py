"""Who owns a new object under each Object Ownership setting, and which ACLs are taken."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from karri.api.s3 import ownership
from karri.walrus import BucketInfo, S3Error, acls

OWNER, WRITER = "111111111111", "222222222222"


class NoBlock:
    """No public access block: every ACL may be set."""

    def check_acl(self, acl: dict | None) -> None:
        pass


@dataclass
class FakeRequest:
    principal: str
    header: dict[str, str] = field(default_factory=dict)
    access: NoBlock = field(default_factory=NoBlock)


def bucket(setting: str | None) -> BucketInfo:
    configs = {ownership.CONFIG: setting} if setting else {}
    return BucketInfo("b", OWNER, "", "", datetime.now(UTC), acls.private(OWNER), None, configs)


def written(setting: str | None, **header: str) -> tuple[str, dict]:
    request = FakeRequest(WRITER, {k.replace("_", "-"): v for k, v in header.items()})
    return ownership.new_object(request, bucket(setting))  # type: ignore[arg-type]


FULL = "bucket-owner-full-control"


@pytest.mark.parametrize("setting", [None, ownership.WRITER])
def test_the_writer_owns_what_it_writes(setting) -> None:
    assert written(setting) == (WRITER, acls.private(WRITER))
    owner, acl = written(setting, x_amz_acl=FULL)
    assert owner == WRITER and [OWNER, acls.FULL_CONTROL] in acl["grants"]


def test_preferred_gives_the_bucket_owner_what_is_written_with_full_control() -> None:
    assert written(ownership.PREFERRED, x_amz_acl=FULL) == (OWNER, acls.private(OWNER))
    assert written(ownership.PREFERRED)[0] == WRITER
    assert written(ownership.PREFERRED, x_amz_acl="public-read")[0] == WRITER


def test_enforced_owns_everything_and_takes_only_the_owners_full_control() -> None:
    assert written(ownership.ENFORCED) == (OWNER, acls.private(OWNER))
    assert written(ownership.ENFORCED, x_amz_acl=FULL) == (OWNER, acls.private(OWNER))
    grant = f'id="{OWNER}"'
    assert written(ownership.ENFORCED, x_amz_grant_full_control=grant)[0] == OWNER
    for header in ({"x_amz_acl": "private"}, {"x_amz_grant_read": f'id="{WRITER}"'}):
        with pytest.raises(S3Error) as refused:
            written(ownership.ENFORCED, **header)
        assert refused.value.code == "AccessControlListNotSupported"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ({}, ownership.ENFORCED),
        ({"x-amz-acl": "private"}, ownership.PREFERRED),
        ({"x-amz-object-ownership": "ObjectWriter"}, ownership.WRITER),
        ({"x-amz-object-ownership": "BucketOwnerEnforced", "x-amz-acl": "private"}, "Enforced"),
    ],
)
def test_the_setting_a_new_bucket_gets(header, expected) -> None:
    request = FakeRequest(OWNER, header)
    acl = acls.private(OWNER) if "x-amz-acl" in header else None
    assert ownership.requested_at_create(request, acl).endswith(expected)  # type: ignore[arg-type]


def test_a_bucket_with_acls_off_judges_objects_by_the_owner_alone() -> None:
    public = acls.canned("public-read", WRITER, OWNER, bucket=False)
    assert bucket(ownership.ENFORCED).object_acl(public) == acls.private(OWNER)
    assert bucket(ownership.PREFERRED).object_acl(public) is public
