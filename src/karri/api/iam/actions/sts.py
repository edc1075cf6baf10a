"""STS (Eucalyptus's Tokens): who am I, session tokens, AssumeRole, and decoding EC2's
authorization messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from karri import policy
from karri.api.auth import messages
from karri.api.iam.actions.authorization import authorize_call
from karri.api.iam.dispatch import STS, QueryContext
from karri.cloud.iam.sessions import Issued
from karri.errors import CloudError


def _credentials(issued: Issued) -> dict[str, Any]:
    return {
        "AccessKeyId": issued.access_key_id,
        "SecretAccessKey": issued.secret,
        "SessionToken": issued.token,
        "Expiration": issued.expires_at,
    }


@STS("GetCallerIdentity")
def caller_identity(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    caller = context.principal.caller
    return {"UserId": caller.userid, "Account": caller.account, "Arn": caller.arn}


@STS("GetSessionToken")
def session_token(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    issued = context.cloud.iam.sessions.session_token(
        context.principal.caller, now=datetime.now(UTC), duration=parsed.get("DurationSeconds")
    )
    return {"Credentials": _credentials(issued)}


@STS("AssumeRole")
def assume_role(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    tags = {t["Key"]: t["Value"] for t in parsed.get("Tags", [])}
    issued = context.cloud.iam.sessions.assume_role(
        context.principal.caller,
        context.principal.session_policies,
        parsed["RoleArn"],
        parsed["RoleSessionName"],
        now=datetime.now(UTC),
        duration=parsed.get("DurationSeconds"),
        external_id=parsed.get("ExternalId"),
        session_policy=parsed.get("Policy"),
        policy_arns=[p["arn"] for p in parsed.get("PolicyArns", []) if "arn" in p],
        source_identity=parsed.get("SourceIdentity"),
        tags=tags,
        context=policy.environment_keys(source_ip=context.source_ip),
    )
    out: dict[str, Any] = {
        "Credentials": _credentials(issued),
        "AssumedRoleUser": {"AssumedRoleId": issued.assumed_id, "Arn": issued.assumed_arn},
        "PackedPolicySize": issued.packed_size,
    }
    if parsed.get("SourceIdentity"):
        out["SourceIdentity"] = parsed["SourceIdentity"]
    return out


@STS("DecodeAuthorizationMessage")
def decode_message(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    authorize_call(context, "sts:DecodeAuthorizationMessage", parsed)
    try:
        content = messages.decode(parsed["EncodedMessage"])
    except messages.InvalidMessage:
        raise CloudError(
            "InvalidAuthorizationMessageException",
            "The encoded message is not valid.",
            400,
        ) from None
    return {"DecodedMessage": json.dumps(content)}
