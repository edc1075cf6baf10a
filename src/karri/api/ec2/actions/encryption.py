"""EBS encryption by default and the account's default key (``cloud/volumes/keys.py``).

GetEbsDefaultKmsKeyId answers the ``alias/aws/ebs`` ARN, as AWS does until the default
is changed; ModifyEbsDefaultKmsKeyId accepts only names of that key (there are no
customer keys) and answers its key ARN.
"""

from __future__ import annotations

from typing import Any

from karri.api.ec2.dispatch import Ec2Context, action
from karri.cloud.volumes.keys import ALIAS
from karri.errors import missing_parameter


def _by_default(ctx: Ec2Context, value: bool | None = None) -> dict[str, Any]:
    keys = ctx.cloud.ebs.keys
    enabled = (
        keys.by_default(ctx.account_id)
        if value is None
        else keys.set_by_default(ctx.account_id, value)
    )
    return {"EbsEncryptionByDefault": enabled, "SseType": "sse-ebs" if enabled else "none"}


@action("GetEbsEncryptionByDefault", inline=True)
def get_ebs_encryption_by_default(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    return _by_default(ctx)


@action("EnableEbsEncryptionByDefault")
def enable_ebs_encryption_by_default(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    return {"EbsEncryptionByDefault": _by_default(ctx, True)["EbsEncryptionByDefault"]}


@action("DisableEbsEncryptionByDefault")
def disable_ebs_encryption_by_default(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    return {"EbsEncryptionByDefault": _by_default(ctx, False)["EbsEncryptionByDefault"]}


def _alias_arn(ctx: Ec2Context) -> dict[str, Any]:
    region = ctx.cloud.settings.region
    return {"KmsKeyId": f"arn:aws:kms:{region}:{ctx.account_id}:{ALIAS}"}


@action("GetEbsDefaultKmsKeyId", inline=True)
def get_ebs_default_kms_key_id(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    return _alias_arn(ctx)


@action("ModifyEbsDefaultKmsKeyId")
def modify_ebs_default_kms_key_id(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    name = params.get("KmsKeyId")
    if not name:
        raise missing_parameter("KmsKeyId")
    return {"KmsKeyId": ctx.cloud.ebs.keys.resolve(ctx.account_id, name)}


@action("ResetEbsDefaultKmsKeyId")
def reset_ebs_default_kms_key_id(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    return _alias_arn(ctx)
