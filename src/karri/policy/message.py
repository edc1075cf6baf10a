"""The content of EC2's encoded authorization message, as STS DecodeAuthorizationMessage
returns it: the decision, the statements that decided it and the request's context.

The shape is AWS's (``{"allowed": false, "explicitDeny": true, "matchedStatements":
{"items": [...]}, "failures": {"items": []}, "context": {...}}``); lists are
``{"items": [{"value": ...}]}`` throughout. Encoding and encrypting it is the API's business.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .conditions import condition_values
from .context import KeyValue, normalised
from .evaluate import Decision, Match


def authorization_message(decision: Decision) -> dict[str, Any]:
    request, resource = decision.request, decision.resource
    principal = request.principal
    who: dict[str, str] = {"id": principal.userid}
    if principal.username is not None:
        who["name"] = principal.username
    who["arn"] = principal.arn
    keys: dict[str, KeyValue] = {
        **principal.condition_keys(),
        **request.keys,
        **resource.keys,
    }
    return {
        "allowed": decision.allowed,
        "explicitDeny": decision.verdict == "explicitDeny",
        "matchedStatements": {"items": [_statement(m, principal.userid) for m in decision.matched]},
        "failures": {"items": []},
        "context": {
            "principal": who,
            "action": request.action,
            "resource": resource.arn,
            "conditions": _conditions(keys),
        },
    }


def _items(values: Iterable[str]) -> dict[str, list[dict[str, str]]]:
    return {"items": [{"value": value} for value in values]}


def _conditions(keys: Mapping[str, KeyValue]) -> dict[str, Any]:
    values = normalised(keys)
    return {
        "items": [
            {"key": key, "values": _items(values[key.lower()])}
            for key in sorted(keys, key=str.lower)
        ]
    }


def _statement(match: Match, userid: str) -> dict[str, Any]:
    statement = match.statement
    entry: dict[str, Any] = {
        "statementId": statement.sid or "",
        "effect": statement.effect.value.upper(),
        "principals": _items([userid.split(":", 1)[0]] if userid else []),
        "principalGroups": _items([]),
    }
    actions = statement.actions
    entry["notActions" if actions.negated else "actions"] = _items(actions.patterns)
    if statement.resources is not None:
        resources = statement.resources
        entry["notResources" if resources.negated else "resources"] = _items(resources.patterns)
    condition = statement.source.get("Condition", {})
    entry["conditions"] = {
        "items": [
            {"key": key, "values": _items(condition_values(raw))}
            for pairs in condition.values()
            for key, raw in pairs.items()
        ]
    }
    return entry
