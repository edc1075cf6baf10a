"""Public access blocks: the four switches, their XML, and the setting in force.

A bucket's block is its ``public-access-block`` configuration; an account's (s3control)
is Walrus's account setting of that name. What applies to a bucket is each switch ORed
over the two. Kept as ``{"BlockPublicAcls": bool, ...}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from karri.api.s3 import xml

CONFIG = "public-access-block"
S3CONTROL_NS = "http://awss3control.amazonaws.com/doc/2018-08-20/"
ROOT = "PublicAccessBlockConfiguration"


@dataclass(frozen=True)
class PublicAccessBlock:
    """The four switches, under S3's names (as the XML and the stored JSON hold them)."""

    BlockPublicAcls: bool = False
    IgnorePublicAcls: bool = False
    BlockPublicPolicy: bool = False
    RestrictPublicBuckets: bool = False

    @classmethod
    def of(cls, stored: Mapping[str, Any] | None) -> PublicAccessBlock:
        if not stored:
            return NO_BLOCK
        return cls(**{f.name: bool(stored.get(f.name)) for f in fields(cls)})

    def stored(self) -> dict[str, bool]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __or__(self, other: PublicAccessBlock) -> PublicAccessBlock:
        if other in (NO_BLOCK, self):
            return self
        if self == NO_BLOCK:
            return other
        return PublicAccessBlock(
            **{f.name: getattr(self, f.name) or getattr(other, f.name) for f in fields(self)}
        )

    def to_xml(self, *, s3control: bool = False) -> bytes:
        parts = [xml.el(f.name, getattr(self, f.name)) for f in fields(self)]
        if s3control:
            body = "".join(parts)
            return f'{xml.HEADER}<{ROOT} xmlns="{S3CONTROL_NS}">{body}</{ROOT}>'.encode()
        return xml.document(ROOT, parts)


NO_BLOCK = PublicAccessBlock()


def parse(body: bytes) -> PublicAccessBlock:
    """A PublicAccessBlockConfiguration document; switches left out are false."""
    root = xml.parse(body, ROOT)
    values: dict[str, bool] = {}
    names = {f.name for f in fields(PublicAccessBlock)}
    for element in root:
        name = xml.local(element.tag)
        text = (element.text or "").strip().lower()
        if name not in names or name in values or text not in ("true", "false"):
            raise xml.malformed()
        values[name] = text == "true"
    return PublicAccessBlock(**values)
