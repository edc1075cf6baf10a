"""RegisterImage, DescribeImages, DeregisterImage, the image attributes, ImportImage and its
tasks, and Eucalyptus's DescribeServiceCertificates."""

from __future__ import annotations

import base64
from typing import Any
from xml.sax.saxutils import escape

from karri.api.ec2.actions.keypairs import tag_list
from karri.api.ec2.dispatch import Ec2Context, action, eucalyptus_action
from karri.api.ec2.render import RawXml
from karri.cloud.images.views import ImageView, state_reason
from karri.errors import invalid_value, missing_parameter
from karri.timestamps import iso8601

EMPYREAN_XMLNS = "http://www.eucalyptus.com/ns/empyrean/2012-10-01/"


def image_info(view: ImageView) -> dict[str, Any]:
    image = view.image
    info: dict[str, Any] = {
        "ImageId": image.id,
        "ImageLocation": image.location,
        "State": image.state,
        "OwnerId": image.account_id,
        "CreationDate": iso8601(image.created_at),
        "Public": image.is_public,
        "Architecture": image.architecture,
        "ImageType": image.image_type,
        "KernelId": image.kernel_id,
        "RamdiskId": image.ramdisk_id,
        "Name": image.name,
        "Description": image.description,
        "RootDeviceType": image.root_device_type,
        "RootDeviceName": image.root_device_name,
        "BlockDeviceMappings": image.block_device_mappings,
        "VirtualizationType": image.virtualization_type,
        "Hypervisor": "kvm",
        "PlatformDetails": "Linux/UNIX",
        "UsageOperation": "RunInstances",
        "ProductCodes": [],
        "Tags": tag_list(view.tags),
    }
    reason = state_reason(image)
    if reason:
        info["StateReason"] = {"Code": reason[0], "Message": reason[1]}
    return info


@action("RegisterImage")
def register_image(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    return {"ImageId": ctx.cloud.images.register(ctx.account_id, params)}


@action("DescribeImages")
def describe_images(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    owners = params.get("Owners") or []
    if owners and all(o in ("amazon", "aws-marketplace", "microsoft") for o in owners):
        return {"Images": []}
    page = ctx.cloud.images.describe(
        ctx.account_id,
        params.get("ImageIds"),
        owners,
        params.get("ExecutableUsers"),
        params.get("Filters"),
        params.get("MaxResults"),
        params.get("NextToken"),
    )
    return {"Images": [image_info(v) for v in page.items], "NextToken": page.next_token}


@action("DeregisterImage")
def deregister_image(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.cloud.images.deregister(ctx.account_id, params.get("ImageId"))
    return {"Return": True}


@action("DescribeImageAttribute")
def describe_image_attribute(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    attribute, image_id = params.get("Attribute"), params.get("ImageId")
    if not attribute:
        raise missing_parameter("Attribute")
    if not image_id:
        raise missing_parameter("ImageId")
    return ctx.cloud.images.attribute(ctx.account_id, image_id, attribute)


@action("ModifyImageAttribute")
def modify_image_attribute(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.cloud.images.modify(ctx.account_id, params.get("ImageId"), params)
    return {}


@action("ResetImageAttribute")
def reset_image_attribute(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.cloud.images.reset(ctx.account_id, params.get("ImageId"), params.get("Attribute"))
    return {}


@action("ImportImage")
def import_image(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    task = ctx.cloud.images.imports.start(ctx.account_id, params)
    info = ctx.cloud.images.imports.task_info(task)
    info.pop("BootMode", None)
    return info


@action("DescribeImportImageTasks")
def describe_import_image_tasks(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    imports = ctx.cloud.images.imports
    page = imports.describe(
        ctx.account_id,
        params.get("ImportTaskIds"),
        params.get("Filters"),
        params.get("MaxResults"),
        params.get("NextToken"),
    )
    return {
        "ImportImageTasks": [imports.task_info(t) for t in page.items],
        "NextToken": page.next_token,
    }


@action("CancelImportTask")
def cancel_import_task(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    task_id = params.get("ImportTaskId")
    if not task_id:
        raise missing_parameter("ImportTaskId")
    previous = ctx.cloud.images.imports.cancel(ctx.account_id, task_id)
    return {"ImportTaskId": task_id, "PreviousState": previous, "State": "deleting"}


@eucalyptus_action("DescribeServiceCertificates")
def describe_service_certificates(ctx: Ec2Context, params: dict[str, str]) -> RawXml:
    """The cloud's certificate for ``image-bundling`` (euca2ools fetches its --ec2cert)."""
    cert = ctx.cloud.certificate
    fmt = (params.get("Format") or "pem").lower()
    digest = (params.get("FingerprintDigest") or "SHA-256").upper()
    if fmt not in ("pem", "der"):
        raise invalid_value(f"Invalid format: {fmt}")
    if digest not in ("SHA-1", "SHA-256"):
        raise invalid_value(f"Invalid fingerprint digest: {digest}")
    if not _filters_allow(
        params, {"certificate-usage": "image-bundling", "service-type": "compute"}
    ):
        return RawXml(
            "DescribeServiceCertificatesResponse",
            EMPYREAN_XMLNS,
            "<serviceCertificates/>",
        )
    body = cert.pem if fmt == "pem" else base64.b64encode(cert.der).decode()
    item = (
        "<item><serviceType>compute</serviceType>"
        "<certificateUsage>image-bundling</certificateUsage>"
        f"<certificateFormat>{fmt}</certificateFormat>"
        f"<certificate>{escape(body)}</certificate>"
        f"<certificateFingerprint>{cert.fingerprint(digest)}</certificateFingerprint>"
        f"<certificateFingerprintDigest>{digest}</certificateFingerprintDigest></item>"
    )
    return RawXml(
        "DescribeServiceCertificatesResponse",
        EMPYREAN_XMLNS,
        f"<serviceCertificates>{item}</serviceCertificates>",
    )


def _filters_allow(params: dict[str, str], values: dict[str, str]) -> bool:
    """``Filter.N.Name`` / ``Filter.N.Value.M`` against the one certificate karri has."""
    index = 1
    while f"Filter.{index}.Name" in params:
        name = params[f"Filter.{index}.Name"]
        wanted = [v for k, v in params.items() if k.startswith(f"Filter.{index}.Value.")]
        if name in values and wanted and values[name] not in wanted:
            return False
        index += 1
    return True
