"""Policy documents: read, checked and compiled as IAM does.

``parse`` turns the JSON text (or its already-decoded object) into a `Policy` of compiled
statements, or raises `MalformedPolicy` with IAM's message, or `PolicyTooLarge` when the
text is over the size limit the caller chose. The kind of document decides what a statement
may or must hold: identity policies have no Principal, resource policies (bucket policies)
must have one, role trust policies must have one and may not have a Resource.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any

from .arn import arn_matcher
from .conditions import VENDOR, Test, parse_conditions
from .context import ContextKeys, Principal
from .errors import LEGACY, SYNTAX, MalformedPolicy, PolicyTooLarge
from .variables import Lookup, TemplateMatcher, parse_template
from .wildcard import Matcher, compile_wildcard, has_wildcard

VERSION_2012 = "2012-10-17"
VERSION_2008 = "2008-10-17"
VERSIONS = (VERSION_2012, VERSION_2008)

_TOP = frozenset({"Version", "Id", "Statement"})
_STATEMENT = frozenset(
    {
        "Sid",
        "Effect",
        "Principal",
        "NotPrincipal",
        "Action",
        "NotAction",
        "Resource",
        "NotResource",
        "Condition",
    }
)
_PRINCIPAL_TYPES = frozenset({"AWS", "Service", "Federated", "CanonicalUser"})


# ---- kinds and sizes


@dataclass(frozen=True)
class Kind:
    """What a statement of this kind of document may or must hold."""

    name: str
    principal: bool  # required (True) or forbidden (False)
    resource: bool  # required (True) or forbidden (False)
    only_2012: bool = False  # Version must be 2012-10-17
    iam_sid: bool = True  # Sid is alphanumeric
    trust: bool = False  # actions are sts:…


IDENTITY = Kind("identity", principal=False, resource=True)
MANAGED = Kind("managed", principal=False, resource=True, only_2012=True)
SESSION = Kind("session", principal=False, resource=True)
RESOURCE = Kind("resource", principal=True, resource=True, iam_sid=False)
TRUST = Kind("trust", principal=True, resource=False, trust=True)


@dataclass(frozen=True)
class SizeLimit:
    """A document size limit (characters without white space) and IAM's refusal."""

    chars: int
    message: str  # may name {limit} and {entity}

    def check(self, text: str, entity: str = "") -> None:
        if policy_size(text) > self.chars:
            raise PolicyTooLarge(self.message.format(limit=self.chars, entity=entity))


MANAGED_POLICY_SIZE = SizeLimit(6144, "Cannot exceed quota for PolicySize: {limit}")
# Inline policies: the sum of all of an entity's inline policies counts.
USER_POLICY_SIZE = SizeLimit(
    2048, "Maximum policy size of {limit} bytes exceeded for user {entity}"
)
GROUP_POLICY_SIZE = SizeLimit(
    5120, "Maximum policy size of {limit} bytes exceeded for group {entity}"
)
ROLE_POLICY_SIZE = SizeLimit(
    10240, "Maximum policy size of {limit} bytes exceeded for role {entity}"
)
TRUST_POLICY_SIZE = SizeLimit(2048, "Cannot exceed quota for ACLSizePerRole: {limit}")


def policy_size(text: str) -> int:
    """The size IAM counts: every character but white space."""
    return sum(1 for char in text if not char.isspace())


# ---- the compiled parts of a statement


class Effect(StrEnum):
    ALLOW = "Allow"
    DENY = "Deny"


class ActionSet:
    """Action or NotAction: case-insensitive, with wildcards. Exact names are looked up in
    a set; only the wildcard patterns are run."""

    __slots__ = ("_exact", "_patterns", "negated", "patterns")

    def __init__(self, patterns: tuple[str, ...], negated: bool) -> None:
        self.patterns = patterns
        self.negated = negated
        lowered = [p.lower() for p in patterns]
        self._exact = frozenset(p for p in lowered if not has_wildcard(p))
        self._patterns: tuple[Matcher, ...] = tuple(
            compile_wildcard(p) for p in lowered if has_wildcard(p)
        )

    def covers(self, action: str) -> bool:
        """Whether the statement covers ``action`` (lower case)."""
        hit = action in self._exact or any(m(action) for m in self._patterns)
        return hit != self.negated


class ResourceSet:
    """Resource or NotResource: ARN patterns, matched per segment, case-sensitive, with
    policy variables in 2012-10-17 documents."""

    __slots__ = ("_everything", "_exact", "_patterns", "negated", "patterns")

    def __init__(self, patterns: tuple[str, ...], negated: bool, variables: bool) -> None:
        self.patterns = patterns
        self.negated = negated
        self._everything = "*" in patterns
        templates = [parse_template(p, variables) for p in patterns if p != "*"]
        self._exact = frozenset(t[0] for t in templates if _plain(t))
        self._patterns: tuple[TemplateMatcher, ...] = tuple(
            arn_matcher(t) for t in templates if not _plain(t)
        )

    def covers(self, arn: str, lookup: Lookup) -> bool:
        hit = (
            self._everything
            or arn in self._exact
            or any(p.matcher(lookup)(arn) for p in self._patterns)
        )
        return hit != self.negated


def _plain(tokens: tuple[object, ...]) -> bool:
    return len(tokens) == 1 and isinstance(tokens[0], str) and not has_wildcard(tokens[0])


class Grant(IntEnum):
    """How a resource policy's Principal names the caller, weakest first: through its
    account (a delegation: the account's own policies must allow too), through the role of
    a role session (session policies still limit it), or the caller itself (or everyone)."""

    ACCOUNT = 1
    ROLE = 2
    DIRECT = 3


class Principals:
    """Principal or NotPrincipal of a resource or trust policy."""

    __slots__ = ("accounts", "arns", "canonical", "everyone", "negated", "services", "source")

    def __init__(self, source: Any, negated: bool) -> None:
        self.source = source
        self.negated = negated
        self.everyone = False
        self.accounts: set[str] = set()
        self.arns: set[str] = set()
        self.services: set[str] = set()
        self.canonical: set[str] = set()  # S3's canonical user ids: each names an account
        if source == "*":
            self.everyone = True
            return
        if not isinstance(source, dict) or not source:
            raise MalformedPolicy(SYNTAX)
        for kind, raw in source.items():
            for value in _strings(raw, SYNTAX):
                self._add(kind, value)

    def _add(self, kind: str, value: str) -> None:
        if kind not in _PRINCIPAL_TYPES:
            raise MalformedPolicy(f'Invalid principal in policy: "{kind}":"{value}"')
        if kind == "AWS":
            self._add_aws(value)
        elif kind == "Service":
            if not value:
                raise MalformedPolicy(f'Invalid principal in policy: "Service":"{value}"')
            self.services.add(value)
        elif kind == "CanonicalUser":
            self.canonical.add(value)
        else:  # Federated: no identity provider in karri yet; kept, matches nobody
            self.arns.add(f"federated:{value}")

    def _add_aws(self, value: str) -> None:
        invalid = MalformedPolicy(f'Invalid principal in policy: "AWS":"{value}"')
        if value == "*":
            self.everyone = True
        elif _is_account(value):
            self.accounts.add(value)
        elif value.startswith("arn:"):
            parts = value.split(":", 5)
            if len(parts) != 6 or parts[1] != "aws" or not _is_account(parts[4]):
                raise invalid
            service, resource = parts[2], parts[5]
            if service == "iam" and resource == "root":
                self.accounts.add(parts[4])
            elif (service == "iam" and resource.split("/", 1)[0] in ("user", "role")) or (
                service == "sts" and resource.split("/", 1)[0] in ("assumed-role", "federated-user")
            ):
                if has_wildcard(resource) or "/" not in resource:
                    raise invalid
                self.arns.add(value)
            else:
                raise invalid
        else:
            raise invalid

    def grant(self, principal: Principal) -> Grant | None:
        """How the element names ``principal``, or None; for NotPrincipal, DIRECT when it
        does not name it."""
        found = self._named(principal)
        if self.negated:
            return Grant.DIRECT if found is None else None
        return found

    def _named(self, principal: Principal) -> Grant | None:
        if self.everyone:
            return Grant.DIRECT
        if principal.arn in self.arns:
            return Grant.DIRECT
        if principal.service is not None and principal.service in self.services:
            return Grant.DIRECT
        if principal.role_arn is not None and principal.role_arn in self.arns:
            return Grant.ROLE
        if principal.account and principal.account in self.accounts:
            return Grant.ACCOUNT
        if principal.canonical_id is not None and principal.canonical_id in self.canonical:
            return Grant.ACCOUNT
        return None


def _is_account(value: str) -> bool:
    return len(value) == 12 and value.isascii() and value.isdigit()


@dataclass(frozen=True, eq=False)
class Statement:
    effect: Effect
    actions: ActionSet
    resources: ResourceSet | None  # None in trust policies: the role itself
    principals: Principals | None  # None in identity and session policies
    conditions: tuple[Test, ...]
    sid: str | None = None
    source: Mapping[str, Any] = field(default_factory=dict)  # as written, for reports

    def applies(self, action: str, arn: str, keys: ContextKeys) -> bool:
        """Whether the statement covers ``action`` (lower case) on ``arn`` with these
        keys; its Principal is checked apart (`Principals.grant`). May raise
        `variables.Unresolved`."""
        return self.actions.covers(action) and self.applies_to(arn, keys)

    def applies_to(self, arn: str, keys: ContextKeys) -> bool:
        """`applies`, for a statement already known to cover the action."""
        if self.resources is not None and not self.resources.covers(arn, keys.single):
            return False
        return all(test.holds(keys) for test in self.conditions)


@dataclass(frozen=True, eq=False)
class Policy:
    statements: tuple[Statement, ...]
    version: str = VERSION_2008
    id: str | None = None
    kind: Kind = IDENTITY
    name: str = ""  # what reports call it: a policy ARN, "user/bob/inline-name"…
    text: str = ""
    # The statements that cover each action asked so far (a cloud has a few hundred actions).
    _by_action: dict[str, tuple[tuple[int, Statement], ...]] = field(
        default_factory=dict, init=False, repr=False
    )

    def statements_for(self, action: str) -> tuple[tuple[int, Statement], ...]:
        """The statements (with their index) whose Action or NotAction covers ``action``
        (lower case)."""
        found = self._by_action.get(action)
        if found is None:
            if len(self._by_action) >= 4096:
                self._by_action.clear()
            found = tuple((i, s) for i, s in enumerate(self.statements) if s.actions.covers(action))
            self._by_action[action] = found
        return found


# ---- parsing


def parse(
    document: str | Mapping[str, Any],
    kind: Kind = IDENTITY,
    *,
    limit: SizeLimit | None = None,
    entity: str = "",
    name: str = "",
) -> Policy:
    """The compiled policy of ``document``; ``limit`` checks its size first (``entity``
    names the user, group or role in the refusal)."""
    if isinstance(document, str):
        text = document
        if limit is not None:
            limit.check(text, entity)
        try:
            raw = json.loads(text, object_pairs_hook=_no_duplicates)
        except (ValueError, RecursionError):
            raise MalformedPolicy(SYNTAX) from None
    else:
        raw = document
        text = json.dumps(document)
        if limit is not None:
            limit.check(text, entity)
    if not isinstance(raw, dict) or not set(raw) <= _TOP:
        raise MalformedPolicy(SYNTAX)
    version = raw.get("Version", VERSION_2008)
    if version not in VERSIONS:
        raise MalformedPolicy(SYNTAX)
    if kind.only_2012 and version != VERSION_2012:
        raise MalformedPolicy("Policy document must be version 2012-10-17 or greater.")
    policy_id = raw.get("Id")
    if policy_id is not None and not isinstance(policy_id, str):
        raise MalformedPolicy(SYNTAX)
    sources = raw.get("Statement")
    if isinstance(sources, dict):
        sources = [sources]
    if not isinstance(sources, list) or not sources:
        raise MalformedPolicy(SYNTAX)
    statements = tuple(_statement(s, kind, version == VERSION_2012) for s in sources)
    sids = [s.sid for s in statements if s.sid]
    if len(sids) != len(set(sids)):
        raise MalformedPolicy("Statement IDs (SID) in a single policy must be unique.")
    return Policy(statements, version, policy_id, kind, name, text)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refused when it names a key twice (IAM: "Individual elements must not
    contain multiple instances of the same key")."""
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key")
    return result


def _statement(source: Any, kind: Kind, variables: bool) -> Statement:
    if not isinstance(source, dict) or not set(source) <= _STATEMENT:
        raise MalformedPolicy(SYNTAX)
    if _both(source, "Action") or _both(source, "Resource") or _both(source, "Principal"):
        raise MalformedPolicy(SYNTAX)
    effect = source.get("Effect")
    if not isinstance(effect, str) or effect.lower() not in ("allow", "deny"):
        raise MalformedPolicy(SYNTAX)
    if effect not in ("Allow", "Deny"):
        raise MalformedPolicy(LEGACY)
    sid = source.get("Sid")
    if sid is not None and not isinstance(sid, str):
        raise MalformedPolicy(SYNTAX)
    if sid and kind.iam_sid and not (sid.isascii() and sid.isalnum()):
        raise MalformedPolicy(
            "Statement IDs (SID) must be alpha-numeric. Check that your input satisfies the "
            "regular expression [0-9A-Za-z]*"
        )
    conditions = parse_conditions(source["Condition"], variables) if "Condition" in source else ()
    return Statement(
        Effect(effect),
        _actions(source, kind),
        _resources(source, kind, variables),
        _principals(source, kind),
        conditions,
        sid or None,
        source,
    )


def _both(source: Mapping[str, Any], element: str) -> bool:
    return element in source and f"Not{element}" in source


def _element(source: Mapping[str, Any], element: str) -> tuple[Any, bool] | None:
    """The element or its Not… form, and whether it was the Not… form."""
    if element in source:
        return source[element], False
    if f"Not{element}" in source:
        return source[f"Not{element}"], True
    return None


def _strings(raw: Any, error: str) -> tuple[str, ...]:
    values = raw if isinstance(raw, list) else [raw]
    if not all(isinstance(v, str) for v in values):
        raise MalformedPolicy(error)
    return tuple(values)


def _listed(source: Mapping[str, Any], element: str, missing: str) -> tuple[tuple[str, ...], bool]:
    """The strings of the element or its Not… form, and whether it was the Not… form."""
    found = _element(source, element)
    if found is None:
        raise MalformedPolicy(missing)
    raw, negated = found
    values = _strings(raw, SYNTAX)
    if not values:
        raise MalformedPolicy(missing)
    return values, negated


def _actions(source: Mapping[str, Any], kind: Kind) -> ActionSet:
    actions, negated = _listed(source, "Action", "Policy statement must contain actions.")
    for action in actions:
        _check_action(action)
        if kind.trust and action != "*" and not action.lower().startswith("sts:"):
            raise MalformedPolicy(
                "Trust Policy statement actions can only be sts:AssumeRole, "
                "sts:AssumeRoleWithSAML, and sts:AssumeRoleWithWebIdentity"
            )
    return ActionSet(actions, negated)


def _check_action(action: str) -> None:
    if action == "*":
        return
    vendor, colon, rest = action.partition(":")
    if not colon:
        raise MalformedPolicy(VENDOR)
    if ":" in rest:
        raise MalformedPolicy("Actions/Condition can contain only one colon.")
    valid = vendor and all(c.isascii() and (c.isalnum() or c in "-.") for c in vendor)
    if not valid and vendor != "*":
        raise MalformedPolicy(f"Vendor {vendor} is not valid")


def _resources(source: Mapping[str, Any], kind: Kind, variables: bool) -> ResourceSet | None:
    if not kind.resource:
        if _element(source, "Resource") is not None:
            raise MalformedPolicy("Has prohibited field Resource.")
        return None
    resources, negated = _listed(source, "Resource", "Policy statement must contain resources.")
    for resource in resources:
        _check_resource(resource)
    return ResourceSet(resources, negated, variables)


def _check_resource(resource: str) -> None:
    if resource == "*":
        return
    parts = resource.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        raise MalformedPolicy(f'Resource {resource} must be in ARN format or "*".')
    partition, service, region, account = parts[1:5]
    if partition not in ("aws", "*"):
        raise MalformedPolicy(f'Partition "{partition}" is not valid for resource "{resource}".')
    if not service or has_wildcard(service):
        raise MalformedPolicy("Resource vendor must be fully qualified and cannot contain regexes.")
    if service == "iam" and region:
        raise MalformedPolicy(f"IAM resource {resource} cannot contain region information.")
    if service == "s3" and (region or account):
        raise MalformedPolicy(f"Resource {resource} can not contain region information.")


def _principals(source: Mapping[str, Any], kind: Kind) -> Principals | None:
    found = _element(source, "Principal")
    if not kind.principal:
        if found is not None:
            raise MalformedPolicy("Policy document should not specify a principal.")
        return None
    if found is None:
        raise MalformedPolicy("Missing required field Principal")
    raw, negated = found
    return Principals(raw, negated)
