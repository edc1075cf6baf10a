"""Amazon Resource Names: built, parsed and matched as AWS does.

``arn:partition:service:region:account:resource``; the resource part may hold more colons.
A pattern (a policy's Resource, an ``ArnLike`` value) is matched segment by segment, its
wildcards confined to their segment, except ``*`` alone, which matches anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from .variables import TemplateMatcher, Token
from .wildcard import Matcher, Parts, compile_parts

PARTITION = "aws"

# EC2 resource types whose ARNs carry no account (AWS's format for images and snapshots).
_EC2_WITHOUT_ACCOUNT = frozenset({"image", "snapshot"})
EC2_TYPES = frozenset(
    {
        "instance",
        "volume",
        "snapshot",
        "image",
        "key-pair",
        "security-group",
        "vpc",
        "subnet",
        "network-interface",
        "elastic-ip",
    }
)
IAM_TYPES = frozenset({"user", "group", "role", "policy", "instance-profile"})


@dataclass(frozen=True)
class Arn:
    partition: str
    service: str
    region: str
    account: str
    resource: str

    def __str__(self) -> str:
        return ":".join(
            ("arn", self.partition, self.service, self.region, self.account, self.resource)
        )

    @classmethod
    def parse(cls, text: str) -> Arn:
        parts = text.split(":", 5)
        if len(parts) != 6 or parts[0] != "arn" or not parts[1] or not parts[2]:
            raise ValueError(f"{text!r} is not an ARN")
        return cls(*parts[1:])

    @property
    def resource_type(self) -> str:
        """``instance`` of ``instance/i-1``, ``user`` of ``user/path/name``; S3 has none."""
        kind, sep, _ = self.resource.partition("/")
        return kind if sep else ""

    @property
    def resource_id(self) -> str:
        """What follows the type: ``i-1``, ``path/name`` (IAM names carry their path)."""
        _, sep, rest = self.resource.partition("/")
        return rest if sep else self.resource


def ec2_arn(region: str, account: str, kind: str, resource_id: str) -> str:
    """``arn:aws:ec2:us-east-1:123456789012:instance/i-…``; images and snapshots have an
    empty account (``arn:aws:ec2:us-east-1::image/ami-…``)."""
    if kind not in EC2_TYPES:
        raise ValueError(f"unknown EC2 resource type {kind!r}")
    owner = "" if kind in _EC2_WITHOUT_ACCOUNT else account
    return str(Arn(PARTITION, "ec2", region, owner, f"{kind}/{resource_id}"))


def s3_arn(bucket: str, key: str | None = None) -> str:
    """``arn:aws:s3:::bucket`` or, with a key, ``arn:aws:s3:::bucket/key``."""
    return str(Arn(PARTITION, "s3", "", "", bucket if key is None else f"{bucket}/{key}"))


def iam_arn(account: str, kind: str, name: str, path: str = "/") -> str:
    """``arn:aws:iam::123456789012:user/division/name``: the path sits between type and
    name, as IAM writes it."""
    if kind not in IAM_TYPES:
        raise ValueError(f"unknown IAM resource type {kind!r}")
    if not path.startswith("/") or not path.endswith("/"):
        raise ValueError(f"an IAM path begins and ends with '/': {path!r}")
    return str(Arn(PARTITION, "iam", "", account, f"{kind}{path}{name}"))


def root_arn(account: str) -> str:
    return str(Arn(PARTITION, "iam", "", account, "root"))


def assumed_role_arn(account: str, role_name: str, session_name: str) -> str:
    """``arn:aws:sts::123456789012:assumed-role/role/session`` (no path, as STS writes it)."""
    return str(Arn(PARTITION, "sts", "", account, f"assumed-role/{role_name}/{session_name}"))


def name_of(arn: str) -> str:
    """The last part of an IAM or STS ARN's resource: a user's or role's name."""
    return arn.rsplit("/", 1)[-1]


def compile_arn_parts(parts: Parts) -> Matcher:
    """A test of ARNs against the pattern ``parts``: six segments, or ``*`` alone. Only the
    colons of pattern text cut segments, not those of a variable's value."""
    parts = list(parts)
    if parts == [("*", True)]:
        return _anything
    segments: list[list[tuple[str, bool]]] = [[]]
    for text, wildcards in parts:
        if not wildcards:
            segments[-1].append((text, False))
            continue
        pieces = text.split(":", 6 - len(segments))
        segments[-1].append((pieces[0], True))
        segments.extend([(piece, True)] for piece in pieces[1:])
    if len(segments) != 6:
        return _nothing
    matchers = [compile_parts(segment) for segment in segments]

    def match(value: str) -> bool:
        values = value.split(":", 5)
        return len(values) == 6 and all(m(v) for m, v in zip(matchers, values, strict=True))

    return match


def arn_matcher(tokens: tuple[Token, ...]) -> TemplateMatcher:
    return TemplateMatcher(tokens, compile_arn_parts)


def _anything(_value: str) -> bool:
    return True


def _nothing(_value: str) -> bool:
    return False
