"""IAM calls are authorized by the caller's policies (an account's root: every right)."""

from __future__ import annotations

from typing import Any

from karri import policy
from karri.api.auth.authorizer import decide, refusal_reason
from karri.api.iam.dispatch import QueryContext
from karri.errors import CloudError

_NAMED = (
    ("UserName", "user", "users", "get_user"),
    ("GroupName", "group", "users", "get_group"),
    ("RoleName", "role", "roles", "get_role"),
    ("InstanceProfileName", "instance-profile", "roles", "get_instance_profile"),
)


def target_arn(context: QueryContext, parsed: dict[str, Any]) -> str:
    """The ARN of the entity the call names (the caller itself when it names none of a
    user's own calls), ``*`` otherwise."""
    account, iam = context.account_id, context.cloud.iam
    for member, kind, part, getter in _NAMED:
        name = parsed.get(member)
        if name is None:
            continue
        try:
            found = getattr(getattr(iam, part), getter)(account, name)
            return (found[0] if isinstance(found, tuple) else found).arn
        except CloudError:
            return policy.iam_arn(account, kind, name) if "/" not in name else "*"
    if "PolicyArn" in parsed:
        return parsed["PolicyArn"]
    caller = context.principal.caller
    return caller.arn if caller.type is policy.PrincipalType.USER else "*"


def authorize_call(context: QueryContext, action: str, parsed: dict[str, Any]) -> None:
    principal = context.principal
    if principal.is_root:
        return
    identity = context.cloud.iam.identity_policies(principal.caller)
    decision = decide(
        identity,
        principal,
        action,
        (policy.Resource(target_arn(context, parsed)),),
        policy.environment_keys(source_ip=context.source_ip),
    )
    if not decision.allowed:
        reason = refusal_reason(decision, identity, principal.session_policies)
        raise CloudError("AccessDenied", reason, 403)
