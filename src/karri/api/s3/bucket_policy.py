"""Bucket policy documents: S3's checks on top of IAM's grammar, and the compiled policy of
a bucket (cached by its text).

A bucket policy is a resource policy (`karri.policy.RESOURCE`): every statement names a
Principal. S3 adds its own rules: at most 20 KB; actions are S3's (``s3:…`` or ``*``);
every Resource lies within the bucket (``arn:aws:s3:::bucket`` or ``…:::bucket/…``); a
NotPrincipal only with Deny. Each refusal is ``MalformedPolicy`` (400) with S3's words.
"""

from __future__ import annotations

from functools import lru_cache

from karri import policy
from karri.policy.document import Effect
from karri.walrus import BucketInfo, S3Error

CONFIG = "policy"
MAX_SIZE = 20 * 1024


def malformed(message: str) -> S3Error:
    return S3Error("MalformedPolicy", message, 400)


def check_document(text: str, bucket: str) -> policy.Policy:
    """The compiled policy of ``text`` for ``bucket``, or ``MalformedPolicy``."""
    if len(text.encode()) > MAX_SIZE:
        raise S3Error(
            "MalformedPolicy",
            "Policy exceeds the maximum allowed document size.",
            400,
        )
    if not text.lstrip().startswith("{"):
        raise malformed("Policies must be valid JSON and the first byte must be '{'")
    try:
        compiled = policy.parse(text, policy.RESOURCE)
    except policy.MalformedPolicy as error:
        message = error.message
        if message == "Syntax errors in policy.":
            message = "This policy contains invalid Json"
        raise malformed(message) from None
    for statement in compiled.statements:
        _check_statement(statement, bucket)
    return compiled


def _check_statement(statement: policy.Statement, bucket: str) -> None:
    principals = statement.principals
    if principals is not None and principals.negated and statement.effect is Effect.ALLOW:
        raise malformed("Invalid principal in policy: NotPrincipal is only supported with Deny")
    for action in statement.actions.patterns:
        vendor = action.split(":", 1)[0].lower()
        if action != "*" and vendor not in ("s3", "*"):
            raise malformed("Policy has invalid action")
    resources = statement.resources
    if resources is None or not all(_within(arn, bucket) for arn in resources.patterns):
        raise malformed("Policy has invalid resource")


def _within(arn: str, bucket: str) -> bool:
    """Whether a Resource names the bucket or objects in it."""
    prefix = "arn:aws:s3:::"
    if not arn.startswith(prefix):
        return False
    name, _, _key = arn[len(prefix) :].partition("/")
    return name == bucket


def stored(bucket: BucketInfo) -> policy.Policy | None:
    """The bucket's policy, compiled, or None."""
    text = bucket.config(CONFIG)
    if not text:
        return None
    return _compiled(text, bucket.name)


@lru_cache(maxsize=1024)
def _compiled(text: str, bucket: str) -> policy.Policy:
    return policy.parse(text, policy.RESOURCE, name=f"arn:aws:s3:::{bucket}")
