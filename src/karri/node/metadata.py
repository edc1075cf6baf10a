"""The EC2 instance metadata tree, built from what the cloud controller says of an instance.

The cloud supplies ``lookup(private_ip) -> InstanceMetadata | None``; this module turns
one InstanceMetadata into the paths EC2 serves under ``/<version>/``. Every version serves
the same tree (AWS hides a few keys from older versions; clients only ask for keys their
version has).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

VERSIONS = (
    "1.0",
    "2007-01-19",
    "2007-03-01",
    "2007-08-29",
    "2007-10-10",
    "2007-12-15",
    "2008-02-01",
    "2008-09-01",
    "2009-04-04",
    "2011-01-01",
    "2011-05-01",
    "2012-01-12",
    "2014-02-25",
    "2014-11-05",
    "2015-10-20",
    "2016-04-19",
    "2016-06-30",
    "2016-09-02",
    "2018-03-28",
    "2018-08-17",
    "2018-09-24",
    "2019-10-01",
    "2020-10-27",
    "2021-01-03",
    "2021-03-23",
    "2021-07-15",
    "2022-09-24",
    "latest",
)


@dataclass(frozen=True)
class RoleCredentials:
    """The temporary credentials of an instance profile's role (``ASIA…`` and a token)."""

    access_key_id: str
    secret_access_key: str
    token: str
    expiration: datetime


@dataclass(frozen=True)
class ProfileMetadata:
    """``meta-data/iam/``: the instance's profile and its role's credentials, as the cloud
    issued them (it renews them; the node only serves what it is given)."""

    arn: str
    id: str
    last_updated: datetime
    role_name: str | None = None
    """None: the profile holds no role (``security-credentials/`` is absent)."""
    credentials: RoleCredentials | None = None
    code: str = "Success"
    """Else why the role gave no credentials (``AssumeRoleUnauthorizedAccess``), with
    ``message``."""
    message: str = ""


@dataclass(frozen=True)
class InterfaceMetadata:
    """An instance's network interface other than its primary one, as the guest sees it."""

    mac: str
    interface_id: str
    device_number: int
    local_ipv4s: tuple[str, ...]
    """Its primary private address first, then its secondary ones."""
    subnet_id: str
    subnet_cidr_block: str
    security_group_ids: tuple[str, ...] = ()
    security_groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class InstanceMetadata:
    """One instance as its guest sees it through the metadata service."""

    instance_id: str
    account_id: str
    region: str
    availability_zone: str
    reservation_id: str
    ami_id: str
    instance_type: str
    local_ipv4: str
    mac: str
    launch_time: datetime
    hostname: str = ""
    """Defaults to the local hostname."""
    local_hostname: str = ""
    """Defaults to ``ip-a-b-c-d.<region>.compute.internal``."""
    ami_launch_index: int = 0
    ami_manifest_path: str = "(unknown)"
    block_device_mapping: Mapping[str, str] = field(default_factory=dict)
    """AWS names (``ami``, ``root``, ``ebs1``, ``ephemeral0``) to device names."""
    kernel_id: str | None = None
    ramdisk_id: str | None = None
    public_ipv4: str | None = None
    public_hostname: str | None = None
    public_keys: tuple[tuple[str, str], ...] = ()
    """(key pair name, OpenSSH public key) pairs."""
    security_groups: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    interface_id: str = ""
    """The primary network interface (``eni-…``) and its VPC and subnet."""
    vpc_id: str = ""
    vpc_cidr_blocks: tuple[str, ...] = ()
    subnet_id: str = ""
    subnet_cidr_block: str = ""
    user_data: bytes | None = None
    architecture: str = "x86_64"
    http_tokens: Literal["optional", "required"] = "optional"
    """``required``: IMDSv1 requests (no session token) are refused with 401."""
    iam: ProfileMetadata | None = None
    """The IAM instance profile (None: no ``iam/``)."""
    secondary_ipv4s: tuple[str, ...] = ()
    """The primary interface's secondary private addresses (its ``local-ipv4s``)."""
    other_interfaces: tuple[InterfaceMetadata, ...] = ()
    """Its other network interfaces, each under its MAC in ``network/interfaces/macs/``."""

    @property
    def local_name(self) -> str:
        if self.local_hostname:
            return self.local_hostname
        return f"ip-{self.local_ipv4.replace('.', '-')}.{self.region}.compute.internal"

    @property
    def public_name(self) -> str:
        if self.public_hostname:
            return self.public_hostname
        if self.public_ipv4:
            return f"ec2-{self.public_ipv4.replace('.', '-')}.{self.region}.compute.amazonaws.com"
        return ""


MetadataLookup = Callable[[str], InstanceMetadata | Awaitable[InstanceMetadata | None] | None]
"""An instance's metadata by a key, plain or async: the metadata service asks by source
address; the node, which knows which instance that is in the VPC, asks the cloud by
instance id."""


@dataclass(frozen=True)
class Directory:
    entries: Mapping[str, Entry]
    listing: tuple[str, ...] | None = None
    """What the directory lists, when not its entries' names (``public-keys/``)."""

    def text(self) -> str:
        if self.listing is not None:
            return "\n".join(self.listing)
        return "\n".join(
            k + "/" if isinstance(v, Directory) else k for k, v in self.entries.items()
        )


@dataclass(frozen=True)
class SignedView:
    """A signed view of the identity document (``signature``, ``pkcs7``, ``rsa2048``):
    the metadata service gets its bytes when it is asked for (``node/signedviews.py``)."""

    name: str
    document: bytes


Entry = str | bytes | Directory | SignedView


def _ec2_json(doc: Mapping[str, object]) -> str:
    """JSON as EC2's metadata service prints it (two spaces, ``"key" : value``)."""
    return json.dumps(doc, indent=2, separators=(",", " : "))


def _time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iam_directory(p: ProfileMetadata) -> Directory:
    """``meta-data/iam/``: ``info`` and ``security-credentials/ROLE``, EC2's documents."""
    updated = _time(p.last_updated)
    info: dict[str, object] = {"Code": p.code, "LastUpdated": updated}
    if p.message:
        info["Message"] = p.message
    info |= {"InstanceProfileArn": p.arn, "InstanceProfileId": p.id}
    entries: dict[str, Entry] = {"info": _ec2_json(info)}
    if p.role_name is not None:
        c = p.credentials
        if c is None:
            document: dict[str, object] = {
                "Code": p.code,
                "Message": p.message,
                "LastUpdated": updated,
            }
        else:
            document = {
                "Code": "Success",
                "LastUpdated": updated,
                "Type": "AWS-HMAC",
                "AccessKeyId": c.access_key_id,
                "SecretAccessKey": c.secret_access_key,
                "Token": c.token,
                "Expiration": _time(c.expiration),
            }
        entries["security-credentials"] = Directory({p.role_name: _ec2_json(document)})
    return Directory(entries)


def identity_document(m: InstanceMetadata) -> bytes:
    """``dynamic/instance-identity/document``, laid out as EC2 lays it out."""
    doc = {
        "accountId": m.account_id,
        "architecture": m.architecture,
        "availabilityZone": m.availability_zone,
        "billingProducts": None,
        "devpayProductCodes": None,
        "marketplaceProductCodes": None,
        "imageId": m.ami_id,
        "instanceId": m.instance_id,
        "instanceType": m.instance_type,
        "kernelId": m.kernel_id,
        "pendingTime": _time(m.launch_time),
        "privateIp": m.local_ipv4,
        "ramdiskId": m.ramdisk_id,
        "region": m.region,
        "version": "2017-09-30",
    }
    return _ec2_json(doc).encode()


def _dir(**entries: Entry | None) -> Directory:
    return Directory({k.replace("_", "-"): v for k, v in entries.items() if v is not None})


def _other(m: InstanceMetadata, o: InterfaceMetadata) -> Directory:
    return _dir(
        device_number=str(o.device_number),
        interface_id=o.interface_id,
        local_ipv4s="\n".join(o.local_ipv4s),
        mac=o.mac,
        owner_id=m.account_id,
        security_group_ids="\n".join(o.security_group_ids) or None,
        security_groups="\n".join(o.security_groups),
        subnet_id=o.subnet_id,
        subnet_ipv4_cidr_block=o.subnet_cidr_block,
        vpc_id=m.vpc_id or None,
        vpc_ipv4_cidr_block=m.vpc_cidr_blocks[0] if m.vpc_cidr_blocks else None,
        vpc_ipv4_cidr_blocks="\n".join(m.vpc_cidr_blocks) or None,
    )


def meta_data(m: InstanceMetadata) -> Directory:
    keys = Directory(
        {str(i): _dir(openssh_key=key) for i, (_name, key) in enumerate(m.public_keys)},
        listing=tuple(f"{i}={name}" for i, (name, _key) in enumerate(m.public_keys)),
    )
    interface = _dir(
        device_number="0",
        interface_id=m.interface_id or None,
        local_hostname=m.local_name,
        local_ipv4s="\n".join((m.local_ipv4, *m.secondary_ipv4s)),
        mac=m.mac,
        owner_id=m.account_id,
        public_hostname=m.public_name or None,
        public_ipv4s=m.public_ipv4,
        security_group_ids="\n".join(m.security_group_ids) or None,
        security_groups="\n".join(m.security_groups),
        subnet_id=m.subnet_id or None,
        subnet_ipv4_cidr_block=m.subnet_cidr_block or None,
        vpc_id=m.vpc_id or None,
        vpc_ipv4_cidr_block=m.vpc_cidr_blocks[0] if m.vpc_cidr_blocks else None,
        vpc_ipv4_cidr_blocks="\n".join(m.vpc_cidr_blocks) or None,
    )
    return _dir(
        ami_id=m.ami_id,
        ami_launch_index=str(m.ami_launch_index),
        ami_manifest_path=m.ami_manifest_path,
        block_device_mapping=Directory(dict(m.block_device_mapping)),
        hostname=m.hostname or m.local_name,
        iam=iam_directory(m.iam) if m.iam else None,
        instance_action="none",
        instance_id=m.instance_id,
        instance_life_cycle="on-demand",
        instance_type=m.instance_type,
        kernel_id=m.kernel_id,
        local_hostname=m.local_name,
        local_ipv4=m.local_ipv4,
        mac=m.mac,
        network=_dir(
            interfaces=_dir(
                macs=Directory(
                    {m.mac: interface} | {o.mac: _other(m, o) for o in m.other_interfaces}
                )
            )
        ),
        placement=_dir(availability_zone=m.availability_zone, region=m.region),
        public_hostname=m.public_name or None,
        public_ipv4=m.public_ipv4,
        public_keys=keys if m.public_keys else None,
        ramdisk_id=m.ramdisk_id,
        reservation_id=m.reservation_id,
        security_groups="\n".join(m.security_groups),
        services=_dir(domain="amazonaws.com", partition="aws"),
    )


def version_tree(m: InstanceMetadata, views: Sequence[str] = ()) -> Directory:
    """``/<version>/``: meta-data, user-data (when there is some) and dynamic data.

    ``views``: the identity document's signed views served beside it (none when the node
    has no way to have it signed).
    """
    document = identity_document(m)
    identity: dict[str, Entry] = {"document": document}
    identity |= {name: SignedView(name, document) for name in views}
    return _dir(
        dynamic=_dir(instance_identity=Directory(dict(sorted(identity.items())))),
        meta_data=meta_data(m),
        user_data=m.user_data,
    )


def resolve(tree: Directory, path: str) -> Entry | None:
    """The node at ``path`` (``a/b/c``, with or without a trailing slash), or None."""
    node: Entry = tree
    parts = [p for p in path.split("/") if p]
    for part in parts:
        if not isinstance(node, Directory) or part not in node.entries:
            return None
        node = node.entries[part]
    if path.endswith("/") and parts and not isinstance(node, Directory):
        return None
    return node
