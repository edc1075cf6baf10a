"""Asking the policy engine about one call, for every API: whose policies apply, the answer,
and the sentence that explains a refusal.

The account's root keys never get here (every right in their account: the APIs skip the
evaluation, so the hot path does not pay for it). Anyone else is allowed only what their
identity policies (a user's own and its groups', a role's) allow, narrowed by their
session policies. The identity policies come from a `PolicySource` (IAM, on the cloud).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from karri import policy
from karri.api.auth.credentials import Principal
from karri.policy.context import KeyValue


class PolicySource(Protocol):
    """IAM's reader: the identity policies in force for a caller (empty for none)."""

    def identity_policies(self, caller: policy.Principal) -> tuple[policy.Policy, ...]: ...


class NoPolicies:
    """The stand-in until IAM is wired in: no caller has policies of its own (so only root
    keys, which are never evaluated, may do anything)."""

    def identity_policies(self, caller: policy.Principal) -> tuple[policy.Policy, ...]:
        return ()


NO_POLICIES = NoPolicies()


def decide(
    identity: Sequence[policy.Policy],
    principal: Principal,
    action: str,
    resources: Sequence[policy.Resource],
    keys: Mapping[str, KeyValue],
) -> policy.Decision:
    """The engine's decision on ``action`` over ``resources`` for a non-root caller whose
    identity policies are ``identity`` (its session policies come with it).

    A caller repeating a call within the same second (``aws:CurrentTime`` has seconds)
    gets the decision already made: the cache's key is everything the decision depends on,
    the policies by identity (kept alive by the entry, so no id is reused while cached;
    IAM hands out new `Policy` objects when a policy changes)."""
    caller = principal.caller
    resources = tuple(resources) or _ANYTHING
    session = principal.session_policies
    key = _cache_key(identity, principal, caller, action, resources, keys)
    if key is not None:
        hit = _DECISIONS.get(key)
        if hit is not None and hit[0] is identity and hit[1] is caller:
            return hit[4]
    request = policy.Request(caller, action, resources, keys)
    decision = policy.authorize(request, identity, session=session or None)
    if key is not None:
        if len(_DECISIONS) >= CACHE_SIZE:
            _DECISIONS.clear()
        _DECISIONS[key] = (identity, caller, session, resources, decision)
    return decision


_ANYTHING = (policy.Resource(),)
CACHE_SIZE = 4096
# key -> (the objects whose ids the key holds, kept alive; the decision)
_DECISIONS: dict[tuple, tuple[Any, policy.Principal, Any, Any, policy.Decision]] = {}


def _cache_key(
    identity: Sequence[policy.Policy],
    principal: Principal,
    caller: policy.Principal,
    action: str,
    resources: tuple[policy.Resource, ...],
    keys: Mapping[str, KeyValue],
) -> tuple | None:
    """The decision's key, None when a value cannot be hashed (nothing cached then)."""
    try:
        key = (
            id(identity),
            id(principal.session_policies),
            id(caller),
            action,
            tuple((r.arn, _frozen(r.keys), r.account, id(r.policy)) for r in resources),
            _frozen(keys),
        )
        hash(key)
    except TypeError:
        return None
    return key


def _frozen(keys: Mapping[str, KeyValue]) -> tuple:
    """The keys as a tuple (lists of values as tuples), in their order."""
    if not keys:
        return ()
    items = tuple(keys.items())
    try:
        hash(items)
    except TypeError:  # a list of values (aws:TagKeys)
        plain = (str, bool, int, float)
        return tuple((k, v if isinstance(v, plain) else tuple(v)) for k, v in items)  # type: ignore[arg-type]
    return items


def refusal_reason(
    decision: policy.Decision,
    identity: Sequence[policy.Policy],
    session: Sequence[policy.Policy],
    *,
    quote_resource: bool = False,
) -> str:
    """IAM's sentence for a refusal: ``User: ARN is not authorized to perform: ACTION on
    resource: ARN because no identity-based policy allows the ACTION action`` (or ``with an
    explicit deny in a … policy``, ``because no session policy allows …``)."""
    request, resource = decision.request, decision.resource
    action = request.action
    target = f'"{resource.arn}"' if quote_resource else resource.arn
    head = f"User: {request.principal.arn} is not authorized to perform: {action}"
    if resource.arn != "*":
        head += f" on resource: {target}"
    if decision.explicit:
        kind = "identity-based"
        policies = {id(p) for p in session}
        if any(id(m.policy) in policies for m in decision.matched):
            kind = "session"
        elif any(m.policy is resource.policy for m in decision.matched):
            kind = "resource-based"
        return f"{head} with an explicit deny in a {kind} policy"
    without_session = policy.authorize(
        policy.Request(request.principal, action, (resource,), request.keys), identity
    )
    kind = "session" if session and without_session.allowed else "identity-based"
    return f"{head} because no {kind} policy allows the {action} action"
