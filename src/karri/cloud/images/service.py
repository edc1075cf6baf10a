"""The image calls: RegisterImage, DescribeImages, DeregisterImage, the image attributes,
and what a launch needs to know about an image."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from karri.cloud.certs import CloudCertificate
from karri.cloud.filters import Page, paginate
from karri.cloud.images import defaults, registration
from karri.cloud.images.bundle import BundleError
from karri.cloud.images.imports import Imports, ImportSnapshots
from karri.cloud.images.manifest import ManifestError
from karri.cloud.images.models import Image, LaunchPermission
from karri.cloud.images.pipeline import Pipeline
from karri.cloud.images.requests import ModifyImageRequest, RegisterRequest
from karri.cloud.images.store import IMAGES_BUCKET, ImageStore, ObjectUrls, stored_key
from karri.cloud.images.views import (
    FILTERS,
    PREFIXES,
    TYPES,
    ImageView,
    LaunchImage,
    may_launch,
)
from karri.cloud.permissions import PUBLIC, GranteeErrors, permission_changes
from karri.cloud.tags import Taggable, Tags
from karri.cloud.volumes.mappings import (
    BlockDeviceMapping,
    from_records,
    snapshot_ids,
    to_records,
)
from karri.config import ADMIN_ACCOUNT
from karri.db.base import utcnow
from karri.db.engine import Database
from karri.errors import CloudError, invalid_combination, invalid_value, missing_parameter
from karri.ids import ID_PATTERN, new_id
from karri.node import ImageRef
from karri.walrus import Walrus

log = logging.getLogger("karri.images")

DEFAULT_MAX_IMAGE_BYTES = 10 * 1024**3
NAME = re.compile(r"^[A-Za-z0-9()\[\] ./\-'@_]{3,128}$")
MAX_DESCRIPTION = 255
# The attributes DescribeImageAttribute shows the owner only (the others, every account
# that may launch the image)
OWNER_ONLY_ATTRIBUTES = frozenset({"launchPermission"})


def not_found(image_id: str) -> CloudError:
    return CloudError("InvalidAMIID.NotFound", f"The image id '[{image_id}]' does not exist")


def check_image_id(image_id: str) -> str:
    match = ID_PATTERN.match(image_id or "")
    if not match or match.group(1) not in TYPES:
        raise CloudError("InvalidAMIID.Malformed", f'Invalid id: "{image_id}"')
    return image_id


def attribute_error(message: str) -> CloudError:
    return CloudError("InvalidAMIAttributeItemValue", message)


LAUNCH_GRANTEE_ERRORS = GranteeErrors(
    group=lambda group: attribute_error(f"Invalid group '{group}': only 'all' is supported"),
    user=lambda user: attribute_error(f"Invalid user id '{user}': an account id has 12 digits"),
)


class ImageMappings(Protocol):
    """EBS (``cloud.ebs.block_devices``): checks the mappings of an EBS-backed image."""

    def for_image(
        self,
        account_id: str,
        mappings: Sequence[BlockDeviceMapping],
        root_device: str,
        *,
        pending: bool = False,
    ) -> list[BlockDeviceMapping]: ...


class Images:
    def __init__(
        self,
        db: Database,
        tags: Tags,
        walrus: Walrus,
        certificate: CloudCertificate,
        admin_account: Callable[[], str],
        work_dir: Path,
        max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
        *,
        block_devices: ImageMappings,
        snapshots: ImportSnapshots,
        urls: ObjectUrls | None = None,
    ) -> None:
        """``urls``: presigned URLs of the stored images, for nodes (``image_ref``)."""
        self.db = db
        self.tags = tags
        self.walrus = walrus
        self.certificate = certificate
        self.store = ImageStore(walrus)
        self.urls = urls
        self.pipeline = Pipeline(waiting=self._waiting)
        self.max_image_bytes = max_image_bytes
        self.block_devices = block_devices
        # ImportImage registers through this service, which tells it when an image settles
        self.imports = Imports(
            db, walrus, self, snapshots, self.pipeline, work_dir, max_image_bytes
        )
        self._admin_account = admin_account
        # Told each deregistered image id: the node's image cache, once the node is up
        self.deregistered_hooks: list[Callable[[str], None]] = []
        for kind, prefix in PREFIXES.items():
            tags.register(Taggable(prefix, "image", "InvalidAMIID.NotFound", kind, self._taggable))

    def _taggable(self, session: Session, account_id: str, ids: list[str]) -> set[str]:
        """The images an account may tag: its own and those it may launch (as on AWS, its
        tags on a shared image are its own, unseen by the owner)."""
        images = session.scalars(
            select(Image).where(Image.id.in_(ids), Image.state != "deregistered")
        ).all()
        return {
            v.image.id
            for v in self._views(session, images, account_id)
            if v.image.account_id == account_id
            or (v.launchable_by(account_id) and v.image.state == "available")
        }

    # -- registering ------------------------------------------------------------------

    def register(self, account_id: str, request: RegisterRequest) -> str:
        """RegisterImage of a bundle: checked now, unpacked in the background."""
        location = request.image_location
        if not location:
            if request.block_device_mappings:
                return self._register_ebs(account_id, request)
            raise missing_parameter("ImageLocation")
        name = request.name
        checked = registration.check_bundle(
            self.walrus,
            self.certificate,
            account_id,
            location,
            max_bytes=self.max_image_bytes,
            architecture=request.architecture,
        )
        manifest = checked.manifest
        name = name or manifest.name.removesuffix(".img")
        kind = manifest.image_type
        if kind != "machine" and account_id != self._admin_account():
            raise CloudError(
                "UnauthorizedOperation",
                f"Only the cloud administrator ({ADMIN_ACCOUNT}) may register {kind} images",
                403,
            )
        kernel_id = request.kernel_id or manifest.kernel_id
        ramdisk_id = request.ramdisk_id or manifest.ramdisk_id
        tags = request.tags
        with self.db.write_session() as session:
            self._check_name(session, account_id, name)
            if kind == "machine":
                kernel_id = self._boot_part(session, account_id, kernel_id, "kernel")
                ramdisk_id = self._boot_part(session, account_id, ramdisk_id, "ramdisk")
            image = Image(
                id=new_id(PREFIXES[kind], lambda i: session.get(Image, i) is not None),
                account_id=account_id,
                name=name,
                description=check_description(request.description),
                image_type=kind,
                architecture=manifest.architecture,
                kernel_id=kernel_id if kind == "machine" else None,
                ramdisk_id=ramdisk_id if kind == "machine" else None,
                root_device_type="instance-store",
                root_device_name=request.root_device_name or "/dev/sda1",
                virtualization_type=request.virtualization_type
                or ("paravirtual" if kernel_id else "hvm"),
                block_device_mappings=to_records(_mappings(manifest.block_device_mappings)),
                state="pending",
                is_public=False,
                source="bundle",
                location=f"{checked.bucket}/{checked.key}",
                size=manifest.size,
            )
            session.add(image)
            session.flush()
            if tags:
                self.tags.put(session, account_id, [image.id], dict(tags))
            image_id = image.id
        self._queue_unpack(image_id)
        return image_id

    def _register_ebs(
        self,
        account_id: str,
        request: RegisterRequest,
        *,
        pending: bool = False,
        image_id: str | None = None,
    ) -> str:
        """RegisterImage of an EBS-backed EMI: its root device is a volume made from a
        snapshot (a block device mapping with a snapshot id); available at once, or
        (CreateImage, ``pending``) once its snapshots are complete."""
        name = request.name
        if not name:
            raise missing_parameter("Name")
        root_device = request.root_device_name
        if not root_device:
            raise missing_parameter("RootDeviceName")
        architecture = request.architecture or "x86_64"
        if architecture not in ("i386", "x86_64"):
            raise invalid_value(f"Value ({architecture}) for parameter architecture is invalid.")
        mappings = self.block_devices.for_image(
            account_id, request.block_device_mappings, root_device, pending=pending
        )
        root = next(m.ebs for m in mappings if m.device_name == root_device)
        assert root is not None and root.volume_size is not None  # for_image checked it
        tags = request.tags
        with self.db.write_session() as session:
            self._check_name(session, account_id, name)
            kernel_id = self._boot_part(session, account_id, request.kernel_id, "kernel")
            ramdisk_id = self._boot_part(session, account_id, request.ramdisk_id, "ramdisk")
            image = Image(
                id=image_id
                or new_id(PREFIXES["machine"], lambda i: session.get(Image, i) is not None),
                account_id=account_id,
                name=name,
                description=check_description(request.description),
                image_type="machine",
                architecture=architecture,
                kernel_id=kernel_id,
                ramdisk_id=ramdisk_id,
                root_device_type="ebs",
                root_device_name=root_device,
                virtualization_type=request.virtualization_type
                or ("paravirtual" if kernel_id else "hvm"),
                block_device_mappings=to_records(mappings),
                state="pending" if pending else "available",
                is_public=False,
                source="ebs",
                location="",
                size=root.volume_size * 1024**3,
            )
            session.add(image)
            session.flush()
            if tags:
                self.tags.put(session, account_id, [image.id], dict(tags))
            return image.id

    def register_ebs_pending(
        self, account_id: str, request: RegisterRequest, image_id: str | None = None
    ) -> str:
        """CreateImage, ImportImage: an EBS-backed image whose snapshots are still being
        taken (CreateImage chooses its id first, to name it in the snapshots)."""
        return self._register_ebs(account_id, request, pending=True, image_id=image_id)

    def pending_ebs(self) -> dict[str, set[str]]:
        """Pending EBS-backed images and the snapshots they wait for."""
        with self.db.session() as session:
            rows = session.execute(
                select(Image.id, Image.block_device_mappings).where(
                    Image.root_device_type == "ebs", Image.state == "pending"
                )
            )
            return {image_id: snapshot_ids(from_records(records)) for image_id, records in rows}

    def settle_ebs(self, image_id: str, state: str, reason: str | None = None) -> None:
        """A pending EBS-backed image becomes ``available`` or ``failed``."""
        with self.db.write_session() as session:
            image = session.get(Image, image_id)
            if image is None or image.state != "pending":
                return
            image.state, image.state_reason, image.updated_at = state, reason, utcnow()
        log.info("image %s is %s%s", image_id, state, f" ({reason})" if reason else "")
        self.imports.image_settled(image_id)

    def named(self, account_id: str, name: str) -> str | None:
        """The account's registered image of that name, if any."""
        with self.db.session() as session:
            return _named(session, account_id, name)

    def check_name(self, account_id: str, name: str) -> None:
        """That ``name`` is an AMI name the account may register now (CreateImage asks
        before it stops the instance)."""
        with self.db.session() as session:
            self._check_name(session, account_id, name)

    def _check_name(self, session: Session, account_id: str, name: str) -> None:
        if not NAME.match(name):
            raise invalid_value(
                f"AMI names are 3 to 128 characters of letters, digits and ()[] ./-'@_ : '{name}'"
            )
        taken = _named(session, account_id, name)
        if taken:
            raise CloudError(
                "InvalidAMIName.Duplicate", f"AMI name {name} is already in use by AMI {taken}"
            )

    def _boot_part(
        self, session: Session, account_id: str, image_id: str | None, kind: str
    ) -> str | None:
        """A kernel or ramdisk a machine image names: it must exist and be usable."""
        if not image_id or image_id in ("true", "yes"):
            return None
        check_image_id(image_id)
        image = session.get(Image, image_id)
        shared = self._shared(session, [image_id])
        if (
            image is None
            or image.image_type != kind
            or not may_launch(image, account_id, shared.get(image_id, set()))
        ):
            raise CloudError(
                "InvalidAMIID.NotFound", f"The {kind} image id '[{image_id}]' does not exist"
            )
        return image_id

    def _waiting(self) -> list[tuple[str, Callable[[], None]]]:
        """The pipeline's scan: bundles to unpack and imports not begun (work another
        front end took; ``resume`` restarts what this one's own start interrupted)."""
        with self.db.session() as session:
            pending = session.scalars(
                select(Image.id).where(Image.state == "pending", Image.source == "bundle")
            ).all()
        waiting = [(i, lambda i=i: self._unpack(i)) for i in pending]
        return waiting + self.imports.waiting()

    def _queue_unpack(self, image_id: str) -> None:
        self.pipeline.submit(image_id, lambda: self._unpack(image_id))

    def _unpack(self, image_id: str) -> None:
        with self.db.session() as session:
            image = session.get(Image, image_id)
            if image is None or image.state != "pending":
                return
            location = image.location
        try:
            size = registration.unpack(
                self.walrus,
                self.certificate,
                self.store,
                image_id,
                location,
                self.max_image_bytes,
            )
        except (BundleError, ManifestError) as error:
            self._finish(image_id, "failed", f"Client.InvalidManifest: {error}")
        except Exception as error:
            log.exception("registering %s failed", image_id)
            self._finish(image_id, "failed", f"Server.InternalError: {error}")
        else:
            self._finish(image_id, "available", None, size=size)

    def _finish(
        self, image_id: str, state: str, reason: str | None, *, size: int | None = None
    ) -> None:
        with self.db.write_session() as session:
            image = session.get(Image, image_id)
            if image is None:
                return
            deregistered = image.state != "pending"  # meanwhile
            if not deregistered:
                image.state = state
                image.state_reason = reason
                image.updated_at = utcnow()
                if size is not None:
                    image.size = size
                if state == "available":
                    image.stored_bucket = IMAGES_BUCKET
                    image.stored_key = stored_key(image_id)
        if deregistered:  # after the commit: Walrus writes under its own write lock
            self.store.delete(image_id)
            return
        log.info("image %s is %s%s", image_id, state, f" ({reason})" if reason else "")

    def start(self, admin_account_id: str, *, default_set: bool, scratch: Path) -> None:
        """On `karri up`, after Walrus's start-up sweep (the workers write into Walrus):
        resume interrupted work, then (first start) the default set."""
        self.store.ensure_bucket()  # its name is reserved; the bucket is there from the start
        self.pipeline.start()
        self.resume()
        if default_set:
            self.pipeline.submit(
                "default-images", lambda: defaults.install(self, admin_account_id, scratch)
            )

    def resume(self) -> None:
        """Queue the unpacking and the imports that a stop interrupted."""
        self.imports.resume()
        with self.db.session() as session:
            pending = list(
                session.scalars(
                    select(Image.id).where(Image.state == "pending", Image.source == "bundle")
                )
            )
        for image_id in pending:
            self._queue_unpack(image_id)

    # -- describing ---------------------------------------------------------------------

    def _shared(self, session: Session, ids: Sequence[str] | None = None) -> dict[str, set[str]]:
        query = select(LaunchPermission.image_id, LaunchPermission.account_id)
        if ids is not None:
            query = query.where(LaunchPermission.image_id.in_(list(ids)))
        shared: dict[str, set[str]] = {}
        for image_id, account in session.execute(query):
            shared.setdefault(image_id, set()).add(account)
        return shared

    def _views(self, session: Session, images: Sequence[Image], viewer: str) -> list[ImageView]:
        """The images as ``viewer`` sees them: with the tags that account put on them."""
        ids = [i.id for i in images]
        shared = self._shared(session, ids)
        tags = self.tags.of(session, ids, viewer)
        return [ImageView(i, tags[i.id], frozenset(shared.get(i.id, ()))) for i in images]

    def _visible(self, session: Session, account_id: str) -> list[ImageView]:
        shared_with_me = select(LaunchPermission.image_id).where(
            LaunchPermission.account_id == account_id
        )
        rows = session.scalars(
            select(Image).where(
                Image.state != "deregistered",
                (Image.account_id == account_id)
                | Image.is_public.is_(True)
                | Image.id.in_(shared_with_me),
            )
        ).all()
        views = self._views(session, rows, account_id)
        # Someone else's image that failed or is still pending is not theirs to see.
        return [
            v for v in views if v.image.account_id == account_id or v.image.state == "available"
        ]

    def describe(
        self,
        account_id: str,
        image_ids: Sequence[str] | None = None,
        owners: Sequence[str] | None = None,
        executable_users: Sequence[str] | None = None,
        filters: Sequence[Mapping[str, Any]] | None = None,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> Page[ImageView]:
        for image_id in image_ids or ():
            check_image_id(image_id)
        with self.db.session() as session:
            views = self._visible(session, account_id)
        if image_ids:
            known = {v.image.id for v in views}
            missing = [i for i in image_ids if i not in known]
            if missing:
                raise CloudError(
                    "InvalidAMIID.NotFound",
                    f"The image id '[{', '.join(missing)}]' does not exist",
                )
            wanted = set(image_ids)
            views = [v for v in views if v.image.id in wanted]
        if owners:
            ids = {account_id if o == "self" else o for o in owners}
            views = [v for v in views if v.image.account_id in ids]
        if executable_users:
            views = [v for v in views if _executable(v, account_id, executable_users)]
        views = FILTERS.apply(views, filters, lambda v: v.tags)
        return paginate(
            views,
            lambda v: v.image.id,
            max_results,
            next_token,
            kind="images",
            ids_given=bool(image_ids),
        )

    def get(self, account_id: str, image_id: str, *, owner: bool = False) -> ImageView:
        """An image the caller may see (``owner``: that the caller owns)."""
        check_image_id(image_id)
        with self.db.session() as session:
            image = session.get(Image, image_id)
            if image is None or image.state == "deregistered":
                raise not_found(image_id)
            view = self._views(session, [image], account_id)[0]
        if image.account_id != account_id:
            if not view.launchable_by(account_id) or image.state != "available":
                raise not_found(image_id)
            if owner:
                raise CloudError("AuthFailure", f"Not authorized for image:{image_id}", 403)
        return view

    # -- deregistering ------------------------------------------------------------------

    def deregister(self, account_id: str, image_id: str | None) -> None:
        if not image_id:
            raise missing_parameter("ImageId")
        self.get(account_id, image_id, owner=True)
        with self.db.write_session() as session:
            image = session.get(Image, image_id)
            assert image is not None
            was = image.state
            image.state = "deregistered"
            image.updated_at = utcnow()
            self.tags.forget(session, [image_id])
            session.execute(delete(LaunchPermission).where(LaunchPermission.image_id == image_id))
        if was != "pending":  # a pending unpack deletes its own result
            self.store.delete(image_id)
        else:
            self.imports.image_settled(image_id)  # an import waiting for it fails
        for hook in self.deregistered_hooks:
            try:
                hook(image_id)
            except Exception:
                log.exception("deregistration hook failed for %s", image_id)

    # -- attributes -------------------------------------------------------------------

    def attribute(self, account_id: str, image_id: str, attribute: str) -> ImageView:
        """DescribeImageAttribute: the image, if the caller may read ``attribute`` of it
        (the API layer, which knows the attributes, answers it from the image)."""
        return self.get(account_id, image_id, owner=attribute in OWNER_ONLY_ATTRIBUTES)

    def modify(self, account_id: str, request: ModifyImageRequest) -> None:
        image_id = request.image_id
        if not image_id:
            raise missing_parameter("ImageId")
        self.get(account_id, image_id, owner=True)
        attribute = request.attribute
        description = request.description
        permission = request.launch_permission
        if description is not None and (permission.add or permission.remove or permission.user_ids):
            raise invalid_combination("Only one attribute can be modified at a time")
        if attribute == "description" or (attribute is None and description is not None):
            value = check_description(description if description is not None else request.value)
            with self.db.write_session() as session:
                image = session.get(Image, image_id)
                assert image is not None
                image.description = value
            return
        if attribute not in (None, "launchPermission"):
            raise invalid_value(f"Value ({attribute}) for parameter attribute is invalid.")
        changes = permission_changes("LaunchPermission", permission, LAUNCH_GRANTEE_ERRORS)
        with self.db.write_session() as session:
            image = session.get(Image, image_id)
            assert image is not None
            for grantee in sorted(changes.add):
                if grantee == PUBLIC:
                    image.is_public = True
                elif session.get(LaunchPermission, (image_id, grantee)) is None:
                    session.add(LaunchPermission(image_id=image_id, account_id=grantee))
            for grantee in sorted(changes.remove):
                if grantee == PUBLIC:
                    image.is_public = False
                else:
                    session.execute(
                        delete(LaunchPermission).where(
                            LaunchPermission.image_id == image_id,
                            LaunchPermission.account_id == grantee,
                        )
                    )

    def reset(self, account_id: str, image_id: str | None, attribute: str | None) -> None:
        if not image_id:
            raise missing_parameter("ImageId")
        self.get(account_id, image_id, owner=True)
        with self.db.write_session() as session:
            image = session.get(Image, image_id)
            assert image is not None
            if attribute == "launchPermission":
                image.is_public = False
                session.execute(
                    delete(LaunchPermission).where(LaunchPermission.image_id == image_id)
                )
            elif attribute == "description":
                image.description = None
            else:
                raise invalid_value(f"Value ({attribute}) for parameter attribute is invalid.")

    def set_public(self, image_id: str, public: bool = True) -> None:
        with self.db.write_session() as session:
            image = session.get(Image, image_id)
            if image is not None:
                image.is_public = public

    # -- launching ----------------------------------------------------------------------

    def for_launch(
        self, account_id: str, image_id: str, kernel_id: str | None, ramdisk_id: str | None
    ) -> LaunchImage:
        """What RunInstances needs: the image, and its kernel and ramdisk (overridable)."""
        image = self._launchable(account_id, image_id, "machine").image
        kernel = kernel_id or image.kernel_id
        ramdisk = ramdisk_id or image.ramdisk_id
        if kernel:
            self.check_launchable(account_id, kernel, "kernel")
        if ramdisk:
            self.check_launchable(account_id, ramdisk, "ramdisk")
        return LaunchImage(
            image_id=image.id,
            kernel_id=kernel,
            ramdisk_id=ramdisk,
            root_device_type=image.root_device_type,
            root_device_name=image.root_device_name,
            architecture=image.architecture,
            block_device_mappings=from_records(image.block_device_mappings),
        )

    def check_launchable(self, account_id: str, image_id: str, kind: str) -> None:
        """That the account may boot ``image_id`` as a ``kind`` (machine, kernel, ramdisk)
        image: RunInstances, and ModifyInstanceAttribute's kernel and ramdisk."""
        self._launchable(account_id, image_id, kind)

    def _launchable(self, account_id: str, image_id: str, kind: str) -> ImageView:
        view = self.get(account_id, image_id)
        image = view.image
        if image.image_type != kind:
            raise CloudError(
                "InvalidAMIID.NotFound" if kind == "machine" else "InvalidParameterValue",
                f"{image_id} is a {image.image_type} image, not a {kind} image",
            )
        if image.state != "available":
            raise CloudError("InvalidAMIID.Unavailable", f"The image {image_id} is {image.state}")
        return view

    def fetcher(self, image_id: str) -> Callable[[Path], None]:
        """Puts an available image's bytes at a path (the default volumes' snapshots)."""
        return self.store.fetcher(image_id)

    def image_ref(self, image_id: str) -> ImageRef:
        """What a node needs to fetch a stored image and check its bytes (blocking)."""
        if self.urls is None:
            raise RuntimeError("this cloud makes no image URLs (no system key)")
        return self.store.ref(image_id, self.urls)


def snapshot_users(session: Session, snapshot_id: str) -> list[str]:
    """The registered EBS-backed images that use a snapshot (DeleteSnapshot's check)."""
    rows = session.execute(
        select(Image.id, Image.block_device_mappings).where(
            Image.root_device_type == "ebs", Image.state != "deregistered"
        )
    )
    return sorted(
        image_id for image_id, records in rows if snapshot_id in snapshot_ids(from_records(records))
    )


def _named(session: Session, account_id: str, name: str) -> str | None:
    return session.scalar(
        select(Image.id).where(
            Image.account_id == account_id,
            Image.name == name,
            Image.state != "deregistered",
        )
    )


def _executable(view: ImageView, account_id: str, users: Sequence[str]) -> bool:
    for user in users:
        if user == "all" and view.image.is_public:
            return True
        target = account_id if user == "self" else user
        if target in view.shared_with or (user == "self" and view.image.account_id == target):
            return True
    return False


def _mappings(mappings: Mapping[str, str]) -> list[BlockDeviceMapping]:
    """A bundle manifest's mappings (virtual name -> device) other than the image's own."""
    return [
        BlockDeviceMapping(_device(device), virtual_name=virtual)
        for virtual, device in sorted(mappings.items())
        if virtual not in ("ami", "root")
    ]


def _device(device: str) -> str:
    return device if device.startswith("/dev/") else f"/dev/{device}"


def check_description(value: str | None) -> str | None:
    """AWS's bound on an image's description."""
    if value is not None and len(value) > MAX_DESCRIPTION:
        raise invalid_value(
            f"The description is {len(value)} characters; at most {MAX_DESCRIPTION} are allowed"
        )
    return value
