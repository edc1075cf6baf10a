"""From a parsed EC2 request to the cloud's request values.

A cloud request is a frozen dataclass of snake_case fields; each names the botocore member
it comes from, in CamelCase (``kms_key_id`` is ``KmsKeyId``, ``s3_bucket`` is
``S3Bucket``). The query parser has already given members their types (integers,
booleans, lists), so most fields are the member as it is; the handler passes the others
(nested shapes, tags) itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def member_name(field_name: str) -> str:
    return "".join(part.capitalize() for part in field_name.split("_"))


def request_of(cls: type[T], members: Mapping[str, Any], **given: Any) -> T:
    """``cls`` from ``members``: each field not ``given`` from its member when the request
    has it (otherwise the field's default)."""
    values = {
        f.name: members[member_name(f.name)]
        for f in fields(cls)  # type: ignore[arg-type]
        if f.name not in given and member_name(f.name) in members
    }
    return cls(**values, **given)
