"""CreateImage: an EMI from an EBS-backed instance's volumes."""

from __future__ import annotations

from typing import Any

from karri.api.ec2.dispatch import Ec2Context, action


@action("CreateImage")
def create_image(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    return {"ImageId": ctx.cloud.ebs.capture.create(ctx.account_id, params)}
