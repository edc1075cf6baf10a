"""What IAM says about the account itself: its alias and GetAccountSummary."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from karri.db.engine import Database

from . import models
from .errors import already_exists, no_such_entity, validation_error

ALIAS = re.compile(r"^[a-z0-9](([a-z0-9]|-(?!-)){1,61}[a-z0-9])?$")

QUOTAS = {
    "UsersQuota": 5000,
    "GroupsQuota": 300,
    "RolesQuota": 1000,
    "PoliciesQuota": 1500,
    "InstanceProfilesQuota": 1000,
    "AccessKeysPerUserQuota": 2,
    "GroupsPerUserQuota": 10,
    "AttachedPoliciesPerUserQuota": 10,
    "AttachedPoliciesPerGroupQuota": 10,
    "AttachedPoliciesPerRoleQuota": 10,
    "PolicyVersionsInUseQuota": 10000,
    "VersionsPerPolicyQuota": 5,
    "PolicySizeQuota": 6144,
    "UserPolicySizeQuota": 2048,
    "GroupPolicySizeQuota": 5120,
    "RolePolicySizeQuota": 10240,
    "AssumeRolePolicySizeQuota": 2048,
}


class AccountInfo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create_alias(self, account_id: str, alias: str) -> None:
        if not ALIAS.match(alias) or alias.isdigit():
            raise validation_error(
                f"1 validation error detected: Value '{alias}' at 'accountAlias' failed to "
                "satisfy constraint: Member must satisfy regular expression pattern: "
                "^[a-z0-9]([a-z0-9]|-(?!-)){1,61}[a-z0-9]$"
            )
        with self.db.write_session() as session:
            taken = session.scalar(
                select(models.IamAccountAlias).where(models.IamAccountAlias.alias == alias)
            )
            if taken is not None and taken.account_id != account_id:
                raise already_exists(f"The account alias {alias} already exists.")
            row = session.get(models.IamAccountAlias, account_id)
            if row is None:
                session.add(models.IamAccountAlias(account_id=account_id, alias=alias))
            else:
                row.alias = alias

    def delete_alias(self, account_id: str, alias: str) -> None:
        with self.db.write_session() as session:
            row = session.get(models.IamAccountAlias, account_id)
            if row is None or row.alias != alias:
                raise no_such_entity(f"The account alias {alias} cannot be found.")
            session.delete(row)

    def aliases(self, account_id: str) -> list[str]:
        with self.db.session() as session:
            row = session.get(models.IamAccountAlias, account_id)
            return [row.alias] if row else []

    def summary(self, account_id: str) -> dict[str, int]:
        counts: dict[str, int] = dict(QUOTAS)
        with self.db.session() as session:
            for key, model in (
                ("Users", models.IamUser),
                ("Groups", models.IamGroup),
                ("Roles", models.IamRole),
                ("Policies", models.IamManagedPolicy),
                ("InstanceProfiles", models.IamInstanceProfile),
            ):
                counts[key] = (
                    session.scalar(select(func.count()).where(model.account_id == account_id)) or 0
                )
            counts["PolicyVersionsInUse"] = (
                session.scalar(
                    select(func.count()).where(models.IamAttachment.account_id == account_id)
                )
                or 0
            )
        counts["AccountMFAEnabled"] = 0
        counts["AccountAccessKeysPresent"] = 1
        counts["MFADevices"] = counts["MFADevicesInUse"] = 0
        counts["ServerCertificates"] = 0
        counts["ServerCertificatesQuota"] = 20
        return counts
