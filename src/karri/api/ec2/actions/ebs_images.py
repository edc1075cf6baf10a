"""CreateImage: an EMI from an EBS-backed instance's volumes."""

from __future__ import annotations

from typing import Any

from karri.api.ec2.dispatch import Ec2Context, action
from karri.api.ec2.members import request_of
from karri.api.ec2.tagging import specified_tags
from karri.cloud.volumes.requests import CreateImageRequest


@action("CreateImage")
def create_image(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    specs = params.get("TagSpecifications") or ()

    def tags(kind: str) -> dict[str, str]:
        return specified_tags([s for s in specs if s.get("ResourceType") == kind], kind)

    request = request_of(
        CreateImageRequest,
        params,
        image_tags=tags("image"),
        snapshot_tags=tags("snapshot"),
    )
    return {"ImageId": ctx.cloud.ebs.capture.create(ctx.account_id, request)}
