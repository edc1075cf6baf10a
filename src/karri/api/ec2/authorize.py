"""What an EC2 call asks for in IAM's terms, and the policy engine's answer to it.

One table says, for each action karri implements, which members of the parsed request name
resources and of which type (AWS's "Actions, resources, and condition keys for Amazon
EC2"); an action not in it is authorized on ``*``, as AWS does for every ``Describe*`` and
for the actions without resource-level permissions. Each named resource carries its tags as
the caller's account sees them (``ec2:ResourceTag/…``, ``aws:ResourceTag/…``); a call that
creates resources names them ``type/*`` and carries ``aws:RequestTag/…`` and
``aws:TagKeys`` from its ``TagSpecification``s, and tagging them on creation needs
``ec2:CreateTags`` as well (with ``ec2:CreateAction``), as on AWS.

Evaluated after the request is parsed and before the handler runs (and before DryRun is
answered), for callers that are not the account's root. A refusal is
``UnauthorizedOperation`` with the sealed message STS DecodeAuthorizationMessage opens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from karri import policy
from karri.api.auth import messages
from karri.api.auth.authorizer import PolicySource, decide, refusal_reason
from karri.api.auth.credentials import Principal
from karri.api.ec2.tagging import tag_pairs
from karri.errors import CloudError
from karri.policy.context import KeyValue


class ResourceTags(Protocol):
    """The cloud's tags (``Cloud.tags``): those ``account_id`` put on each resource."""

    def seen_by(
        self, account_id: str, resource_ids: Sequence[str]
    ) -> dict[str, dict[str, str]]: ...


class Lookup(Protocol):
    """What stands in a resource's ARN (its id; a key pair's name) for how a call names it
    otherwise (a group's name, an address's public IP, a key pair's id):
    ``Cloud.groups.ids_by_name``, ``Cloud.addresses.ids_by_public_ip``,
    ``Cloud.keypairs.names_by_id``. Names not found are left out."""

    def __call__(self, account_id: str, names: Sequence[str], /) -> dict[str, str]: ...


@dataclass(frozen=True)
class Named:
    """A request member holding one id (or name) or a list of them."""

    member: str
    kind: str  # the ARN's resource type; "" to take it from each id's prefix
    by_name: bool = False  # names, not ids (KeyName): no tags to read
    lookup: bool = False  # names the ids are found for (Ec2Authorization's ``lookups``)


@dataclass(frozen=True)
class Created:
    """A resource the call creates: ``type/*``, with the request's tags."""

    kind: str


Target = Named | Created
LOOKED_UP = "?"  # the prefix of a target's kind whose id is to be looked up

# The ARN resource type of each id prefix, for CreateTags/DeleteTags' ``ResourceId.N``.
PREFIXES = {
    "i": "instance",
    "vol": "volume",
    "snap": "snapshot",
    "ami": "image",
    "aki": "image",
    "ari": "image",
    "emi": "image",
    "eki": "image",
    "eri": "image",
    "sg": "security-group",
    "vpc": "vpc",
    "subnet": "subnet",
    "eni": "network-interface",
    "eipalloc": "elastic-ip",
    "key": "key-pair",
}

INSTANCES = (Named("InstanceIds", "instance"),)
INSTANCE = (Named("InstanceId", "instance"),)
VOLUME = (Named("VolumeId", "volume"),)
SNAPSHOT = (Named("SnapshotId", "snapshot"),)
IMAGE = (Named("ImageId", "image"),)
INTERFACE = (Named("NetworkInterfaceId", "network-interface"),)
GROUP = (
    Named("GroupId", "security-group"),
    Named("GroupName", "security-group", lookup=True),
)

RESOURCES: dict[str, tuple[Target, ...]] = {
    "RunInstances": (
        Created("instance"),
        Named("ImageId", "image"),
        Named("SubnetId", "subnet"),
        Named("SecurityGroupIds", "security-group"),
        Named("SecurityGroups", "security-group", lookup=True),
        Named("KeyName", "key-pair", by_name=True),
        Created("network-interface"),
        Created("volume"),
    ),
    "StartInstances": INSTANCES,
    "StopInstances": INSTANCES,
    "RebootInstances": INSTANCES,
    "TerminateInstances": INSTANCES,
    "GetConsoleOutput": INSTANCE,
    "GetPasswordData": INSTANCE,
    "ModifyInstanceAttribute": INSTANCE,
    "ResetInstanceAttribute": INSTANCE,
    "AssociateIamInstanceProfile": INSTANCE,
    "CreateVolume": (Created("volume"), Named("SnapshotId", "snapshot")),
    "DeleteVolume": VOLUME,
    "ModifyVolume": VOLUME,
    "ModifyVolumeAttribute": VOLUME,
    "AttachVolume": (*INSTANCE, *VOLUME),
    "DetachVolume": (*INSTANCE, *VOLUME),
    "CreateSnapshot": (Created("snapshot"), *VOLUME),
    "CopySnapshot": (Created("snapshot"), Named("SourceSnapshotId", "snapshot")),
    "DeleteSnapshot": SNAPSHOT,
    "ModifySnapshotAttribute": SNAPSHOT,
    "ResetSnapshotAttribute": SNAPSHOT,
    "CreateImage": (Created("image"), *INSTANCE, Created("snapshot")),
    "RegisterImage": (Created("image"),),
    "ImportImage": (Created("image"),),
    "DeregisterImage": IMAGE,
    "ModifyImageAttribute": IMAGE,
    "ResetImageAttribute": IMAGE,
    "CreateKeyPair": (Named("KeyName", "key-pair", by_name=True),),
    "ImportKeyPair": (Named("KeyName", "key-pair", by_name=True),),
    "DeleteKeyPair": (
        Named("KeyPairId", "key-pair", by_name=True, lookup=True),  # its ARN has its name
        Named("KeyName", "key-pair", by_name=True),
    ),
    "CreateSecurityGroup": (Created("security-group"), Named("VpcId", "vpc")),
    "DeleteSecurityGroup": GROUP,
    "AuthorizeSecurityGroupIngress": GROUP,
    "AuthorizeSecurityGroupEgress": GROUP[:1],
    "RevokeSecurityGroupIngress": GROUP,
    "RevokeSecurityGroupEgress": GROUP[:1],
    "ModifySecurityGroupRules": GROUP[:1],
    "UpdateSecurityGroupRuleDescriptionsIngress": GROUP,
    "UpdateSecurityGroupRuleDescriptionsEgress": GROUP,
    "AllocateAddress": (Created("elastic-ip"),),
    "AssociateAddress": (
        Named("AllocationId", "elastic-ip"),
        Named("PublicIp", "elastic-ip", lookup=True),
        *INSTANCE,
        Named("NetworkInterfaceId", "network-interface"),
    ),
    "DisassociateAddress": (
        Named("AssociationId", "elastic-ip", lookup=True),
        Named("PublicIp", "elastic-ip", lookup=True),
    ),
    "ReleaseAddress": (
        Named("AllocationId", "elastic-ip"),
        Named("PublicIp", "elastic-ip", lookup=True),
    ),
    "CreateNetworkInterface": (
        Created("network-interface"),
        Named("SubnetId", "subnet"),
        Named("Groups", "security-group"),
    ),
    "DeleteNetworkInterface": INTERFACE,
    "AttachNetworkInterface": (*INSTANCE, *INTERFACE),
    "ModifyNetworkInterfaceAttribute": INTERFACE,
    "ResetNetworkInterfaceAttribute": INTERFACE,
    "AssignPrivateIpAddresses": INTERFACE,
    "UnassignPrivateIpAddresses": INTERFACE,
    "CreateTags": (Named("Resources", ""),),
    "DeleteTags": (Named("Resources", ""),),
}
# Calls whose TagSpecifications tag what they create (so they need ec2:CreateTags too).
NAMED_ON_CREATION = frozenset({"CreateKeyPair", "ImportKeyPair"})  # the new key pair's name
TAGGED_ON_CREATION = NAMED_ON_CREATION | frozenset(
    name for name, targets in RESOURCES.items() if any(isinstance(t, Created) for t in targets)
)
UNTAGGED = frozenset({"CreateTags", "DeleteTags"})  # their Tag.N is the tags they set
# Calls that hand an instance a role (its IAM instance profile's): iam:PassRole on it too.
PASSES_ROLE = frozenset(
    {"RunInstances", "AssociateIamInstanceProfile", "ReplaceIamInstanceProfileAssociation"}
)
TO_EC2: dict[str, KeyValue] = {"iam:PassedToService": "ec2.amazonaws.com"}
# Calls whose check reads the database (resources' tags, ids for names, profiles' roles).
READS_DATABASE = PASSES_ROLE | frozenset(
    name
    for name, targets in RESOURCES.items()
    if any(isinstance(t, Named) and (t.lookup or not t.by_name) for t in targets)
)


@dataclass(frozen=True)
class Call:
    """One call as the engine sees it, before the caller's account's tags are read."""

    action: str
    # (kind, id or name or "*", existing with tags); a kind in LOOKED_UP: not yet an id
    targets: tuple[tuple[str, str, bool], ...]
    request_tags: dict[str, str]
    instance_type: str | None = None


def describe_call(action: str, parsed: Mapping[str, Any]) -> Call:
    """What ``action`` with these parsed parameters touches, from the table."""
    targets: list[tuple[str, str, bool]] = []
    for target in RESOURCES.get(action, ()):
        if isinstance(target, Created):
            targets.append((target.kind, "*", False))
            continue
        for value in _values(parsed.get(target.member)):
            if target.lookup:
                targets.append((LOOKED_UP + target.kind, value, not target.by_name))
                continue
            kind = target.kind or PREFIXES.get(value.partition("-")[0], "")
            if kind:
                targets.append((kind, value, not target.by_name))
    if action in UNTAGGED:
        tags = tag_pairs(parsed.get("Tags")) if action == "CreateTags" else {}
    else:
        tags = {}
        for spec in parsed.get("TagSpecifications") or ():
            tags.update(tag_pairs(spec.get("Tags")))
    instance_type = parsed.get("InstanceType") if action == "RunInstances" else None
    return Call(action, tuple(targets), tags, instance_type)


def _values(value: Any) -> Iterator[str]:
    if isinstance(value, str) and value:
        yield value
    elif isinstance(value, list):
        yield from (v for v in value if isinstance(v, str) and v)


class Ec2Authorization:
    """``check`` raises UnauthorizedOperation for a call the caller's policies refuse."""

    def __init__(
        self,
        region: str,
        policies: PolicySource,
        tags: ResourceTags,
        lookups: Mapping[str, Lookup],
        instance_types: Lookup,
        encode: Callable[[dict[str, Any]], str] = messages.encode,
        profile_roles: Lookup | None = None,
    ) -> None:
        """``lookups``: for each resource type a call may name by other than its id (a
        group's ``GroupName``, an address's ``PublicIp``), how to find its id;
        ``instance_types``: existing instances' types (``Cloud.instances.types_of``);
        ``profile_roles``: instance profiles' roles (``Cloud.profiles.role_arns``)."""
        self.region = region
        self.policies = policies
        self.tags = tags
        self.lookups = lookups
        self.instance_types = instance_types
        self.encode = encode
        self.profile_roles = profile_roles

    @staticmethod
    def reads_database(action: str) -> bool:
        """Whether ``check`` may read the database (resources' tags, ids for names)."""
        return action in READS_DATABASE

    def check(
        self,
        principal: Principal,
        action: str,
        parsed: Mapping[str, Any],
        environment: dict[str, KeyValue],
    ) -> None:
        """``environment``: the call's global keys (`policy.environment_keys`); this adds
        to it."""
        identity = self.policies.identity_policies(principal.caller)
        keys = environment
        keys["ec2:Region"] = self.region
        if action not in RESOURCES and not parsed.get("TagSpecifications"):
            # Describe* and the other actions without resource-level permissions: on "*".
            self._require(identity, principal, f"ec2:{action}", (), keys)
            for role in self._passed_role(principal.account_id, action, parsed):
                self._require(identity, principal, "iam:PassRole", [role], {**keys, **TO_EC2})
            return
        call = describe_call(action, parsed)
        if call.request_tags:
            keys.update(policy.tag_keys("aws:RequestTag", call.request_tags))
            keys["aws:TagKeys"] = list(call.request_tags)
        resources = self.resources(principal.account_id, call)
        self._require(identity, principal, f"ec2:{action}", resources, keys)
        if call.request_tags and action in TAGGED_ON_CREATION:
            created = resources
            if action not in NAMED_ON_CREATION:
                created = [r for r in resources if r.arn.endswith("/*")]
            tagging = {**keys, "ec2:CreateAction": action}
            self._require(identity, principal, "ec2:CreateTags", created, tagging)
        for role in self._passed_role(principal.account_id, action, parsed):
            self._require(identity, principal, "iam:PassRole", [role], {**keys, **TO_EC2})

    def _passed_role(
        self, account_id: str, action: str, parsed: Mapping[str, Any]
    ) -> list[policy.Resource]:
        """The role a call naming an instance profile passes to EC2, which needs
        ``iam:PassRole`` on it (with ``iam:PassedToService``), as on AWS; a profile not
        found is the handler's to refuse."""
        spec = parsed.get("IamInstanceProfile") if action in PASSES_ROLE else None
        if not isinstance(spec, Mapping) or self.profile_roles is None:
            return []
        named = spec.get("Arn") or spec.get("Name")
        if not isinstance(named, str) or not named:
            return []
        role = self.profile_roles(account_id, [named]).get(named)
        return [policy.Resource(role)] if role is not None else []

    def resources(self, account_id: str, call: Call) -> list[policy.Resource]:
        targets = call.targets
        if any(kind.startswith(LOOKED_UP) for kind, _, _ in targets):
            targets = self._looked_up(account_id, targets)
        existing = [name for _, name, tagged in targets if tagged]
        tags = self.tags.seen_by(account_id, existing) if existing else {}
        instances = [name for kind, name, tagged in targets if tagged and kind == "instance"]
        types = self.instance_types(account_id, instances) if instances else {}
        resources = []
        for kind, name, _ in targets:
            keys: dict[str, KeyValue] = {}
            for key, value in tags.get(name, {}).items():
                keys[f"aws:ResourceTag/{key}"] = value
                keys[f"ec2:ResourceTag/{key}"] = value
            instance_type = call.instance_type if name == "*" else types.get(name)
            if kind == "instance" and instance_type is not None:
                keys["ec2:InstanceType"] = instance_type
            arn = policy.ec2_arn(self.region, account_id, kind, name)
            resources.append(policy.Resource(arn, keys))
        return resources

    def _looked_up(
        self, account_id: str, targets: tuple[tuple[str, str, bool], ...]
    ) -> tuple[tuple[str, str, bool], ...]:
        """A resource named by name is the resource: its ARN has its id, its tags count (a
        name not found stays as it is; the handler says it does not exist)."""
        wanted: dict[str, list[str]] = {}
        for kind, name, _ in targets:
            if kind.startswith(LOOKED_UP):
                wanted.setdefault(kind.removeprefix(LOOKED_UP), []).append(name)
        ids = {kind: self.lookups[kind](account_id, names) for kind, names in wanted.items()}
        resolved = []
        for kind, name, tagged in targets:
            if kind.startswith(LOOKED_UP):
                kind = kind.removeprefix(LOOKED_UP)
                name = ids[kind].get(name, name)
            resolved.append((kind, name, tagged))
        return tuple(resolved)

    def _require(
        self,
        identity: Sequence[policy.Policy],
        principal: Principal,
        action: str,
        resources: Sequence[policy.Resource],
        keys: Mapping[str, KeyValue],
    ) -> None:
        decision = decide(identity, principal, action, resources, keys)
        if decision.allowed:
            return
        reason = refusal_reason(decision, identity, principal.session_policies)
        encoded = self.encode(policy.authorization_message(decision))
        raise CloudError(
            "UnauthorizedOperation",
            f"You are not authorized to perform this operation. {reason}. "
            f"Encoded authorization failure message: {encoded}",
            403,
        )
