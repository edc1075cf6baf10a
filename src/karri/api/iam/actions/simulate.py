"""SimulatePrincipalPolicy and SimulateCustomPolicy."""

from __future__ import annotations

from typing import Any

from karri import policy
from karri.api.iam.actions.members import page_of
from karri.api.iam.dispatch import IAM, QueryContext
from karri.cloud.iam.simulation import Simulation, custom_caller, simulate


def _documents(parsed: dict[str, Any]) -> tuple[policy.Policy, ...]:
    return tuple(
        policy.parse(text, policy.IDENTITY, name=f"PolicyInputList.{i}")
        for i, text in enumerate(parsed.get("PolicyInputList", []), 1)
    )


def _keys(parsed: dict[str, Any]) -> dict[str, policy.context.KeyValue]:
    return {
        entry["ContextKeyName"]: tuple(entry.get("ContextKeyValues", []))
        for entry in parsed.get("ContextEntries", [])
        if "ContextKeyName" in entry
    }


def _results(
    context: QueryContext, simulation: Simulation, parsed: dict[str, Any]
) -> dict[str, Any]:
    resource_policy = None
    if "ResourcePolicy" in parsed:
        resource_policy = policy.parse(parsed["ResourcePolicy"], policy.RESOURCE)
    decisions = simulate(
        simulation,
        parsed["ActionNames"],
        parsed.get("ResourceArns", []),
        _keys(parsed),
        resource_policy,
        parsed.get("ResourceOwner"),
    )
    results = [
        (
            f"{i:08d}",  # the order they were asked in
            {
                "EvalActionName": d.request.action,
                "EvalResourceName": d.resource.arn,
                "EvalDecision": d.verdict.value,
                "MatchedStatements": [
                    {"SourcePolicyId": m.policy.name, "SourcePolicyType": "IAM Policy"}
                    for m in d.matched
                ],
                "MissingContextValues": [],
            },
        )
        for i, d in enumerate(decisions)
    ]
    page, more = page_of(context, parsed, results, lambda result: result[0])
    return {"EvaluationResults": [result for _, result in page], **more}


@IAM("SimulatePrincipalPolicy")
def simulate_principal(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    found = context.cloud.iam.simulator.of_entity(context.account_id, parsed["PolicySourceArn"])
    simulation = Simulation(found.principal, found.identity + _documents(parsed))
    return _results(context, simulation, parsed)


@IAM("SimulateCustomPolicy")
def simulate_custom(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    caller = custom_caller(context.account_id, parsed.get("CallerArn"))
    return _results(context, Simulation(caller, _documents(parsed)), parsed)
