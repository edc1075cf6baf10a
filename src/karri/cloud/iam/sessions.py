"""STS's temporary credentials: AssumeRole (the role's trust policy decides, with
``sts:ExternalId``) and GetSessionToken. Stored, so every process serving requests finds
them; ``now`` is passed in so expiry can be tested without waiting."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from karri import policy
from karri.db.engine import Database
from karri.errors import CloudError

from . import models
from .errors import no_such_entity, validation_error
from .names import ROLE_SESSION_NAME, new_secret, new_unique_id
from .policies import Policies
from .store import get
from .users import check_tags

MIN_DURATION = 900
USER_SESSION_MAX = 129600
ROOT_SESSION_MAX = 3600
SESSION_DEFAULT = 43200
ROLE_SESSION_DEFAULT = 3600
INSTANCE_DURATION = 6 * 3600


@dataclass(frozen=True)
class Issued:
    access_key_id: str
    secret: str
    token: str
    expires_at: datetime
    assumed_arn: str | None = None  # AssumeRole: the session's ARN and id
    assumed_id: str | None = None
    packed_size: int = 0


def access_denied(message: str) -> CloudError:
    return CloudError("AccessDenied", message, 403)


class Sessions:
    def __init__(
        self,
        db: Database,
        policies: Policies,
        identity_policies: Callable[[policy.Principal], tuple[policy.Policy, ...]],
    ) -> None:
        self.db = db
        self.policies = policies
        self.identity_policies = identity_policies

    def assume_role(
        self,
        caller: policy.Principal,
        caller_session: Sequence[policy.Policy],
        role_arn: str,
        session_name: str,
        *,
        now: datetime,
        duration: int | None = None,
        external_id: str | None = None,
        session_policy: str | None = None,
        policy_arns: Sequence[str] = (),
        source_identity: str | None = None,
        tags: Mapping[str, str] | None = None,
        context: Mapping[str, policy.context.KeyValue] | None = None,
    ) -> Issued:
        if not ROLE_SESSION_NAME.fullmatch(session_name) or not session_name.isascii():
            raise validation_error(
                f"1 validation error detected: Value '{session_name}' at 'roleSessionName' "
                "failed to satisfy constraint: Member must satisfy regular expression pattern: "
                "[\\w+=,.@-]*"
            )
        role = self._role(role_arn)
        if role is None:
            raise access_denied(
                f"User: {caller.arn} is not authorized to perform: sts:AssumeRole on resource: "
                f"{role_arn}"
            )
        duration = _duration(duration, role.max_session_duration)
        tags = check_tags(tags or {})
        keys: dict[str, policy.context.KeyValue] = dict(context or {})
        if external_id is not None:
            keys["sts:ExternalId"] = external_id
        if source_identity is not None:
            keys["sts:SourceIdentity"] = source_identity
        trust = policy.parse(role.trust_policy, policy.TRUST)
        resource = policy.Resource(
            role_arn, account=role.account_id, policy=trust, policy_must_grant=True
        )
        # as on AWS, session tags and a source identity need the trust policy's leave too
        actions = ["sts:AssumeRole"]
        if tags:
            actions.append("sts:TagSession")
            keys.update(policy.tag_keys("aws:RequestTag", tags))
            keys["aws:TagKeys"] = tuple(tags)
        if source_identity is not None:
            actions.append("sts:SetSourceIdentity")
        identity = self.identity_policies(caller)
        for action in actions:
            request = policy.Request(caller, action, (resource,), keys)
            decision = policy.authorize(request, identity, session=tuple(caller_session) or None)
            if not decision.allowed:
                raise access_denied(
                    f"User: {caller.arn} is not authorized to perform: {action} on resource: "
                    f"{role_arn}"
                )
        documents = self._session_documents(role.account_id, session_policy, policy_arns)
        issued = self._issue(
            role.account_id,
            now,
            duration,
            role_id=role.id,
            session_name=session_name,
            documents=documents,
            source_identity=source_identity,
            tags=tags,
        )
        assumed = policy.Principal.role_session(role.account_id, role.name, session_name, role.id)
        packed = min(100, sum(len(d) for d in documents) * 100 // 2048) if documents else 0
        return Issued(
            issued.access_key_id,
            issued.secret,
            issued.token,
            issued.expires_at,
            assumed.arn,
            assumed.userid,
            packed,
        )

    def for_instance(
        self, account_id: str, profile_name: str, instance_id: str, *, now: datetime
    ) -> tuple[str, Issued]:
        """Credentials of an instance profile's role for the instance's metadata service
        (``iam/security-credentials/ROLE``): the role must trust ``ec2.amazonaws.com``.
        Returns the role's name and the credentials (six hours, as EC2's)."""
        with self.db.session() as session:
            profile = get(session, models.IamInstanceProfile, account_id, profile_name)
            role = session.get(models.IamRole, profile.role_id) if profile.role_id else None
        if role is None:
            raise no_such_entity(f"Instance profile {profile_name} has no role.")
        role_arn = policy.iam_arn(account_id, "role", role.name, role.path)
        trust = policy.parse(role.trust_policy, policy.TRUST)
        resource = policy.Resource(
            role_arn, account=account_id, policy=trust, policy_must_grant=True
        )
        ec2 = policy.Principal.aws_service("ec2.amazonaws.com")
        if not policy.authorize(policy.Request(ec2, "sts:AssumeRole", (resource,))).allowed:
            raise access_denied(f"The role {role.name} does not trust ec2.amazonaws.com")
        issued = self._issue(
            account_id, now, INSTANCE_DURATION, role_id=role.id, session_name=instance_id
        )
        return role.name, issued

    def session_token(
        self, caller: policy.Principal, *, now: datetime, duration: int | None = None
    ) -> Issued:
        if caller.type is policy.PrincipalType.ASSUMED_ROLE:
            raise access_denied("Cannot call GetSessionToken with session credentials")
        root = caller.type is policy.PrincipalType.ACCOUNT
        limit = ROOT_SESSION_MAX if root else USER_SESSION_MAX
        duration = min(SESSION_DEFAULT, limit) if duration is None else duration
        if duration > limit:
            raise validation_error(
                f"1 validation error detected: Value '{duration}' at 'durationSeconds' failed "
                f"to satisfy constraint: Member must have value less than or equal to {limit}"
            )
        duration = _duration(duration, limit)
        user_id = None if root else caller.userid
        return self._issue(caller.account, now, duration, user_id=user_id)

    def _issue(self, account_id: str, now: datetime, duration: int, **fields) -> Issued:
        documents = fields.pop("documents", ())
        tags = fields.pop("tags", {})
        row = models.IamSession(
            id=new_unique_id("session"),
            account_id=account_id,
            secret=new_secret(),
            token=base64.b64encode(b"karri" + secrets.token_bytes(96)).decode(),
            session_policies=json.dumps(list(documents)),
            tags=json.dumps(tags),
            created_at=now,
            expires_at=now + timedelta(seconds=duration),
            **fields,
        )
        with self.db.write_session() as session:
            # sessions over a day past their end are of no use to anyone
            session.execute(
                delete(models.IamSession).where(
                    models.IamSession.expires_at < now - timedelta(days=1)
                )
            )
            session.add(row)
        return Issued(row.id, row.secret, row.token, row.expires_at)

    def _role(self, role_arn: str) -> models.IamRole | None:
        try:
            parsed = policy.Arn.parse(role_arn)
        except ValueError:
            raise validation_error(f"{role_arn} is invalid") from None
        if parsed.service != "iam" or parsed.resource_type != "role":
            raise validation_error(f"{role_arn} is invalid")
        name = parsed.resource.rsplit("/", 1)[-1]
        with self.db.session() as session:
            role = session.scalar(
                select(models.IamRole).where(
                    models.IamRole.account_id == parsed.account,
                    models.IamRole.name_key == name.lower(),
                )
            )
            if role is None or f"role{role.path}{role.name}" != parsed.resource:
                return None
            return role

    def _session_documents(
        self, account_id: str, session_policy: str | None, policy_arns: Sequence[str]
    ) -> list[str]:
        documents: list[str] = []
        if session_policy is not None:
            policy.parse(session_policy, policy.SESSION)
            documents.append(session_policy)
        for arn in policy_arns:
            view = self.policies.get_policy(account_id, arn)
            documents.append(
                self.policies.get_version(account_id, arn, view.default_version).document
            )
        if policy.policy_size("".join(documents)) > 2048:
            raise CloudError(
                "PackedPolicyTooLarge",
                "Packed size of the session policies exceeds the limit.",
                400,
            )
        return documents


def _duration(duration: int | None, limit: int) -> int:
    """AssumeRole's DurationSeconds: an hour unless asked, 900 up to the role's maximum."""
    if duration is None:
        return min(ROLE_SESSION_DEFAULT, limit)
    if duration < MIN_DURATION:
        raise validation_error(
            f"1 validation error detected: Value '{duration}' at 'durationSeconds' failed to "
            f"satisfy constraint: Member must have value greater than or equal to {MIN_DURATION}"
        )
    if duration > limit:
        raise validation_error(
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
        )
    return duration
