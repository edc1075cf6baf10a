"""CORS rules: the document S3 takes, and which rule answers which request."""

from __future__ import annotations

import pytest

from karri.api.s3.cors_rules import (
    VARY,
    configuration_xml,
    matching_rule,
    parse_configuration,
    requested_headers,
    response_headers,
)
from karri.walrus import S3Error

NS = "http://s3.amazonaws.com/doc/2006-03-01/"


def doc(*rules: str) -> bytes:
    return f'<CORSConfiguration xmlns="{NS}">{"".join(rules)}</CORSConfiguration>'.encode()


def rule(origins=("*",), methods=("GET",), headers=(), expose=(), extra="") -> str:
    parts = [f"<AllowedOrigin>{o}</AllowedOrigin>" for o in origins]
    parts += [f"<AllowedMethod>{m}</AllowedMethod>" for m in methods]
    parts += [f"<AllowedHeader>{h}</AllowedHeader>" for h in headers]
    parts += [f"<ExposeHeader>{h}</ExposeHeader>" for h in expose]
    return f"<CORSRule>{''.join(parts)}{extra}</CORSRule>"


def code_of(body: bytes) -> tuple[str, str]:
    with pytest.raises(S3Error) as caught:
        parse_configuration(body)
    return caught.value.code, caught.value.message


def test_a_document_round_trips_in_s3s_member_order() -> None:
    rules = parse_configuration(
        doc(
            rule(
                ("http://a.example", "https://*.b.example"),
                ("PUT", "GET"),
                ("Content-Type", "x-amz-*"),
                ("ETag",),
                "<MaxAgeSeconds>3000</MaxAgeSeconds><ID>first</ID>",
            )
        )
    )
    assert rules == [
        {
            "origins": ["http://a.example", "https://*.b.example"],
            "methods": ["PUT", "GET"],
            "headers": ["Content-Type", "x-amz-*"],
            "expose": ["ETag"],
            "max_age": 3000,
            "id": "first",
        }
    ]
    text = configuration_xml(rules).decode()
    assert text.index("<ID>") < text.index("<AllowedHeader>") < text.index("<AllowedMethod>")
    assert text.index("<AllowedOrigin>") < text.index("<ExposeHeader>") < text.index("<MaxAge")
    assert parse_configuration(configuration_xml(rules)) == rules


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (doc(), "MalformedXML"),  # no rule
        (doc(*[rule()] * 101), "MalformedXML"),
        (doc("<CORSRule><AllowedMethod>GET</AllowedMethod></CORSRule>"), "MalformedXML"),
        (doc("<CORSRule><AllowedOrigin>*</AllowedOrigin></CORSRule>"), "MalformedXML"),
        (doc(rule(extra="<Unknown>1</Unknown>")), "MalformedXML"),
        (doc(rule(extra="<MaxAgeSeconds>-1</MaxAgeSeconds>")), "MalformedXML"),
        (doc(rule(extra="<MaxAgeSeconds>soon</MaxAgeSeconds>")), "MalformedXML"),
        (b"<CORSConfiguration><CORSRule>", "MalformedXML"),
        (b"<Other/>", "MalformedXML"),
        (doc(rule(methods=("PATCH",))), "InvalidRequest"),
        (doc(rule(methods=("OPTIONS",))), "InvalidRequest"),
        (doc(rule(methods=("get",))), "InvalidRequest"),
        (doc(rule(origins=("http://*.*.example",))), "InvalidRequest"),
        (doc(rule(headers=("x-*-*",))), "InvalidRequest"),
        (doc(rule(expose=("x-amz-*",))), "InvalidRequest"),
        (doc(rule(extra=f"<ID>{'i' * 256}</ID>")), "InvalidArgument"),
    ],
)
def test_documents_s3_refuses(body: bytes, expected: str) -> None:
    assert code_of(body)[0] == expected


def test_refusals_name_the_value() -> None:
    assert code_of(doc(rule(methods=("PATCH",))))[1] == (
        "Found unsupported HTTP method in CORS config. Unsupported method is PATCH"
    )
    assert code_of(doc(rule(origins=("*a*",))))[1] == (
        'AllowedOrigin "*a*" can not have more than one wildcard.'
    )


def test_a_hundred_rules_and_an_empty_origin_are_taken() -> None:
    assert len(parse_configuration(doc(*[rule()] * 100))) == 100
    assert parse_configuration(doc(rule(origins=("",))))[0]["origins"] == [""]


RULES = [
    {"origins": ["http://*.example.com"], "methods": ["PUT"], "headers": ["x-amz-*"], "expose": []},
    {"origins": ["https://app.test"], "methods": ["GET", "PUT"], "headers": [], "expose": []},
    {"origins": ["*"], "methods": ["GET"], "headers": ["*"], "expose": ["ETag"], "max_age": 60},
]


@pytest.mark.parametrize(
    ("origin", "method", "headers", "expected"),
    [
        ("http://a.example.com", "PUT", [], 0),
        ("http://.example.com", "PUT", [], 0),  # * matches the empty run too
        ("http://a.example.com", "PUT", ["x-amz-date", "X-AMZ-META-A"], 0),
        ("http://a.example.com", "PUT", ["content-type"], None),  # 0 lacks it, 1 and 2 differ
        ("http://a.example.com.evil", "PUT", [], None),  # anchored at the end
        ("https://app.test", "PUT", [], 1),
        ("https://app.test", "PUT", ["content-type"], None),  # rule 1 allows no header
        ("https://app.test/", "GET", [], 2),  # not rule 1 (exact), but the * rule
        ("https://app.test", "DELETE", [], None),
        ("anything", "GET", ["content-type", "authorization"], 2),
        ("anything", "HEAD", [], None),
    ],
)
def test_the_first_matching_rule_answers(origin, method, headers, expected) -> None:
    found = matching_rule(RULES, origin, method, headers)
    assert found is (RULES[expected] if expected is not None else None)


def test_requested_headers_are_a_lowercase_list() -> None:
    assert requested_headers("Content-Type, X-Amz-Date,,x-amz-meta-a ") == [
        "content-type",
        "x-amz-date",
        "x-amz-meta-a",
    ]
    assert requested_headers(None) == []


def test_answers_echo_a_named_origin_and_say_star_for_any() -> None:
    named = response_headers(RULES[1], "https://app.test", ["content-type"])
    assert named == {
        "access-control-allow-origin": "https://app.test",
        "access-control-allow-credentials": "true",
        "access-control-allow-methods": "GET, PUT",
        "access-control-allow-headers": "content-type",
        "vary": VARY,
    }
    anyone = response_headers(RULES[2], "http://x")
    assert anyone["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in anyone
    assert anyone["access-control-expose-headers"] == "ETag"
    assert anyone["access-control-max-age"] == "60"
