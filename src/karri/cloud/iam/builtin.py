"""AWS managed policies karri carries (``arn:aws:iam::aws:policy/…``): attachable in every
account, never changed or deleted."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class BuiltinPolicy:
    name: str
    policy_id: str
    description: str
    document: str

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::aws:policy/{self.name}"


CREATED = datetime(2015, 2, 6, 18, 39, 46, tzinfo=UTC)


def _allow(*actions: str) -> str:
    statement = {"Effect": "Allow", "Action": list(actions), "Resource": "*"}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


BUILTIN = {
    p.arn: p
    for p in (
        BuiltinPolicy(
            "AdministratorAccess",
            "ANPAIWMBCKSKIEE64ZLYK",
            "Provides full access to AWS services and resources.",
            _allow("*"),
        ),
        BuiltinPolicy(
            "ReadOnlyAccess",
            "ANPAILL3HVNFSB6DCOWYQ",
            "Provides read-only access to AWS services and resources.",
            _allow("ec2:Describe*", "ec2:Get*", "s3:Get*", "s3:List*", "iam:Get*", "iam:List*"),
        ),
        BuiltinPolicy(
            "AmazonEC2FullAccess",
            "ANPAI3VAJF5ZCRZ7MCQE6",
            "Provides full access to Amazon EC2 via the AWS Management Console.",
            _allow("ec2:*"),
        ),
        BuiltinPolicy(
            "AmazonEC2ReadOnlyAccess",
            "ANPAIGDT4SV4GSETWTBZK",
            "Provides read only access to Amazon EC2 via the AWS Management Console.",
            _allow("ec2:Describe*"),
        ),
        BuiltinPolicy(
            "AmazonS3FullAccess",
            "ANPAIFIR6V6BVTRAHWINE",
            "Provides full access to all buckets via the AWS Management Console.",
            _allow("s3:*"),
        ),
        BuiltinPolicy(
            "AmazonS3ReadOnlyAccess",
            "ANPAIZTJ4DXE7G6AGAE6M",
            "Provides read only access to all buckets via the AWS Management Console.",
            _allow("s3:Get*", "s3:List*"),
        ),
    )
}
