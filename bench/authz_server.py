"""The EC2 API of a fresh cloud (no node, no images) for bench/ec2_api.py --authorization:
the account's root keys, and the key of an IAM user whose inline policy has 10 statements,
each with conditions.

    .venv/bin/python bench/authz_server.py --data-dir DIR --port PORT

Writes DIR/bench.json (region, root and user keys) once it serves.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from karri.api.apps import ec2_app
from karri.api.auth.credentials import KeyStore, account_keys
from karri.api.ec2.app import Ec2Api, refusal
from karri.cloud.accounts import Credentials
from karri.cloud.controller import Cloud
from karri.config import Settings
from karri.serving import loop_factory, server_config
from karri.up import open_cloud


def statement(sid: str, action: str, condition: dict, effect: str = "Allow") -> dict:
    return {"Sid": sid, "Effect": effect, "Action": action, "Resource": "*", "Condition": condition}


# Ten statements with conditions, as a user's policies might have: the ones about Describe*
# apply to the measured calls, the others are looked at and passed over.
LOOPBACK = {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}
REGION = {"StringEquals": {"aws:RequestedRegion": "eucalyptus"}}
UNTIL = {"DateLessThan": {"aws:CurrentTime": "2099-01-01T00:00:00Z"}}
OWN_TEAM = {"StringEquals": {"ec2:ResourceTag/team": "${aws:username}"}}
SMALL = {"StringEquals": {"ec2:InstanceType": ["t1.micro", "m1.small"]}}
KNOWN_TAGS = {"ForAllValues:StringEquals": {"aws:TagKeys": ["team", "name"]}}
PLAIN_FROM_TEST_NET = {
    "Bool": {"aws:SecureTransport": "false"},
    "IpAddress": {"aws:SourceIp": "192.0.2.0/24"},
}
STATEMENTS = [
    statement("FromLoopback", "ec2:Describe*", LOOPBACK),
    statement("InRegion", "ec2:Describe*", REGION),
    statement("Until", "ec2:Describe*", UNTIL),
    statement("Owner", "ec2:Describe*", {"StringLike": {"aws:username": "bench-*"}}),
    statement("Team", "ec2:StartInstances", OWN_TEAM),
    statement("Stop", "ec2:StopInstances", {"StringEquals": {"aws:ResourceTag/team": "bench"}}),
    statement("Small", "ec2:RunInstances", SMALL),
    statement("Tags", "ec2:CreateTags", KNOWN_TAGS),
    statement("NoProd", "ec2:*", {"StringEquals": {"ec2:ResourceTag/env": "prod"}}, "Deny"),
    statement("NoPlain", "ec2:*", PLAIN_FROM_TEST_NET, "Deny"),
]


DOCUMENT = json.dumps({"Version": "2012-10-17", "Statement": STATEMENTS})


@dataclass(frozen=True)
class BenchCloud:
    cloud: Cloud
    keys: KeyStore  # every key the cloud issued, as `karri up` builds it
    root: Credentials
    user: tuple[str, str]  # bench-user's access key id and secret

    def app(self):
        """The EC2 port's application, as `karri up` builds it."""
        return ec2_app(self.cloud, self.keys, {}, self.cloud.iam)

    def ec2_api(self) -> Ec2Api:
        return Ec2Api(self.cloud, self.keys, self.cloud.iam)


def bench_cloud(data_dir: Path) -> BenchCloud:
    """A fresh cloud with an account ``bench`` and its IAM user ``bench-user``, whose one
    inline policy is ``STATEMENTS``."""
    cloud = open_cloud(Settings(data_dir=data_dir))
    root = cloud.accounts.create("bench")
    account = root.account_id
    cloud.iam.users.create_user(account, "bench-user", None, {})
    cloud.iam.policies.put_inline(account, "user", "bench-user", "bench", DOCUMENT)
    key = cloud.iam.access_keys.create(account, "bench-user")
    keys = account_keys(cloud.iam.keys, cloud.iam.generation)
    return BenchCloud(cloud, keys, root, (key.access_key_id, key.secret))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    bench = bench_cloud(args.data_dir)
    sock = socket.create_server(("127.0.0.1", args.port))
    root = bench.root
    (args.data_dir / "bench.json").write_text(
        json.dumps(
            {
                "region": bench.cloud.settings.region,
                "root": [root.access_key_id, root.secret_access_key],
                "user": list(bench.user),
            }
        )
    )
    server = uvicorn.Server(server_config(bench.app(), refusal))
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(server.serve(sockets=[sock]))


if __name__ == "__main__":
    main()
