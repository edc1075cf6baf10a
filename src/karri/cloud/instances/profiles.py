"""IAM instance profiles on instances: RunInstances' ``IamInstanceProfile``, the four
association calls, and the role credentials the metadata service serves.

A profile is named by name or ARN and must be the caller's and hold a role (else EC2's
``InvalidParameterValue``). An association is written ``associated`` at once, since the
metadata service asks the cloud at every request, so it holds from the next one; the calls
answer ``associating``/``disassociating`` as EC2 does. An ended association stays visible,
``disassociated``, for an hour, as does one whose instance was terminated.

Credentials are issued lazily, at the instance's first metadata request, by
``cloud.iam``'s ``Sessions.for_instance`` (role session name: the instance id), cached
here and renewed ``RENEW_BEFORE`` their end: AWS has new ones ready at least five minutes
before, and botocore refreshes 15 minutes before (10 mandatory), so it gets new ones then.
A profile whose role cannot be had is asked again after ``RETRY_AFTER``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from karri.cloud.filters import FilterSet, paginate
from karri.cloud.instances import states
from karri.cloud.instances.models import Instance
from karri.cloud.instances.profile_models import ProfileAssociation
from karri.cloud.instances.requests import ProfileRef
from karri.db.engine import Database
from karri.errors import CloudError, invalid_value, missing_parameter
from karri.ids import is_valid_id, new_id
from karri.node import ProfileMetadata, RoleCredentials

ASSOCIATED, DISASSOCIATED = "associated", "disassociated"
RENEW_BEFORE = timedelta(minutes=15)
RETRY_AFTER = timedelta(seconds=60)
FORGET_AFTER = timedelta(hours=1)
_ASSOCIATION_ID = re.compile(r"iip-assoc-([0-9a-f]{8}|[0-9a-f]{17})")
_PROFILE_ARN = re.compile(r"arn:aws:iam::(\d{12}):instance-profile(/.*)?/([^/]+)")


class ProfileEntity(Protocol):
    """What IAM answers of an instance profile (``cloud.iam.views.EntityView``)."""

    id: str
    name: str
    arn: str
    roles: tuple[Any, ...]


class ProfileDirectory(Protocol):
    """The account's instance profiles (``cloud.iam.roles.Roles``)."""

    def get_instance_profile(self, account_id: str, name: str) -> ProfileEntity:
        """The profile, or a ``CloudError`` (``NoSuchEntity``)."""
        ...


class IssuedCredentials(Protocol):
    access_key_id: str
    secret: str
    token: str
    expires_at: datetime


class RoleSessions(Protocol):
    """A profile's role's credentials (``cloud.iam.sessions.Sessions``)."""

    def for_instance(
        self, account_id: str, profile_name: str, instance_id: str, *, now: datetime
    ) -> tuple[str, IssuedCredentials]: ...


@dataclass(frozen=True)
class Profile:
    """A profile as an instance holds it."""

    id: str
    name: str
    arn: str


@dataclass(frozen=True)
class AssociationView:
    association_id: str
    instance_id: str
    profile: Profile
    state: str
    created: datetime


FILTERS: FilterSet[AssociationView] = FilterSet(
    {"instance-id": lambda a: a.instance_id, "state": lambda a: a.state}, tags=False
)


def _profile_error(ref: ProfileRef) -> CloudError:
    if ref.arn is not None:
        return invalid_value(
            f"Value ({ref.arn}) for parameter iamInstanceProfile.arn is invalid. "
            "Invalid IAM Instance Profile ARN"
        )
    return invalid_value(
        f"Value ({ref.name}) for parameter iamInstanceProfile.name is invalid. "
        "Invalid IAM Instance Profile name"
    )


def _association_not_found(association_id: str) -> CloudError:
    return CloudError(
        "InvalidAssociationID.NotFound",
        f"The association ID '{association_id}' does not exist",
    )


class InstanceProfiles:
    def __init__(
        self,
        db: Database,
        directory: ProfileDirectory,
        sessions: RoleSessions,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.db = db
        self.directory = directory
        self.sessions = sessions
        self.clock = clock
        self._lock = threading.Lock()
        # instance id -> (what the metadata service serves, until when)
        self._served: dict[str, tuple[ProfileMetadata | None, datetime]] = {}

    # -- naming a profile -----------------------------------------------------------

    def resolve(self, account_id: str, ref: ProfileRef | None) -> Profile:
        """The caller's profile that ``ref`` names, if it holds a role."""
        entity = self._entity(account_id, ref)
        return Profile(entity.id, entity.name, entity.arn)

    def role_arns(self, account_id: str, named: Sequence[str]) -> dict[str, str]:
        """The role ARN of each of the account's profiles named (by name or ARN) that
        holds one: what ``iam:PassRole`` is asked on. Others are left out."""
        found = {}
        for value in named:
            ref = ProfileRef(arn=value) if value.startswith("arn:") else ProfileRef(name=value)
            try:
                found[value] = self._entity(account_id, ref).roles[0].arn
            except CloudError:
                continue
        return found

    def _entity(self, account_id: str, ref: ProfileRef | None) -> ProfileEntity:
        if ref is None or (ref.arn is None and ref.name is None):
            raise missing_parameter("iamInstanceProfile")
        name = ref.name
        if ref.arn is not None:
            match = _PROFILE_ARN.fullmatch(ref.arn)
            if match is None or match.group(1) != account_id:
                raise _profile_error(ref)
            if name is not None and name != match.group(3):
                raise _profile_error(ProfileRef(name=name))
            name = match.group(3)
        assert name is not None
        try:
            entity = self.directory.get_instance_profile(account_id, name)
        except CloudError:
            raise _profile_error(ref) from None
        if (ref.arn is not None and entity.arn != ref.arn) or not entity.roles:
            raise _profile_error(ref)
        return entity

    # -- RunInstances and DescribeInstances ----------------------------------------

    def attach(
        self, session: Session, account_id: str, instance_ids: Sequence[str], profile: Profile
    ) -> None:
        """RunInstances' association of each new instance (in its transaction)."""
        for instance_id in instance_ids:
            session.add(self._row(session, account_id, instance_id, profile))

    def of_instances(self, session: Session, instance_ids: Sequence[str]) -> dict[str, Profile]:
        """The profile each of these instances holds now (a terminated one holds none)."""
        rows = session.scalars(
            select(ProfileAssociation)
            .join(Instance, Instance.id == ProfileAssociation.instance_id)
            .where(
                ProfileAssociation.instance_id.in_(instance_ids),
                ProfileAssociation.state == ASSOCIATED,
                Instance.state != states.TERMINATED,
            )
        )
        return {r.instance_id: _profile(r) for r in rows}

    # -- the association calls -----------------------------------------------------

    def associate(
        self, account_id: str, instance_id: str | None, ref: ProfileRef | None
    ) -> AssociationView:
        if not instance_id:
            raise missing_parameter("instanceId")
        profile = self.resolve(account_id, ref)
        with self.db.write_session() as session:
            instance = self._instance(session, account_id, instance_id)
            current = self._current(session, instance.id)
            if current is not None:
                raise CloudError(
                    "IncorrectState", f"There is an existing association for instance {instance.id}"
                )
            row = self._row(session, account_id, instance.id, profile)
            session.add(row)
            view = _view(row, "associating")
        self._forget(instance_id)
        return view

    def replace(
        self, account_id: str, association_id: str | None, ref: ProfileRef | None
    ) -> AssociationView:
        if not association_id:
            raise missing_parameter("associationId")
        profile = self.resolve(account_id, ref)
        with self.db.write_session() as session:
            old = self._association(session, account_id, association_id)
            self._end(old)
            row = self._row(session, account_id, old.instance_id, profile)
            session.add(row)
            view = _view(row, "associating")
        self._forget(view.instance_id)
        return view

    def disassociate(self, account_id: str, association_id: str | None) -> AssociationView:
        if not association_id:
            raise missing_parameter("associationId")
        with self.db.write_session() as session:
            row = self._association(session, account_id, association_id)
            self._end(row)
            view = _view(row, "disassociating")
        self._forget(view.instance_id)
        return view

    def describe(
        self,
        account_id: str,
        ids: Sequence[str] | None = None,
        filters: Sequence[Mapping[str, Any]] | None = None,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> tuple[list[AssociationView], str | None]:
        if max_results is not None and not 5 <= max_results <= 1000:
            raise invalid_value(
                f"Value ({max_results}) for parameter maxResults is invalid. "
                "Expecting a value between 5 and 1000."
            )
        cutoff = self.clock() - timedelta(seconds=states.TERMINATED_VISIBLE_SECONDS)
        with self.db.session() as session:
            pairs = session.execute(
                select(ProfileAssociation, Instance.state, Instance.terminated_at)
                .join(Instance, Instance.id == ProfileAssociation.instance_id)
                .where(
                    ProfileAssociation.account_id == account_id,
                    Instance.account_id == account_id,
                )
            ).all()
        views = []
        for row, instance_state, terminated_at in pairs:
            ended = row.ended_at
            state = row.state
            if instance_state == states.TERMINATED and state == ASSOCIATED:
                state, ended = DISASSOCIATED, terminated_at
            if state == DISASSOCIATED and (ended is None or ended < cutoff):
                continue
            views.append(_view(row, state))
        if ids:
            known = {v.association_id for v in views}
            for association_id in ids:
                if association_id not in known:
                    raise _association_not_found(association_id)
            views = [v for v in views if v.association_id in set(ids)]
        views = FILTERS.apply(views, filters)
        page = paginate(
            views,
            lambda v: v.association_id,
            max_results,
            next_token,
            kind="iam-instance-profile-associations",
            ids_given=bool(ids),
        )
        return page.items, page.next_token

    # -- the metadata service ------------------------------------------------------

    def metadata(self, instance_id: str) -> ProfileMetadata | None:
        """``meta-data/iam/`` of a running instance, its credentials issued on first use
        and renewed before they end (called on a worker thread of the reconciler)."""
        now = self.clock()
        with self._lock:
            served = self._served.get(instance_id)
            if served is not None and now < served[1]:
                return served[0]
        answer, until = self._issue(instance_id, now)
        with self._lock:
            # what ended long ago is of no use (terminated instances are asked no more)
            for old in [i for i, (_a, end) in self._served.items() if end < now - FORGET_AFTER]:
                del self._served[old]
            self._served[instance_id] = (answer, until)
        return answer

    def _issue(self, instance_id: str, now: datetime) -> tuple[ProfileMetadata | None, datetime]:
        with self.db.session() as session:
            row = self._current(session, instance_id)
            if row is not None:
                session.expunge(row)
        if row is None:
            return None, now + RETRY_AFTER
        base = ProfileMetadata(row.profile_arn, row.profile_id, now)
        try:
            entity = self.directory.get_instance_profile(row.account_id, row.profile_name)
        except CloudError:
            return base, now + RETRY_AFTER  # deleted
        if entity.id != row.profile_id or not entity.roles:
            return base, now + RETRY_AFTER  # deleted and made again, or its role removed
        try:
            role_name, issued = self.sessions.for_instance(
                row.account_id, row.profile_name, instance_id, now=now
            )
        except CloudError:  # the role does not trust ec2.amazonaws.com
            role = entity.roles[0].name
            message = (
                f"EC2 cannot assume the role {role}. Please see documentation at "
                "https://docs.aws.amazon.com/IAM/latest/UserGuide/"
                "id_roles_use_switch-role-ec2.html#troubleshoot_iam-ec2_errors-info-doc."
            )
            failed = ProfileMetadata(
                row.profile_arn,
                row.profile_id,
                now,
                role_name=role,
                code="AssumeRoleUnauthorizedAccess",
                message=message,
            )
            return failed, now + RETRY_AFTER
        credentials = RoleCredentials(
            issued.access_key_id, issued.secret, issued.token, issued.expires_at
        )
        answer = ProfileMetadata(
            row.profile_arn, row.profile_id, now, role_name=role_name, credentials=credentials
        )
        return answer, issued.expires_at - RENEW_BEFORE

    def _forget(self, instance_id: str) -> None:
        with self._lock:
            self._served.pop(instance_id, None)

    # -- rows ----------------------------------------------------------------------

    @staticmethod
    def _row(
        session: Session, account_id: str, instance_id: str, profile: Profile
    ) -> ProfileAssociation:
        return ProfileAssociation(
            id=new_id("iip-assoc", lambda i: session.get(ProfileAssociation, i) is not None),
            account_id=account_id,
            instance_id=instance_id,
            profile_id=profile.id,
            profile_name=profile.name,
            profile_arn=profile.arn,
            state=ASSOCIATED,
        )

    def _end(self, row: ProfileAssociation) -> None:
        row.state = DISASSOCIATED
        row.ended_at = self.clock()

    @staticmethod
    def _current(session: Session, instance_id: str) -> ProfileAssociation | None:
        return session.scalar(
            select(ProfileAssociation).where(
                ProfileAssociation.instance_id == instance_id,
                ProfileAssociation.state == ASSOCIATED,
            )
        )

    @staticmethod
    def _instance(session: Session, account_id: str, instance_id: str) -> Instance:
        if not is_valid_id(instance_id, "i"):
            raise CloudError("InvalidInstanceID.Malformed", f'Invalid id: "{instance_id}"')
        instance = session.get(Instance, instance_id)
        if instance is None or instance.account_id != account_id:
            raise CloudError(
                "InvalidInstanceID.NotFound", f"The instance ID '{instance_id}' does not exist"
            )
        if instance.state not in (states.PENDING, states.RUNNING, states.STOPPING, states.STOPPED):
            raise CloudError(
                "IncorrectInstanceState",
                f"The instance '{instance_id}' is not in a state from which it can be "
                "associated with an IAM instance profile.",
            )
        return instance

    @staticmethod
    def _association(session: Session, account_id: str, association_id: str) -> ProfileAssociation:
        row = (
            session.get(ProfileAssociation, association_id)
            if _ASSOCIATION_ID.fullmatch(association_id)
            else None
        )
        if row is None or row.account_id != account_id or row.state != ASSOCIATED:
            raise _association_not_found(association_id)
        instance = session.get(Instance, row.instance_id)
        if instance is None or instance.state == states.TERMINATED:
            raise _association_not_found(association_id)
        return row


def _profile(row: ProfileAssociation) -> Profile:
    return Profile(row.profile_id, row.profile_name, row.profile_arn)


def _view(row: ProfileAssociation, state: str) -> AssociationView:
    return AssociationView(row.id, row.instance_id, _profile(row), state, row.created_at)


class NoProfiles:
    """Where no IAM is wired (unit tests of other parts): every profile is unknown."""

    def resolve(self, _account_id: str, ref: ProfileRef | None) -> Profile:
        raise _profile_error(ref or ProfileRef(name=""))

    def attach(self, *_args: Any) -> None:
        return None

    def of_instances(self, _session: Session, _ids: Sequence[str]) -> dict[str, Profile]:
        return {}
