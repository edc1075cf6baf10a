"""AWS's evaluation logic: an explicit Deny wins, then an Allow, else the implicit deny.

For each resource of a request the statements that apply are gathered from the caller's
identity policies (its own, its groups', its role's), the session policies of a role session
(AssumeRole's ``Policy``), and the resource's policy (a bucket policy, a role's trust policy)
when that names the caller. Then:

- any Deny that applies: denied (explicit);
- a principal without policies of its own (anonymous, an AWS service): allowed only by the
  resource policy;
- in the caller's own account: allowed by the resource policy alone when it names the
  caller itself (or everyone), by it and the session policies when it names the caller's
  role, else by the identity policies and the session policies together;
- across accounts: both sides must allow (the resource policy, naming the caller or its
  account, and the identity and session policies);
- the account's root user has every right its identity policies could give;
- a trust policy must name the caller whatever the identity policies say.

Permission boundaries and organizations' policies are not modelled.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum

from .context import ContextKeys, PrincipalType, Request, Resource
from .document import Effect, Grant, Policy, Statement
from .variables import Unresolved

_WITHOUT_POLICIES = (PrincipalType.ANONYMOUS, PrincipalType.SERVICE)


class Verdict(StrEnum):
    """The words of IAM's policy simulator and of EC2's authorization messages."""

    ALLOWED = "allowed"
    EXPLICIT_DENY = "explicitDeny"
    IMPLICIT_DENY = "implicitDeny"


@dataclass(frozen=True)
class Match:
    """A statement that applied: the policy and its place in it."""

    policy: Policy
    index: int

    @property
    def statement(self) -> Statement:
        return self.policy.statements[self.index]


@dataclass(frozen=True)
class Decision:
    """The answer for one resource of a request, with the statements that decided it: the
    Denies of an explicit deny, the Allows of an allow, none for an implicit deny."""

    verdict: Verdict
    request: Request
    resource: Resource
    matched: tuple[Match, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOWED

    @property
    def explicit(self) -> bool:
        """Decided by a statement (an Allow or a Deny), not by default."""
        return self.verdict is Verdict.EXPLICIT_DENY or bool(self.matched)


def authorize(
    request: Request,
    identity: Sequence[Policy] = (),
    *,
    session: Sequence[Policy] | None = None,
) -> Decision:
    """The decision for the whole request: the first resource refused, else allowed (the
    decision for its first resource). ``session`` None: the caller has no session policy."""
    first: Decision | None = None
    for decision in decisions(request, identity, session=session):
        if not decision.allowed:
            return decision
        first = first or decision
    assert first is not None, "a request names at least one resource"
    return first


def decisions(
    request: Request,
    identity: Sequence[Policy] = (),
    *,
    session: Sequence[Policy] | None = None,
) -> Iterator[Decision]:
    """The decision for each resource of the request, in order."""
    context = request.context()
    action = request.action.lower()
    for resource in request.resources:
        keys = context.with_keys(resource.keys) if resource.keys else context
        yield _decide(request, resource, action, keys, identity, session)


def _decide(
    request: Request,
    resource: Resource,
    action: str,
    keys: ContextKeys,
    identity: Sequence[Policy],
    session: Sequence[Policy] | None,
) -> Decision:
    principal = request.principal
    denies: list[Match] = []
    identity_allow = _scan(identity, action, resource.arn, keys, denies)
    session_allow = _scan(session or (), action, resource.arn, keys, denies)
    grant, resource_allow = _scan_resource(request, resource, action, keys, denies)
    if denies:
        return Decision(Verdict.EXPLICIT_DENY, request, resource, tuple(denies))
    identity_ok = identity_allow is not None or principal.type is PrincipalType.ACCOUNT
    session_ok = session is None or session_allow is not None
    same_account = resource.account is None or resource.account == principal.account
    if resource.policy_must_grant and grant is None:
        allowed = False
    elif principal.type in _WITHOUT_POLICIES:
        allowed = grant is not None
    elif same_account:
        allowed = (
            grant is Grant.DIRECT
            or (grant is Grant.ROLE and session_ok)
            or (identity_ok and session_ok)
        )
    else:
        allowed = grant is not None and identity_ok and session_ok
    if not allowed:
        return Decision(Verdict.IMPLICIT_DENY, request, resource)
    matched = (m for m in (resource_allow, identity_allow, session_allow) if m is not None)
    return Decision(Verdict.ALLOWED, request, resource, tuple(matched))


def _scan(
    policies: Iterable[Policy], action: str, arn: str, keys: ContextKeys, denies: list[Match]
) -> Match | None:
    """The first Allow of ``policies`` that applies; the Denies that apply go to ``denies``.
    Once an Allow is found only Denies are looked at."""
    allow: Match | None = None
    for policy in policies:
        for index, statement in policy.statements_for(action):
            is_allow = statement.effect is Effect.ALLOW
            if is_allow and allow is not None:
                continue
            if _applies_to(statement, arn, keys):
                if is_allow:
                    allow = Match(policy, index)
                else:
                    denies.append(Match(policy, index))
    return allow


def _scan_resource(
    request: Request, resource: Resource, action: str, keys: ContextKeys, denies: list[Match]
) -> tuple[Grant | None, Match | None]:
    """The strongest grant of the resource policy's Allows that apply to the caller, with
    its statement; its Denies that apply go to ``denies``."""
    policy = resource.policy
    best: tuple[Grant | None, Match | None] = (None, None)
    if policy is None:
        return best
    for index, statement in policy.statements_for(action):
        if statement.principals is None:
            continue
        grant = statement.principals.grant(request.principal)
        if grant is None or not _applies_to(statement, resource.arn, keys):
            continue
        if statement.effect is Effect.DENY:
            denies.append(Match(policy, index))
        elif best[0] is None or grant > best[0]:
            best = (grant, Match(policy, index))
    return best


def _applies_to(statement: Statement, arn: str, keys: ContextKeys) -> bool:
    try:
        return statement.applies_to(arn, keys)
    except Unresolved:  # a variable the request cannot fill: the statement does not apply
        return False
