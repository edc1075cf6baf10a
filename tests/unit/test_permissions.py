"""The launch and create-volume permission changes both attribute calls share, as the API
layer hands them over from either spelling."""

from __future__ import annotations

import pytest

from karri.api.ec2.permissions import permission_modification
from karri.cloud.images.service import LAUNCH_GRANTEE_ERRORS
from karri.cloud.permissions import PermissionChanges, permission_changes
from karri.cloud.volumes.snapshots import VOLUME_GRANTEE_ERRORS
from karri.errors import CloudError

ACCOUNT = "123456789012"


def changes(**request) -> PermissionChanges:
    return permission_changes(
        "LaunchPermission",
        permission_modification(request, "LaunchPermission", "UserGroups"),
        LAUNCH_GRANTEE_ERRORS,
    )


def code(**request) -> str:
    with pytest.raises(CloudError) as raised:
        changes(**request)
    return raised.value.code


def test_both_spellings() -> None:
    structured = changes(
        LaunchPermission={"Add": [{"UserId": ACCOUNT}], "Remove": [{"Group": "all"}]}
    )
    assert structured == PermissionChanges(frozenset({ACCOUNT}), frozenset({"all"}))
    flat = changes(OperationType="remove", UserIds=[ACCOUNT], UserGroups=["all"])
    assert flat == PermissionChanges(frozenset(), frozenset({ACCOUNT, "all"}))


def test_refusals() -> None:
    assert code() == "MissingParameter"
    assert code(UserIds=[ACCOUNT]) == "MissingParameter"  # add or remove?
    assert code(OperationType="bogus", UserIds=[ACCOUNT]) == "InvalidParameterValue"
    assert code(LaunchPermission={"Add": [{"UserId": "alice"}]}) == "InvalidAMIAttributeItemValue"
    assert code(LaunchPermission={"Add": [{"Group": "some"}]}) == "InvalidAMIAttributeItemValue"


def test_each_resource_refuses_in_its_own_words() -> None:
    def snapshot_code(entry: dict[str, str]) -> str:
        with pytest.raises(CloudError) as raised:
            request = {"CreateVolumePermission": {"Add": [entry]}}
            permission_changes(
                "CreateVolumePermission",
                permission_modification(request, "CreateVolumePermission", "GroupNames"),
                VOLUME_GRANTEE_ERRORS,
            )
        return raised.value.code

    assert snapshot_code({"UserId": "alice"}) == "InvalidUserID.Malformed"
    assert snapshot_code({}) == "MissingParameter"
    assert snapshot_code({"Group": "some"}) == "InvalidParameterValue"
