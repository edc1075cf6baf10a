"""IAM's policy simulator: SimulatePrincipalPolicy (an entity's own policies) and
SimulateCustomPolicy (documents given), each action on each resource through the engine."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from karri import policy
from karri.db.engine import Database

from . import models
from .errors import invalid_input
from .reader import IdentityPolicies
from .store import get

SIMULATED = "AIDASIMULATEDCALLER0"


@dataclass(frozen=True)
class Simulation:
    principal: policy.Principal
    identity: tuple[policy.Policy, ...]


class Simulator:
    def __init__(self, db: Database, reader: IdentityPolicies) -> None:
        self.db = db
        self.reader = reader

    def of_entity(self, account_id: str, source_arn: str) -> Simulation:
        """The principal a user's, group's or role's ARN stands for, and its policies."""
        try:
            arn = policy.Arn.parse(source_arn)
        except ValueError:
            raise invalid_input(f"ARN {source_arn} is not valid.") from None
        kind, name = arn.resource_type, arn.resource.rsplit("/", 1)[-1]
        model = {"user": models.IamUser, "group": models.IamGroup, "role": models.IamRole}.get(kind)
        if arn.service != "iam" or arn.account != account_id or model is None:
            raise invalid_input(f"ARN {source_arn} is not valid.")
        with self.db.session() as session:
            row = get(session, model, account_id, name)
            entity_id, path = row.id, row.path
        if kind == "role":
            principal = policy.Principal.role_session(
                account_id, name, "simulated", entity_id, path
            )
        elif kind == "user":
            principal = policy.Principal.user(account_id, name, entity_id, path)
        else:  # a group's policies, as they would apply to a member
            principal = policy.Principal.user(account_id, "simulated", SIMULATED)
        return Simulation(principal, self.reader.of_entity(entity_id, account_id))


def custom_caller(account_id: str, caller_arn: str | None) -> policy.Principal:
    name = caller_arn.rsplit("/", 1)[-1] if caller_arn else "simulated"
    return policy.Principal.user(account_id, name, SIMULATED)


def simulate(
    simulation: Simulation,
    actions: Sequence[str],
    resources: Sequence[str],
    keys: Mapping[str, policy.context.KeyValue],
    resource_policy: policy.Policy | None = None,
    resource_owner: str | None = None,
) -> list[policy.Decision]:
    """One decision per action and resource (``*`` when none are named)."""
    decisions = []
    for action in actions:
        for arn in resources or ("*",):
            resource = policy.Resource(arn, account=resource_owner, policy=resource_policy)
            request = policy.Request(simulation.principal, action, (resource,), keys)
            decisions.append(policy.authorize(request, simulation.identity))
    return decisions
