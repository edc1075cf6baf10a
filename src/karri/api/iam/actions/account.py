"""The account: summary and alias."""

from __future__ import annotations

from typing import Any

from karri.api.iam.actions.members import listed
from karri.api.iam.dispatch import IAM, QueryContext


@IAM("GetAccountSummary")
def summary(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    return {"SummaryMap": context.cloud.iam.account.summary(context.account_id)}


@IAM("CreateAccountAlias")
def create_alias(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    context.cloud.iam.account.create_alias(context.account_id, parsed["AccountAlias"])
    return {}


@IAM("DeleteAccountAlias")
def delete_alias(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    context.cloud.iam.account.delete_alias(context.account_id, parsed["AccountAlias"])
    return {}


@IAM("ListAccountAliases")
def list_aliases(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    aliases = context.cloud.iam.account.aliases(context.account_id)
    return listed(context, parsed, "AccountAliases", aliases, str.lower)
