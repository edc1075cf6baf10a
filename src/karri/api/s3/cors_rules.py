"""A bucket's CORS rules: the CORSConfiguration document, read and written, and which rule
answers a cross-origin request.

Rules are kept (``BucketInfo.config("cors")``) as JSON-able dicts: ``origins``,
``methods``, ``headers``, ``expose`` (lists), ``id`` and ``max_age`` (optional). The first
rule that matches wins. An origin or header pattern holds at most one ``*``, which matches
any run of characters, the empty one too; patterns are anchored at both ends. Origins are
compared as written, header names without regard to case.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from karri.api.s3 import xml
from karri.numbers import natural
from karri.walrus import S3Error, invalid_argument

Rule = dict[str, Any]
MAX_RULES = 100
MAX_ID = 255
METHODS = ("GET", "PUT", "HEAD", "POST", "DELETE")
VARY = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"
_LISTS = {  # element -> the rule's list
    "AllowedOrigin": "origins",
    "AllowedMethod": "methods",
    "AllowedHeader": "headers",
    "ExposeHeader": "expose",
}


def _invalid(message: str) -> S3Error:
    return S3Error("InvalidRequest", message, 400)


def parse_configuration(body: bytes) -> list[Rule]:
    """The rules of a PutBucketCors document, checked as S3 checks them: the shape first
    (MalformedXML), then the values (InvalidRequest)."""
    root = xml.parse(body, "CORSConfiguration")
    if (root.text or "").strip() or any(xml.local(e.tag) != "CORSRule" for e in root):
        raise xml.malformed()
    if not 1 <= len(root) <= MAX_RULES:
        raise xml.malformed()
    rules = [_parse_rule(element) for element in root]
    for rule in rules:
        _check_rule(rule)
    return rules


def _parse_rule(element) -> Rule:
    rule: Rule = {"origins": [], "methods": [], "headers": [], "expose": []}
    for item in element:
        name, value = xml.local(item.tag), (item.text or "").strip()
        if len(item):
            raise xml.malformed()
        if name in _LISTS:
            rule[_LISTS[name]].append(value)
        elif name == "ID" and "id" not in rule:
            rule["id"] = value
        elif name == "MaxAgeSeconds" and "max_age" not in rule:
            seconds = natural(value)
            if seconds is None or seconds > 2**31 - 1:
                raise xml.malformed()
            rule["max_age"] = seconds
        else:
            raise xml.malformed()
    if not rule["origins"] or not rule["methods"]:
        raise xml.malformed()
    return rule


def _check_rule(rule: Rule) -> None:
    for method in rule["methods"]:
        if method not in METHODS:
            raise _invalid(
                f"Found unsupported HTTP method in CORS config. Unsupported method is {method}"
            )
    for origin in rule["origins"]:
        if origin.count("*") > 1:
            raise _invalid(f'AllowedOrigin "{origin}" can not have more than one wildcard.')
    for header in rule["headers"]:
        if header.count("*") > 1:
            raise _invalid(f'AllowedHeader "{header}" can not have more than one wildcard.')
    for header in rule["expose"]:
        if "*" in header:
            raise _invalid(
                f'ExposeHeader "{header}" contains wildcard. We currently do not support '
                "wildcard for ExposeHeader."
            )
    if len(rule.get("id", "")) > MAX_ID:
        raise invalid_argument("The ID of a CORSRule must be no longer than 255 characters")


def configuration_xml(rules: Sequence[Rule]) -> bytes:
    """GetBucketCors's document: each rule's members in S3's order."""
    parts = []
    for rule in rules:
        members = [xml.el("ID", rule["id"])] if "id" in rule else []
        members += [xml.el("AllowedHeader", h) for h in rule["headers"]]
        members += [xml.el("AllowedMethod", m) for m in rule["methods"]]
        members += [xml.el("AllowedOrigin", o) for o in rule["origins"]]
        members += [xml.el("ExposeHeader", h) for h in rule["expose"]]
        if "max_age" in rule:
            members.append(xml.el("MaxAgeSeconds", rule["max_age"]))
        parts.append(f"<CORSRule>{''.join(members)}</CORSRule>")
    return xml.document("CORSConfiguration", parts)


@lru_cache(maxsize=4096)
def _pattern(value: str, ignore_case: bool) -> re.Pattern[str]:
    escaped = re.escape(value).replace(r"\*", ".*")
    return re.compile(escaped, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def _matches(patterns: Sequence[str], value: str, *, ignore_case: bool = False) -> bool:
    return any(_pattern(p, ignore_case).fullmatch(value) for p in patterns)


def requested_headers(value: str | None) -> list[str]:
    """The names an ``Access-Control-Request-Headers`` lists, lower-cased, empties skipped."""
    if not value:
        return []
    return [name.strip().lower() for name in value.split(",") if name.strip()]


def matching_rule(
    rules: Sequence[Rule], origin: str, method: str, headers: Sequence[str] = ()
) -> Rule | None:
    """The first rule allowing ``origin`` to ``method`` with every one of ``headers``."""
    for rule in rules:
        if method not in rule["methods"] or not _matches(rule["origins"], origin):
            continue
        if all(_matches(rule["headers"], name, ignore_case=True) for name in headers):
            return rule
    return None


def response_headers(rule: Rule, origin: str, headers: Sequence[str] = ()) -> dict[str, str]:
    """The ``Access-Control-*`` headers (and ``Vary``) of an answer that ``rule`` allows:
    a rule open to every origin (``*``) says ``*`` and no credentials, any other echoes
    the origin and allows credentials, as S3 does."""
    answer: dict[str, str] = {}
    if "*" in rule["origins"]:
        answer["access-control-allow-origin"] = "*"
    else:
        answer["access-control-allow-origin"] = origin
        answer["access-control-allow-credentials"] = "true"
    answer["access-control-allow-methods"] = ", ".join(rule["methods"])
    if headers:
        answer["access-control-allow-headers"] = ", ".join(headers)
    if rule["expose"]:
        answer["access-control-expose-headers"] = ", ".join(rule["expose"])
    if "max_age" in rule:
        answer["access-control-max-age"] = str(rule["max_age"])
    answer["vary"] = VARY
    return answer
