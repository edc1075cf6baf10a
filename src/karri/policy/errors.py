"""The refusals of a policy document, in IAM's codes and words."""

from __future__ import annotations

from karri.errors import CloudError

SYNTAX = "Syntax errors in policy."
LEGACY = "The policy failed legacy parsing"


class MalformedPolicy(CloudError):
    """IAM's ``MalformedPolicyDocument`` (S3 answers such a bucket policy with its own
    ``MalformedPolicy``: the caller may copy ``message`` into another code)."""

    def __init__(self, message: str) -> None:
        super().__init__("MalformedPolicyDocument", message, 400)


class PolicyTooLarge(CloudError):
    """IAM's ``LimitExceeded`` for a document over its size limit."""

    def __init__(self, message: str) -> None:
        super().__init__("LimitExceeded", message, 409)
