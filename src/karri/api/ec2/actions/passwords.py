"""GetPasswordData."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from karri.api.ec2.dispatch import Ec2Context, action
from karri.cloud.instances.password import password_data
from karri.errors import missing_parameter


@action("GetPasswordData")
def get_password_data(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    instance_id = params.get("InstanceId")
    if not instance_id:
        raise missing_parameter("InstanceId")
    console = ctx.cloud.instances.console_output(ctx.account_id, instance_id)
    return {
        "InstanceId": instance_id,
        "Timestamp": datetime.now(UTC),
        "PasswordData": password_data(console),
    }
