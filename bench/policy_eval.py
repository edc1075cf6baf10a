"""Policy engine benchmark: how many authorizations per second one core makes.

A user with one identity policy of ten statements, most with conditions (tags, source
address, time, s3:prefix with a policy variable, IfExists, a set qualifier), asks for a
mix of EC2 and S3 actions: allowed by the first statement or by a late one, refused by an
explicit deny, refused by default. Each authorization builds its request (principal keys,
environment keys, a resource with tags) and evaluates it, as the API will for each call.

The issue's aim: authorization costs at most 10 % of the EC2 request rate. At ``--ec2-rate``
requests/s (bench/ec2_api.py measures it; ~2,700/s for DescribeRegions in docs/benchmarks.md)
a request has 1/rate s of one core, so the budget per authorization is a tenth of that.

    .venv/bin/python bench/policy_eval.py [--count 100000] [--ec2-rate 2700] [--json]
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime

from karri.policy import (
    Principal,
    Request,
    Resource,
    authorize,
    ec2_arn,
    environment_keys,
    parse,
    s3_arn,
    tag_keys,
)

ACCOUNT = "123456789012"
REGION = "us-east-1"
POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Sid": "Describe", "Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"},
        {
            "Sid": "OwnInstances",
            "Effect": "Allow",
            "Action": ["ec2:StartInstances", "ec2:StopInstances", "ec2:RebootInstances"],
            "Resource": "arn:aws:ec2:*:*:instance/*",
            "Condition": {"StringEquals": {"aws:ResourceTag/Owner": "${aws:username}"}},
        },
        {
            "Sid": "RunSmall",
            "Effect": "Allow",
            "Action": "ec2:RunInstances",
            "Resource": "*",
            "Condition": {"StringLikeIfExists": {"ec2:InstanceType": ["t2.*", "t3.*"]}},
        },
        {
            "Sid": "Volumes",
            "Effect": "Allow",
            "Action": ["ec2:CreateVolume", "ec2:AttachVolume", "ec2:DetachVolume"],
            "Resource": ["arn:aws:ec2:*:*:volume/*", "arn:aws:ec2:*:*:instance/*"],
            "Condition": {"NumericLessThanEquals": {"ec2:VolumeSize": "100"}},
        },
        {
            "Sid": "Tags",
            "Effect": "Allow",
            "Action": "ec2:CreateTags",
            "Resource": "*",
            "Condition": {"ForAllValues:StringEquals": {"aws:TagKeys": ["Owner", "env"]}},
        },
        {
            "Sid": "ListHome",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": "arn:aws:s3:::home",
            "Condition": {"StringLike": {"s3:prefix": ["", "home/", "home/${aws:username}/*"]}},
        },
        {
            "Sid": "OwnObjects",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            "Resource": "arn:aws:s3:::home/home/${aws:username}/*",
        },
        {
            "Sid": "OfficeOnly",
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {"NotIpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.0.2.0/24"]}},
        },
        {
            "Sid": "ProtectProd",
            "Effect": "Deny",
            "Action": ["ec2:TerminateInstances", "ec2:StopInstances"],
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:ResourceTag/env": "prod"}},
        },
        {
            "Sid": "BeforeEndOfYear",
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {"DateGreaterThan": {"aws:CurrentTime": "2099-12-31T23:59:59Z"}},
        },
    ],
}


def instance(**tags: str) -> Resource:
    return Resource(
        ec2_arn(REGION, ACCOUNT, "instance", "i-0123456789abcdef0"),
        tag_keys("aws:ResourceTag", tags),
    )


# (action, resource, request keys, expected allowed)
CALLS = [
    ("ec2:DescribeInstances", lambda: Resource(), {}, True),  # the first statement
    ("ec2:StopInstances", lambda: instance(Owner="bob", env="test"), {}, True),
    ("ec2:StopInstances", lambda: instance(Owner="bob", env="prod"), {}, False),  # explicit deny
    ("ec2:TerminateInstances", lambda: instance(Owner="bob"), {}, False),  # implicit deny
    ("s3:GetObject", lambda: Resource(s3_arn("home", "home/bob/cv.pdf")), {}, True),  # late
    ("s3:ListBucket", lambda: Resource(s3_arn("home")), {"s3:prefix": "home/bob/"}, True),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="authorizations to make")
    parser.add_argument("--ec2-rate", type=float, default=2700.0, help="EC2 requests/s")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    started = time.perf_counter()
    policy = parse(json.dumps(POLICY), name="bench")
    parse_seconds = time.perf_counter() - started
    bob = Principal.user(ACCOUNT, "bob", "AIDAEXAMPLEBOB")
    now = datetime.now(UTC)
    for action, resource, keys, expected in CALLS:  # the mix is what it claims to be
        request = Request(
            bob, action, (resource(),), {**environment_keys(now=now, source_ip="10.1.2.3"), **keys}
        )
        assert authorize(request, [policy]).allowed is expected, action

    # Resources are built outside the timed loop, keys and requests inside it.
    resources = [(action, (resource(),), keys) for action, resource, keys, _ in CALLS]
    started = time.perf_counter()
    for n in range(args.count):
        action, targets, keys = resources[n % len(resources)]
        environment = environment_keys(now=now, source_ip="10.1.2.3", secure_transport=True)
        authorize(Request(bob, action, targets, {**environment, **keys}), [policy])
    seconds = time.perf_counter() - started

    rate = args.count / seconds
    per_call_us = seconds / args.count * 1e6
    budget_us = 0.1 / args.ec2_rate * 1e6
    figures = {
        "evaluations": args.count,
        "statements": len(POLICY["Statement"]),
        "evaluations_per_s": round(rate),
        "us_per_evaluation": round(per_call_us, 2),
        "parse_ms": round(parse_seconds * 1000, 3),
        "ec2_rate": args.ec2_rate,
        "budget_us": round(budget_us, 1),
        "share_of_ec2_request": round(per_call_us / (1e6 / args.ec2_rate), 4),
    }
    if args.json:
        print(json.dumps(figures))
        return
    statements = figures["statements"]
    share = figures["share_of_ec2_request"]
    print(f"{rate:,.0f} evaluations/s ({per_call_us:.1f} µs each), {statements} statements")
    print(f"parse: {parse_seconds * 1000:.2f} ms")
    print(f"at {args.ec2_rate:,.0f} EC2 requests/s: {share:.1%} of a request's time")
    print(f"(aim: at most 10 %, {budget_us:.0f} µs)")


if __name__ == "__main__":
    main()
