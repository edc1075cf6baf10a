"""RegisterImage, DescribeImages, DeregisterImage, the image attributes, ImportImage and its
tasks, and Eucalyptus's DescribeServiceCertificates."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any
from xml.sax.saxutils import escape

from karri.api.ec2.actions.keypairs import tag_list
from karri.api.ec2.devices import mappings_info, requested_mappings
from karri.api.ec2.dispatch import Ec2Context, action, eucalyptus_action
from karri.api.ec2.members import request_of
from karri.api.ec2.permissions import grantee_info, permission_modification
from karri.api.ec2.render import RawXml
from karri.api.ec2.tagging import specified_tags
from karri.cloud.images.imports import ROOT_DEVICE
from karri.cloud.images.models import ImportTask
from karri.cloud.images.requests import (
    DiskContainer,
    ImportImageRequest,
    ModifyImageRequest,
    RegisterRequest,
)
from karri.cloud.images.views import ImageView, state_reason
from karri.cloud.permissions import PUBLIC
from karri.errors import CloudError, invalid_value, missing_parameter
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
        "BlockDeviceMappings": mappings_info(view.block_device_mappings),
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
    request = request_of(
        RegisterRequest,
        params,
        block_device_mappings=requested_mappings(params.get("BlockDeviceMappings")),
        tags=specified_tags(params.get("TagSpecifications"), "image"),
    )
    return {"ImageId": ctx.cloud.images.register(ctx.account_id, request)}


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
    answer = _IMAGE_ATTRIBUTES.get(attribute)
    if answer is None:  # checked before the image, as EC2 does (and with its code)
        raise CloudError("InvalidRequest", "The request received was invalid.")
    view = ctx.cloud.images.attribute(ctx.account_id, image_id, attribute)
    return {"ImageId": view.image.id, **answer(view)}


def _value(value: Any) -> dict[str, Any]:
    """An ``AttributeValue``: empty when the image has none."""
    return {"Value": value} if value else {}


def _launch_permissions(view: ImageView) -> list[dict[str, str]]:
    public = [grantee_info(PUBLIC)] if view.image.is_public else []
    return public + [grantee_info(a) for a in sorted(view.shared_with)]


_IMAGE_ATTRIBUTES: dict[str, Callable[[ImageView], dict[str, Any]]] = {
    "launchPermission": lambda v: {"LaunchPermissions": _launch_permissions(v)},
    "description": lambda v: {"Description": _value(v.image.description)},
    "kernel": lambda v: {"KernelId": _value(v.image.kernel_id)},
    "ramdisk": lambda v: {"RamdiskId": _value(v.image.ramdisk_id)},
    "blockDeviceMapping": lambda v: {"BlockDeviceMappings": mappings_info(v.block_device_mappings)},
    "productCodes": lambda _v: {"ProductCodes": []},
    "sriovNetSupport": lambda _v: {"SriovNetSupport": {}},
}


@action("ModifyImageAttribute")
def modify_image_attribute(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    request = request_of(
        ModifyImageRequest,
        params,
        description=(params.get("Description") or {}).get("Value"),
        launch_permission=permission_modification(params, "LaunchPermission", "UserGroups"),
    )
    ctx.cloud.images.modify(ctx.account_id, request)
    return {}


@action("ResetImageAttribute")
def reset_image_attribute(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.cloud.images.reset(ctx.account_id, params.get("ImageId"), params.get("Attribute"))
    return {}


def import_task_info(task: ImportTask) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "SnapshotId": task.snapshot_id,
        "DiskImageSize": float(task.disk_size),
        "Format": task.disk_format.upper(),
        "DeviceName": ROOT_DEVICE,
        "Status": task.status,
        "UserBucket": {"S3Bucket": task.source_bucket, "S3Key": task.source_key},
        "Url": f"s3://{task.source_bucket}/{task.source_key}",
    }
    info: dict[str, Any] = {
        "ImportTaskId": task.id,
        "Architecture": task.architecture,
        "Description": task.description,
        "ImageId": task.image_id,
        "LicenseType": task.license_type,
        "Platform": task.platform,
        "Status": task.status,
        "StatusMessage": task.status_message or None,
        "SnapshotDetails": [detail],
        "Encrypted": False,
        "BootMode": "legacy-bios",
    }
    if task.status == "active":
        info["Progress"] = str(task.progress)
    return info


def _disk_container(container: dict[str, Any]) -> DiskContainer:
    """A disk container; its ``UserBucket``'s ``S3Bucket`` and ``S3Key`` are its own."""
    return request_of(DiskContainer, {**container, **(container.get("UserBucket") or {})})


@action("ImportImage")
def import_image(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    request = request_of(
        ImportImageRequest,
        params,
        disk_containers=tuple(_disk_container(c) for c in params.get("DiskContainers") or ()),
    )
    info = import_task_info(ctx.cloud.images.imports.start(ctx.account_id, request))
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
        "ImportImageTasks": [import_task_info(t) for t in page.items],
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
