"""Each account's EBS key (``cloud/volumes/keys.py``) on a migrated SQLite database, and
CreateVolume's encryption rule."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag

from karri.cloud.volumes.keys import EbsKeys, MasterKey, encryption_of
from karri.cloud.volumes.models import EbsEncryption
from karri.db.engine import Database
from karri.db.models import Account
from karri.errors import CloudError

A, B = "123456789012", "210987654321"


@pytest.fixture
def keys(tmp_path: Path) -> EbsKeys:
    db = Database(f"sqlite:///{tmp_path / 'k.db'}")
    with db.write_session() as session:
        session.add_all([Account(id=A, name="a"), Account(id=B, name="b")])
    return EbsKeys(db, MasterKey(tmp_path / "ebs-master.key"), "karri")


def test_each_account_has_its_own_wrapped_key(keys: EbsKeys, tmp_path: Path) -> None:
    passphrase = keys.passphrase(A)
    assert passphrase == keys.passphrase(A) != keys.passphrase(B)
    assert stat.S_IMODE((tmp_path / "ebs-master.key").stat().st_mode) == 0o600
    with keys.db.session() as session:
        row = session.get(EbsEncryption, A)
        assert row is not None and passphrase not in row.wrapped_key
    # the same master key read again (another process) opens the same passphrase
    again = EbsKeys(keys.db, MasterKey(tmp_path / "ebs-master.key"), "karri")
    assert again.passphrase(A) == passphrase
    # another master key opens nothing
    other = EbsKeys(keys.db, MasterKey(tmp_path / "other.key"), "karri")
    with pytest.raises(InvalidTag):
        other.passphrase(A)


def test_a_key_is_named_by_its_id_arn_or_alias(keys: EbsKeys) -> None:
    arn = keys.key_arn(A)
    assert arn.startswith(f"arn:aws:kms:karri:{A}:key/")
    for name in (
        None,
        arn,
        arn.rsplit("/", 1)[1],
        "alias/aws/ebs",
        f"arn:aws:kms:karri:{A}:alias/aws/ebs",
    ):
        assert keys.resolve(A, name) == arn
    for name in ("alias/mine", keys.key_arn(B), f"arn:aws:kms:karri:{B}:alias/aws/ebs"):
        with pytest.raises(CloudError) as error:
            keys.resolve(A, name)
        assert error.value.code == "InvalidParameterValue"


def test_encryption_by_default(keys: EbsKeys) -> None:
    assert keys.by_default(A) is False
    assert keys.set_by_default(A, True) is True
    assert (keys.by_default(A), keys.by_default(B)) == (True, False)


@pytest.mark.parametrize(
    ("requested", "key", "by_default", "snapshot", "expected"),
    [
        (False, None, False, None, False),
        (True, None, False, None, True),
        (False, None, True, None, True),
        (False, None, False, True, True),  # an encrypted snapshot's volume is encrypted
        (True, "alias/aws/ebs", False, True, True),
        (False, None, False, False, False),
        (True, None, False, False, True),  # a plain snapshot's bytes, encrypted
        (False, None, True, False, True),
        (False, "alias/aws/ebs", False, None, "InvalidParameterDependency"),
    ],
)
def test_encryption_of(
    requested: bool,
    key: str | None,
    by_default: bool,
    snapshot: bool | None,
    expected: object,
) -> None:
    def decide() -> bool:
        return encryption_of(
            requested=requested,
            kms_key_id=key,
            by_default=by_default,
            snapshot_encrypted=snapshot,
        )

    if isinstance(expected, bool):
        assert decide() is expected
    else:
        with pytest.raises(CloudError) as error:
            decide()
        assert error.value.code == expected
