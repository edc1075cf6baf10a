"""CreateKeyPair, ImportKeyPair, DescribeKeyPairs, DeleteKeyPair."""

from __future__ import annotations

from typing import Any

from karri.api.ec2.dispatch import Ec2Context, action
from karri.api.ec2.tagging import specified_tags
from karri.cloud.keypairs import KeyPairView


def tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def key_pair_info(view: KeyPairView, *, public_key: bool = False) -> dict[str, Any]:
    key = view.key
    info = {
        "KeyPairId": key.id,
        "KeyName": key.name,
        "KeyFingerprint": key.fingerprint,
        "KeyType": key.key_type,
        "CreateTime": key.created_at,
        "Tags": tag_list(view.tags),
    }
    if public_key:
        info["PublicKey"] = f"{key.public_key} {key.name}"
    return info


@action("CreateKeyPair")
def create_key_pair(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    view, material = ctx.cloud.keypairs.create(
        ctx.account_id,
        params.get("KeyName"),
        params.get("KeyType", "rsa"),
        params.get("KeyFormat", "pem"),
        specified_tags(params.get("TagSpecifications"), "key-pair"),
    )
    return {
        "KeyPairId": view.key.id,
        "KeyName": view.key.name,
        "KeyFingerprint": view.key.fingerprint,
        "KeyMaterial": material,
        "Tags": tag_list(view.tags),
    }


@action("ImportKeyPair")
def import_key_pair(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    view = ctx.cloud.keypairs.import_(
        ctx.account_id,
        params.get("KeyName"),
        params.get("PublicKeyMaterial"),
        specified_tags(params.get("TagSpecifications"), "key-pair"),
    )
    return {
        "KeyPairId": view.key.id,
        "KeyName": view.key.name,
        "KeyFingerprint": view.key.fingerprint,
        "Tags": tag_list(view.tags),
    }


@action("DescribeKeyPairs", read_only=True)
def describe_key_pairs(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    views = ctx.cloud.keypairs.describe(
        ctx.account_id, params.get("KeyNames"), params.get("KeyPairIds"), params.get("Filters")
    )
    include = bool(params.get("IncludePublicKey"))
    return {"KeyPairs": [key_pair_info(v, public_key=include) for v in views]}


@action("DeleteKeyPair")
def delete_key_pair(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    deleted = ctx.cloud.keypairs.delete(
        ctx.account_id, params.get("KeyName"), params.get("KeyPairId")
    )
    return {"Return": True, "KeyPairId": deleted} if deleted else {"Return": True}
