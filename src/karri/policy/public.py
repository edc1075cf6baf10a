"""Whether a resource policy is "public" as S3 defines it (GetBucketPolicyStatus, and the
public access block's ``BlockPublicPolicy``/``RestrictPublicBuckets``).

A policy is public when one of its Allow statements names everyone (``*``, ``{"AWS": "*"}``
or a NotPrincipal) without a condition that fixes who may use it: a set of CIDRs in
``aws:SourceIp`` (not all of the address space), or a fixed value (no wildcard) of
``aws:SourceArn``, ``aws:SourceVpc``, ``aws:SourceVpce``, ``aws:SourceOwner``,
``aws:SourceAccount``, ``aws:PrincipalAccount``, ``aws:PrincipalArn``,
``aws:PrincipalOrgID``, ``aws:userid`` or
``s3:x-amz-server-side-encryption-aws-kms-key-id``. (AWS's "bad actions" nuance, which
lets a fixed condition pass only for harmless actions, is not modelled: any fixed condition
makes a statement non-public.)
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from .conditions import condition_values
from .document import Effect, Policy, Statement
from .errors import MalformedPolicy

FIXING_KEYS = frozenset(
    {
        "aws:sourcearn",
        "aws:sourcevpc",
        "aws:sourcevpce",
        "aws:sourceowner",
        "aws:sourceaccount",
        "aws:principalaccount",
        "aws:principalarn",
        "aws:principalorgid",
        "aws:userid",
        "s3:x-amz-server-side-encryption-aws-kms-key-id",
    }
)
# Operators that hold only for the values listed (no IfExists: an absent key passes it).
FIXING_OPERATORS = frozenset(
    {"StringEquals", "StringEqualsIgnoreCase", "StringLike", "ArnEquals", "ArnLike"}
)


def is_public(policy: Policy) -> bool:
    """Whether any Allow of ``policy`` grants everyone without a fixing condition."""
    return any(public_statement(statement) for statement in policy.statements)


def public_statement(statement: Statement) -> bool:
    principals = statement.principals
    if statement.effect is not Effect.ALLOW or principals is None:
        return False
    if not (principals.everyone or principals.negated):
        return False
    block = statement.source.get("Condition") or {}
    return not _fixed(block)


def _fixed(block: Mapping[str, Any]) -> bool:
    for operator, entries in block.items():
        if not isinstance(entries, Mapping):
            continue
        for key, raw in entries.items():
            try:
                values = condition_values(raw)
            except MalformedPolicy:
                continue
            if values and _fixes(operator, key.lower(), values):
                return True
    return False


def _fixes(operator: str, key: str, values: list[str]) -> bool:
    if key == "aws:sourceip":
        return operator == "IpAddress" and all(_narrow(value) for value in values)
    if key not in FIXING_KEYS or operator not in FIXING_OPERATORS:
        return False
    return not any("*" in value or "?" in value or "${" in value for value in values)


def _narrow(value: str) -> bool:
    try:
        return ipaddress.ip_network(value.strip(), strict=False).prefixlen > 0
    except ValueError:
        return False
