"""Security group API benchmark: AuthorizeSecurityGroupIngress and DescribeSecurityGroups
request rates against a real karri holding ``--groups`` groups (1,000 by default).

karri is started as bench/ec2_api.py starts it (no default images), the groups are made
with boto3, then ``--clients`` concurrent keep-alive connections send signed requests for
``--seconds`` per action:
- AuthorizeSecurityGroupIngress: every request a new rule (tcp, the next port) on the next
  group, so none is a duplicate and no group reaches its 60 rules within a run;
- DescribeSecurityGroups of all groups (each with its rules), and of one group by id.

    .venv/bin/python bench/security_groups.py [--groups 1000] [--seconds 10] [--clients 8]
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from pathlib import Path

import uvloop
from ec2_api import drive, karri, report_line, settle  # bench/ec2_api.py (this folder)

VERSION = "Version=2016-11-15"


def authorize_bodies(group_ids: list[str]):
    """A new rule per call: group i % n, port 1 + i // n."""
    counter = itertools.count()

    def body() -> str:
        i = next(counter)
        group = group_ids[i % len(group_ids)]
        port = 1 + i // len(group_ids)
        return (
            f"Action=AuthorizeSecurityGroupIngress&{VERSION}&GroupId={group}"
            f"&IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort={port}"
            f"&IpPermissions.1.ToPort={port}&IpPermissions.1.IpRanges.1.CidrIp=10.0.0.0%2F8"
        )

    return body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results: dict = {"groups": args.groups, "clients": args.clients, "seconds": args.seconds}
    with tempfile.TemporaryDirectory(prefix="karri-sg-bench-") as tmp, karri(Path(tmp)) as server:
        ec2 = server.client()
        started = time.perf_counter()
        ids = [
            ec2.create_security_group(GroupName=f"bench-{n:05d}", Description="bench")["GroupId"]
            for n in range(args.groups)
        ]
        results["create_per_s"] = args.groups / (time.perf_counter() - started)
        print(f"created {args.groups} groups at {results['create_per_s']:.0f}/s", flush=True)
        settle(server)
        actions = {
            "AuthorizeIngress": authorize_bodies(ids),
            "DescribeSGs(all)": f"Action=DescribeSecurityGroups&{VERSION}",
            "DescribeSGs(one)": f"Action=DescribeSecurityGroups&{VERSION}&GroupId.1={ids[0]}",
        }
        for name, body in actions.items():
            figures = uvloop.run(drive(server, body, args.clients, args.seconds))
            report_line("karri", name, figures)
            results[name] = figures
        count = len(ec2.describe_security_groups()["SecurityGroups"])
        assert count == args.groups + 1, count  # and the default group
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
