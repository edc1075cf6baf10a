"""EC2 calls in IAM's terms (the action, the resources' ARNs and condition keys) and the
refusals, with fake policy and tag sources; and the EC2 endpoint's order: authentication,
parsing, authorization, then DryRun or the handler."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from starlette.requests import Request

from karri import policy
from karri.api.auth import messages
from karri.api.auth.credentials import KeyStore, Principal, SigningKey, account_keys
from karri.api.ec2.app import Ec2Api
from karri.api.ec2.authorize import Ec2Authorization, describe_call
from karri.config import Settings
from karri.errors import CloudError
from karri.up import open_cloud

REGION = "eucalyptus"
ACCOUNT = "123456789012"
USER = policy.Principal.user(ACCOUNT, "alice", "AIDAALICE")


class FakePolicies:
    def __init__(self, *documents: dict[str, Any]) -> None:
        self.policies = tuple(policy.parse(d) for d in documents)
        self.asked: list[policy.Principal] = []

    def identity_policies(self, caller: policy.Principal) -> tuple[policy.Policy, ...]:
        self.asked.append(caller)
        return self.policies


class FakeTags:
    def __init__(self, tags: dict[str, dict[str, str]] | None = None) -> None:
        self.tags = tags or {}

    def seen_by(self, account_id: str, ids: Sequence[str]) -> dict[str, dict[str, str]]:
        assert account_id == ACCOUNT
        return {i: self.tags.get(i, {}) for i in ids}


def found(known: dict[str, str]):
    def lookup(account_id: str, names: Sequence[str]) -> dict[str, str]:
        assert account_id == ACCOUNT
        return {name: known[name] for name in names if name in known}

    return lookup


LOOKUPS = {
    "security-group": found({"web": "sg-web"}),
    "elastic-ip": found({"192.0.2.1": "eipalloc-1", "eipassoc-1": "eipalloc-1"}),
    "key-pair": found({"key-0123": "mine"}),
}
INSTANCE_TYPES = found({"i-small": "t1.micro", "i-big": "m1.xlarge"})


def allow(action: str, resource: str = "*", condition: dict | None = None, effect="Allow"):
    statement: dict[str, Any] = {"Effect": effect, "Action": action, "Resource": resource}
    if condition:
        statement["Condition"] = condition
    return {"Version": "2012-10-17", "Statement": [statement]}


def all_but_tagged(action: str, key: str, value: str) -> FakePolicies:
    """Everything allowed, except ``action`` on resources tagged ``key=value``."""
    tagged = {"StringEquals": {f"ec2:ResourceTag/{key}": value}}
    return FakePolicies(allow("ec2:*"), allow(action, condition=tagged, effect="Deny"))


def user(*session: dict[str, Any]) -> Principal:
    return Principal(
        "AKIAUSER", ACCOUNT, "acct", USER, tuple(policy.parse(d, policy.SESSION) for d in session)
    )


def check(source, action: str, parsed: dict[str, Any], tags=None, who=None) -> None:
    authorization = Ec2Authorization(REGION, source, FakeTags(tags), LOOKUPS, INSTANCE_TYPES)
    authorization.check(who or user(), action, parsed, {"aws:SourceIp": "127.0.0.1"})


def refusal(source, action: str, parsed: dict[str, Any], tags=None, who=None) -> CloudError:
    with pytest.raises(CloudError) as raised:
        check(source, action, parsed, tags, who)
    assert raised.value.code == "UnauthorizedOperation"
    assert raised.value.status == 403
    return raised.value


def instance_arn(instance_id: str) -> str:
    return f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{instance_id}"


def test_resources_from_the_table() -> None:
    call = describe_call(
        "RunInstances",
        {
            "ImageId": "emi-1",
            "InstanceType": "t2.micro",
            "KeyName": "mine",
            "SecurityGroupIds": ["sg-1", "sg-2"],
            "TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "team"}]}],
        },
    )
    assert call.targets == (
        ("instance", "*", False),
        ("image", "emi-1", True),
        ("security-group", "sg-1", True),
        ("security-group", "sg-2", True),
        ("key-pair", "mine", False),
        ("network-interface", "*", False),
        ("volume", "*", False),
    )
    assert call.request_tags == {"team": ""}
    assert call.instance_type == "t2.micro"
    tagging = describe_call("CreateTags", {"Resources": ["i-1", "vol-2", "weird"]})
    assert tagging.targets == (("instance", "i-1", True), ("volume", "vol-2", True))
    assert describe_call("DescribeInstances", {"InstanceIds": ["i-1"]}).targets == ()


def test_arns_as_aws_writes_them() -> None:
    tags = FakeTags({"i-1": {"env": "prod"}})
    authorization = Ec2Authorization(REGION, FakePolicies(), tags, LOOKUPS, INSTANCE_TYPES)
    call = describe_call("AttachVolume", {"InstanceId": "i-1", "VolumeId": "vol-1"})
    instance, volume = authorization.resources(ACCOUNT, call)
    assert instance.arn == instance_arn("i-1")
    assert instance.keys == {"aws:ResourceTag/env": "prod", "ec2:ResourceTag/env": "prod"}
    assert volume.arn == f"arn:aws:ec2:{REGION}:{ACCOUNT}:volume/vol-1"
    image = authorization.resources(ACCOUNT, describe_call("DeregisterImage", {"ImageId": "ami-9"}))
    assert image[0].arn == f"arn:aws:ec2:{REGION}::image/ami-9"


def test_describe_only_user_lists_and_is_refused_run_instances() -> None:
    source = FakePolicies(allow("ec2:Describe*"))
    check(source, "DescribeInstances", {})
    error = refusal(source, "RunInstances", {"ImageId": "emi-1", "InstanceType": "t1.micro"})
    assert error.message.startswith(
        "You are not authorized to perform this operation. User: "
        f"arn:aws:iam::{ACCOUNT}:user/alice is not authorized to perform: ec2:RunInstances"
        f" on resource: arn:aws:ec2:{REGION}:{ACCOUNT}:instance/* because no identity-based"
        " policy allows the ec2:RunInstances action. Encoded authorization failure message: "
    )
    decoded = messages.decode(error.message.rsplit(" ", 1)[1])
    assert decoded["allowed"] is False and decoded["explicitDeny"] is False
    assert decoded["context"]["action"] == "ec2:RunInstances"
    assert decoded["context"]["principal"]["arn"] == USER.arn
    keys = {item["key"] for item in decoded["context"]["conditions"]["items"]}
    assert {"ec2:InstanceType", "ec2:Region", "aws:SourceIp", "aws:username"} <= keys


def test_deny_on_a_tag_beats_an_allow() -> None:
    source = all_but_tagged("ec2:TerminateInstances", "env", "prod")
    tags = {"i-prod": {"env": "prod"}, "i-dev": {"env": "dev"}}
    check(source, "TerminateInstances", {"InstanceIds": ["i-dev"]}, tags)
    error = refusal(source, "TerminateInstances", {"InstanceIds": ["i-dev", "i-prod"]}, tags)
    assert f"on resource: {instance_arn('i-prod')} with an explicit deny" in error.message
    decoded = messages.decode(error.message.rsplit(" ", 1)[1])
    assert decoded["explicitDeny"] is True
    assert decoded["matchedStatements"]["items"][0]["effect"] == "DENY"


def test_resource_arn_limits_the_allow() -> None:
    source = FakePolicies(allow("ec2:StopInstances", instance_arn("i-mine")))
    check(source, "StopInstances", {"InstanceIds": ["i-mine"]})
    refusal(source, "StopInstances", {"InstanceIds": ["i-other"]})


def test_request_tags_and_tagging_on_creation() -> None:
    parsed = {
        "Size": 1,
        "TagSpecifications": [{"ResourceType": "volume", "Tags": [{"Key": "team", "Value": "a"}]}],
    }
    volumes_of_team_a = allow(
        "ec2:CreateVolume", condition={"StringEquals": {"aws:RequestTag/team": "a"}}
    )
    # Tags on creation need ec2:CreateTags for the new resource, as on AWS.
    error = refusal(FakePolicies(volumes_of_team_a), "CreateVolume", parsed)
    assert "ec2:CreateTags" in error.message
    on_creation = allow(
        "ec2:CreateTags", condition={"StringEquals": {"ec2:CreateAction": "CreateVolume"}}
    )
    check(FakePolicies(volumes_of_team_a, on_creation), "CreateVolume", parsed)
    other = {**parsed, "TagSpecifications": [{"ResourceType": "volume", "Tags": [{"Key": "x"}]}]}
    refusal(FakePolicies(volumes_of_team_a, on_creation), "CreateVolume", other)
    key_pair = {
        "KeyName": "k",
        "TagSpecifications": [{"ResourceType": "key-pair", "Tags": [{"Key": "t"}]}],
    }
    error = refusal(FakePolicies(allow("ec2:CreateKeyPair")), "CreateKeyPair", key_pair)
    assert f"ec2:CreateTags on resource: arn:aws:ec2:{REGION}:{ACCOUNT}:key-pair/k" in error.message
    only_team = {"ForAllValues:StringEquals": {"aws:TagKeys": ["team"]}}
    keys_only = allow("ec2:CreateTags", condition=only_team)
    check(FakePolicies(keys_only), "CreateTags", {"Resources": ["i-1"], "Tags": [{"Key": "team"}]})
    refusal(FakePolicies(keys_only), "CreateTags", {"Resources": ["i-1"], "Tags": [{"Key": "x"}]})


def test_a_group_named_by_name_is_the_group() -> None:
    web = f"arn:aws:ec2:{REGION}:{ACCOUNT}:security-group/sg-web"
    source = FakePolicies(
        allow("ec2:*"), allow("ec2:AuthorizeSecurityGroupIngress", web, effect="Deny")
    )
    refusal(source, "AuthorizeSecurityGroupIngress", {"GroupId": "sg-web"})
    error = refusal(source, "AuthorizeSecurityGroupIngress", {"GroupName": "web"})
    assert f"on resource: {web} with an explicit deny" in error.message
    check(source, "AuthorizeSecurityGroupIngress", {"GroupName": "other"})
    tagged = all_but_tagged("ec2:DeleteSecurityGroup", "keep", "yes")
    refusal(tagged, "DeleteSecurityGroup", {"GroupName": "web"}, {"sg-web": {"keep": "yes"}})


def test_an_address_or_key_pair_named_otherwise_is_the_resource() -> None:
    address = f"arn:aws:ec2:{REGION}:{ACCOUNT}:elastic-ip/eipalloc-1"
    source = FakePolicies(allow("ec2:*"), allow("ec2:*Address", address, effect="Deny"))
    refusal(source, "ReleaseAddress", {"PublicIp": "192.0.2.1"})
    refusal(source, "DisassociateAddress", {"AssociationId": "eipassoc-1"})
    refusal(source, "AssociateAddress", {"PublicIp": "192.0.2.1", "InstanceId": "i-1"})
    check(source, "ReleaseAddress", {"PublicIp": "192.0.2.9"})
    mine = f"arn:aws:ec2:{REGION}:{ACCOUNT}:key-pair/mine"
    keys = FakePolicies(allow("ec2:*"), allow("ec2:DeleteKeyPair", mine, effect="Deny"))
    refusal(keys, "DeleteKeyPair", {"KeyName": "mine"})
    assert (
        f"resource: {mine} with"
        in refusal(keys, "DeleteKeyPair", {"KeyPairId": "key-0123"}).message
    )


def test_session_policies_narrow_the_identity_policies() -> None:
    source = FakePolicies(allow("ec2:*"))
    narrowed = user(allow("ec2:DescribeInstances"))
    check(source, "DescribeInstances", {}, who=narrowed)
    error = refusal(source, "DeleteVolume", {"VolumeId": "vol-1"}, who=narrowed)
    assert "because no session policy allows the ec2:DeleteVolume action" in error.message


def test_instance_type_condition() -> None:
    small = allow(
        "ec2:RunInstances", condition={"StringEqualsIfExists": {"ec2:InstanceType": "t1.micro"}}
    )
    check(FakePolicies(small), "RunInstances", {"ImageId": "emi-1", "InstanceType": "t1.micro"})
    refusal(FakePolicies(small), "RunInstances", {"ImageId": "emi-1", "InstanceType": "m1.large"})
    stop_small = allow(
        "ec2:StopInstances", condition={"StringEquals": {"ec2:InstanceType": "t1.micro"}}
    )
    check(FakePolicies(stop_small), "StopInstances", {"InstanceIds": ["i-small"]})
    refusal(FakePolicies(stop_small), "StopInstances", {"InstanceIds": ["i-small", "i-big"]})


# The endpoint, in process: a fake cloud is enough, since refused calls never reach a handler.


def endpoint(source: FakePolicies, identity: policy.Principal | None) -> Ec2Api:
    def load(access_key_id: str) -> SigningKey | None:
        return SigningKey("secret", Principal(access_key_id, ACCOUNT, "acct", identity))

    engine = SimpleNamespace(
        pool=SimpleNamespace(size=lambda: 2), dialect=SimpleNamespace(name="x")
    )
    cloud = SimpleNamespace(
        db=SimpleNamespace(engine=engine),
        settings=SimpleNamespace(region=REGION),
        tags=FakeTags(),
        groups=SimpleNamespace(ids_by_name=LOOKUPS["security-group"]),
        addresses=SimpleNamespace(ids_by_public_ip=LOOKUPS["elastic-ip"]),
        keypairs=SimpleNamespace(names_by_id=LOOKUPS["key-pair"]),
        instances=SimpleNamespace(types_of=INSTANCE_TYPES),
        profiles=SimpleNamespace(role_arns=lambda _account, _named: {}),
    )
    return Ec2Api(cloud, KeyStore(load), source)  # type: ignore[arg-type]


def call(api: Ec2Api, body: str, key: str = "AKIAUSER", secret: str = "secret") -> tuple[int, str]:
    aws = AWSRequest(
        method="POST",
        url="http://127.0.0.1/",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    SigV4Auth(Credentials(key, secret), "ec2", REGION).add_auth(aws)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "scheme": "http",
        "client": ("127.0.0.1", 5000),
        "headers": [
            (k.lower().encode(), v.encode())
            for k, v in [*aws.headers.items(), ("host", "127.0.0.1")]
        ],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body.encode(), "more_body": False}

    response = asyncio.run(api.handle(Request(scope, receive)))
    return response.status_code, bytes(response.body).decode()


RUN = "Action=RunInstances&Version=2016-11-15&ImageId=emi-1&MinCount=1&MaxCount=1"


def test_endpoint_refuses_before_the_handler_and_answers_dry_run() -> None:
    api = endpoint(FakePolicies(allow("ec2:Describe*")), USER)
    status, body = call(api, RUN)
    assert status == 403 and "<Code>UnauthorizedOperation</Code>" in body
    status, body = call(api, RUN + "&DryRun=true")
    assert status == 403 and "<Code>UnauthorizedOperation</Code>" in body
    allowed = endpoint(FakePolicies(allow("ec2:RunInstances")), USER)
    status, body = call(allowed, RUN + "&DryRun=true")
    assert status == 412 and "<Code>DryRunOperation</Code>" in body


def test_root_keys_are_never_evaluated() -> None:
    source = FakePolicies()
    status, body = call(endpoint(source, None), RUN + "&DryRun=true")
    assert status == 412 and "<Code>DryRunOperation</Code>" in body
    assert source.asked == []


def test_message_sealing_round_trip_and_tampering(tmp_path) -> None:
    messages.use_key_file(tmp_path)
    sealed = messages.encode({"allowed": False})
    messages.use_key_file(tmp_path)  # the same key, read back (another start)
    assert messages.decode(sealed) == {"allowed": False}
    assert (tmp_path / messages.KEY_FILE).stat().st_mode & 0o777 == 0o600
    with pytest.raises(messages.InvalidMessage):
        messages.decode(sealed[:-4] + "AAAA")
    with pytest.raises(messages.InvalidMessage):
        messages.decode(json.dumps({"allowed": True}))


def test_decisions_are_cached_only_for_the_same_policies_and_keys() -> None:
    from karri.api.auth.authorizer import decide

    who = user()
    first = FakePolicies(allow("ec2:DescribeInstances")).policies
    ask = (who, "ec2:DescribeInstances", [policy.Resource()])
    assert decide(first, *ask, {"aws:CurrentTime": "2026-01-01T00:00:00Z"}).allowed
    assert decide(first, *ask, {"aws:CurrentTime": "2026-01-01T00:00:00Z"}).allowed
    changed = FakePolicies(allow("ec2:DescribeInstances", effect="Deny")).policies
    assert not decide(changed, *ask, {"aws:CurrentTime": "2026-01-01T00:00:00Z"}).allowed
    later = {"StringLike": {"aws:CurrentTime": "2026-01-01T00:00:00Z"}}
    timed = FakePolicies(allow("ec2:DescribeInstances", condition=later)).policies
    assert decide(timed, *ask, {"aws:CurrentTime": "2026-01-01T00:00:00Z"}).allowed
    assert not decide(timed, *ask, {"aws:CurrentTime": "2026-01-01T00:00:01Z"}).allowed


# Against a real cloud (SQLite in a temporary data dir): the readers the check uses.


def test_tags_and_names_are_read_from_the_cloud(tmp_path) -> None:
    cloud = open_cloud(Settings(data_dir=tmp_path, region=REGION))
    account = cloud.accounts.create("acct")
    owner = account.account_id
    roots = account_keys(cloud.iam.keys)
    alice = policy.Principal.user(owner, "alice", "AIDAALICE")

    def load(access_key_id: str) -> SigningKey | None:
        if access_key_id == "AKIAUSER":
            return SigningKey("secret", Principal("AKIAUSER", owner, "acct", alice))
        return roots.get(access_key_id)

    kept = cloud.groups.create(owner, "kept", "d", None, {"keep": "yes"})
    cloud.groups.create(owner, "loose", "d", None, {"keep": "no"})
    precious, _ = cloud.keypairs.create(owner, "precious")
    cloud.keypairs.create(owner, "other")
    source = all_but_tagged("ec2:DeleteSecurityGroup", "keep", "yes")
    key_arn = f"arn:aws:ec2:{REGION}:{owner}:key-pair/precious"
    source.policies += (policy.parse(allow("ec2:DeleteKeyPair", key_arn, effect="Deny")),)
    api = Ec2Api(cloud, KeyStore(load), source)
    delete_group = "Action=DeleteSecurityGroup&Version=2016-11-15&"
    for named in ("GroupName=kept", f"GroupId={kept.group_id}"):
        status, body = call(api, delete_group + named)
        assert status == 403 and "UnauthorizedOperation" in body, body
    assert call(api, delete_group + "GroupName=loose")[0] == 200
    delete_key = "Action=DeleteKeyPair&Version=2016-11-15&"
    status, body = call(api, delete_key + f"KeyPairId={precious.key.id}")
    assert status == 403 and key_arn in body, body
    assert call(api, delete_key + "KeyName=other")[0] == 200
    assert cloud.instances.types_of(owner, ["i-00000000"]) == {}  # the query runs
    assert cloud.addresses.ids_by_public_ip(owner, ["192.0.2.1"]) == {}
    # The same calls from the account's root keys are not evaluated.
    root = (account.access_key_id, account.secret_access_key)
    assert call(api, delete_group + "GroupName=kept", *root)[0] == 200
