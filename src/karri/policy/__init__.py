"""The policy engine: IAM's policy language and AWS's evaluation logic, for every call.

Pure: no HTTP, no database. The API layer parses the documents it stores (`parse`), builds a
`Request` for each call and asks `authorize`; a refusal becomes ``UnauthorizedOperation``
(EC2), ``AccessDenied`` (S3, IAM), a malformed document ``MalformedPolicyDocument``.
"""

from .arn import Arn, assumed_role_arn, ec2_arn, iam_arn, root_arn, s3_arn
from .context import (
    ContextKeys,
    Principal,
    PrincipalType,
    Request,
    Resource,
    environment_keys,
    tag_keys,
)
from .document import (
    GROUP_POLICY_SIZE,
    IDENTITY,
    MANAGED,
    MANAGED_POLICY_SIZE,
    RESOURCE,
    ROLE_POLICY_SIZE,
    SESSION,
    TRUST,
    TRUST_POLICY_SIZE,
    USER_POLICY_SIZE,
    Effect,
    Kind,
    Policy,
    SizeLimit,
    Statement,
    parse,
    policy_size,
)
from .errors import MalformedPolicy, PolicyTooLarge
from .evaluate import Decision, Match, Verdict, authorize, decisions
from .message import authorization_message
from .public import is_public

__all__ = [
    "GROUP_POLICY_SIZE",
    "IDENTITY",
    "MANAGED",
    "MANAGED_POLICY_SIZE",
    "RESOURCE",
    "ROLE_POLICY_SIZE",
    "SESSION",
    "TRUST",
    "TRUST_POLICY_SIZE",
    "USER_POLICY_SIZE",
    "Arn",
    "ContextKeys",
    "Decision",
    "Effect",
    "Kind",
    "MalformedPolicy",
    "Match",
    "Policy",
    "PolicyTooLarge",
    "Principal",
    "PrincipalType",
    "Request",
    "Resource",
    "SizeLimit",
    "Statement",
    "Verdict",
    "assumed_role_arn",
    "authorization_message",
    "authorize",
    "decisions",
    "ec2_arn",
    "environment_keys",
    "iam_arn",
    "is_public",
    "parse",
    "policy_size",
    "root_arn",
    "s3_arn",
    "tag_keys",
]
