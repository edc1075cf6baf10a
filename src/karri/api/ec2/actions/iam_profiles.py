"""IAM instance profiles on instances: AssociateIamInstanceProfile,
ReplaceIamInstanceProfileAssociation, DisassociateIamInstanceProfile,
DescribeIamInstanceProfileAssociations."""

from __future__ import annotations

from typing import Any

from karri.api.ec2.actions.instance_requests import profile_ref
from karri.api.ec2.dispatch import Ec2Context, action
from karri.cloud.instances.profiles import AssociationView


def association_info(view: AssociationView) -> dict[str, Any]:
    return {
        "AssociationId": view.association_id,
        "InstanceId": view.instance_id,
        "IamInstanceProfile": {"Arn": view.profile.arn, "Id": view.profile.id},
        "State": view.state,
        "Timestamp": view.created,
    }


def _profile(params: dict[str, Any]):
    spec = params.get("IamInstanceProfile")
    return profile_ref(spec) if spec else None


@action("AssociateIamInstanceProfile")
def associate_iam_instance_profile(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    view = ctx.cloud.profiles.associate(ctx.account_id, params.get("InstanceId"), _profile(params))
    return {"IamInstanceProfileAssociation": association_info(view)}


@action("ReplaceIamInstanceProfileAssociation")
def replace_iam_instance_profile_association(
    ctx: Ec2Context, params: dict[str, Any]
) -> dict[str, Any]:
    view = ctx.cloud.profiles.replace(ctx.account_id, params.get("AssociationId"), _profile(params))
    return {"IamInstanceProfileAssociation": association_info(view)}


@action("DisassociateIamInstanceProfile")
def disassociate_iam_instance_profile(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    view = ctx.cloud.profiles.disassociate(ctx.account_id, params.get("AssociationId"))
    return {"IamInstanceProfileAssociation": association_info(view)}


@action("DescribeIamInstanceProfileAssociations", read_only=True)
def describe_iam_instance_profile_associations(
    ctx: Ec2Context, params: dict[str, Any]
) -> dict[str, Any]:
    views, token = ctx.cloud.profiles.describe(
        ctx.account_id,
        params.get("AssociationIds"),
        params.get("Filters"),
        params.get("MaxResults"),
        params.get("NextToken"),
    )
    out: dict[str, Any] = {"IamInstanceProfileAssociations": [association_info(v) for v in views]}
    if token:
        out["NextToken"] = token
    return out
