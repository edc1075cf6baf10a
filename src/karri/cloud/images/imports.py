"""ImportImage: a disk image in Walrus (RAW, VMDK, VHD/VHDX or QCOW2) converted with
``qemu-img`` into an EBS-backed EMI whose root volume is made from the converted disk.

The task is recorded ``active`` and converted in the background; the raw disk becomes a
snapshot owned by the importer and a pending EBS-backed EMI on it (what CreateImage
registers), and the task completes when the EBS worker settles that image ``available``.
A failed or cancelled import removes the snapshot and the image it made.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select

from karri.cloud.filters import FilterSet, Page, paginate
from karri.cloud.images.models import Image, ImportTask
from karri.cloud.images.pipeline import Pipeline
from karri.cloud.images.registration import split_location
from karri.cloud.images.requests import DiskContainer, ImportImageRequest, RegisterRequest
from karri.cloud.images.views import ARCHITECTURES
from karri.cloud.instances.options import check_client_token, idempotency_mismatch
from karri.cloud.volumes.mappings import root_from_snapshot
from karri.cloud.volumes.models import Snapshot
from karri.db.engine import Database
from karri.errors import CloudError, invalid_value
from karri.ids import new_id
from karri.walrus import ObjectReader, S3Error, Walrus

log = logging.getLogger("karri.images")

FORMATS = {"raw": "raw", "vmdk": "vmdk", "vhd": "vpc", "vhdx": "vhdx", "qcow2": "qcow2"}
# A disk image file holds its disk and the format's own tables (qcow2's L1/L2 and
# refcounts, VMDK's grain tables, a VHD footer): at most this fraction more, plus slack.
FORMAT_OVERHEAD = 64
FORMAT_SLACK = 16 * 1024 * 1024
PROGRESS = re.compile(rb"\((\d+(?:\.\d+)?)/100%\)")
ROOT_DEVICE = "/dev/sda1"

FILTERS: FilterSet[ImportTask] = FilterSet(
    {
        "task-state": lambda t: t.status,
        "import-task-id": lambda t: t.id,
        "status": lambda t: t.status,
    },
    tags=False,
)


class ImportFailed(Exception):
    """The import cannot finish; the message is the task's StatusMessage."""


@dataclass(frozen=True)
class Source:
    bucket: str
    key: str
    disk_format: str


class ImageRegistry(Protocol):
    """The images service that owns the imports (what an import registers)."""

    def register_ebs_pending(
        self, account_id: str, request: RegisterRequest, image_id: str | None = None
    ) -> str: ...
    def deregister(self, account_id: str, image_id: str | None) -> None: ...
    def named(self, account_id: str, name: str) -> str | None: ...


class NewSnapshot(Protocol):
    @property
    def snapshot(self) -> Snapshot: ...


class ImportSnapshots(Protocol):
    """EBS's snapshots (``cloud.ebs.snapshots``): the converted disk becomes one."""

    def create_from_file(
        self, account_id: str, path: Path, description: str = ""
    ) -> NewSnapshot: ...
    def delete(self, account_id: str, snapshot_id: str | None) -> None: ...


class Imports:
    def __init__(
        self,
        db: Database,
        walrus: Walrus,
        images: ImageRegistry,
        snapshots: ImportSnapshots,
        pipeline: Pipeline,
        work_dir: Path,
        max_bytes: int,
    ) -> None:
        self.db, self.walrus, self.images, self.pipeline = db, walrus, images, pipeline
        self.snapshots = snapshots
        self.work_dir = work_dir
        self.max_bytes = max_bytes
        self._processes: dict[str, subprocess.Popen] = {}
        self._lock = threading.Lock()

    # -- the API side -------------------------------------------------------------------

    def start(self, account_id: str, request: ImportImageRequest) -> ImportTask:
        source = self._source(account_id, request.disk_containers)
        architecture = request.architecture or "x86_64"
        if architecture not in ARCHITECTURES:
            raise invalid_value(f"Unsupported architecture '{architecture}'")
        token = request.client_token
        if token:
            check_client_token(token)
        size = self.walrus.head_object(source.bucket, source.key).size
        with self.db.write_session() as session:  # one task per token, even when raced
            if token:
                earlier = session.scalar(
                    select(ImportTask).where(
                        ImportTask.account_id == account_id, ImportTask.client_token == token
                    )
                )
                if earlier is not None:
                    same = (earlier.source_bucket, earlier.source_key, earlier.disk_format) == (
                        source.bucket,
                        source.key,
                        source.disk_format,
                    )
                    if not same or earlier.architecture != architecture:
                        raise idempotency_mismatch()
                    return earlier
            task = ImportTask(
                id=new_id("import-ami", lambda i: session.get(ImportTask, i) is not None),
                account_id=account_id,
                status="active",
                status_message="pending",
                progress=0,
                description=request.description,
                architecture=architecture,
                platform=request.platform or "Linux",
                disk_format=source.disk_format,
                source_bucket=source.bucket,
                source_key=source.key,
                disk_size=size,
                client_token=token,
                options={"license_type": request.license_type or "BYOL"},
            )
            session.add(task)
        self._queue(task.id)
        return task

    def _source(self, account_id: str, containers: Sequence[DiskContainer]) -> Source:
        if len(containers) != 1:
            raise invalid_value("karri imports exactly one disk (DiskContainers.1) per image")
        container = containers[0]
        if container.snapshot_id:
            raise CloudError("UnsupportedOperation", "Importing from a snapshot is not supported")
        if container.s3_bucket and container.s3_key:
            bucket, key = container.s3_bucket, container.s3_key
        elif container.url:
            bucket, key = split_location(_strip_endpoint(container.url))
        else:
            raise CloudError(
                "InvalidParameter", "A disk container needs UserBucket (S3Bucket, S3Key) or Url"
            )
        fmt = (container.format or "raw").lower()
        if fmt not in FORMATS:
            raise invalid_value(f"Unsupported disk format '{fmt}': RAW, VMDK, VHD, VHDX or QCOW2")
        try:
            self.walrus.head_object(bucket, key)
            readable = self.walrus.may_read(account_id, bucket, key)
        except S3Error:
            readable = False
        if not readable:
            raise CloudError(
                "InvalidParameter",
                f"The disk image s3://{bucket}/{key} does not exist or you may not read it",
            )
        return Source(bucket, key, fmt)

    def describe(
        self,
        account_id: str,
        task_ids: Sequence[str] | None,
        filters: Sequence[Mapping[str, Any]] | None,
        max_results: int | None,
        next_token: str | None,
    ) -> Page[ImportTask]:
        with self.db.session() as session:
            tasks = list(
                session.scalars(select(ImportTask).where(ImportTask.account_id == account_id))
            )
        if task_ids:
            known = {t.id for t in tasks}
            for task_id in task_ids:
                if task_id not in known:
                    raise CloudError(
                        "InvalidConversionTaskId.NotFound",
                        f"The import task ID '{task_id}' does not exist",
                    )
            tasks = [t for t in tasks if t.id in set(task_ids)]
        tasks = FILTERS.apply(tasks, filters)
        return paginate(
            tasks,
            lambda t: t.id,
            max_results,
            next_token,
            kind="import-tasks",
            ids_given=bool(task_ids),
        )

    def cancel(self, account_id: str, task_id: str) -> str:
        with self._lock, self.db.write_session() as session:  # against _record and image_settled
            task = session.get(ImportTask, task_id)
            if task is None or task.account_id != account_id:
                raise CloudError(
                    "InvalidConversionTaskId.NotFound",
                    f"The import task ID '{task_id}' does not exist",
                )
            previous = task.status
            if previous != "active":
                raise CloudError(
                    "IncorrectState",
                    f"The import task {task_id} is {previous}: it cannot be cancelled",
                )
            task.status = "deleting"
            task.status_message = "canceling"
        with self._lock:
            process = self._processes.get(task_id)
        if process is not None:
            process.terminate()
        self._abandon(task_id)
        if not self.pipeline.busy(task_id):
            self._finish_cancel(task_id)
        return previous

    def resume(self) -> None:
        """After a restart: active tasks whose image is registered wait for it (or finish,
        if it settled meanwhile); other active tasks start over; cancelled ones finish
        cancelling."""
        with contextlib.suppress(FileNotFoundError):
            for leftover in self.work_dir.iterdir():  # the default images' scratch too
                if leftover.is_dir() and not leftover.is_symlink():
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    leftover.unlink(missing_ok=True)
        with self.db.session() as session:
            tasks = list(
                session.scalars(
                    select(ImportTask).where(ImportTask.status.in_(("active", "deleting")))
                )
            )
        for task in tasks:
            if task.status == "deleting":
                self._abandon(task.id)
                self._finish_cancel(task.id)
            elif task.image_id:
                self.image_settled(task.image_id)
            else:
                self._abandon(task.id)
                self._queue(task.id)

    def waiting(self) -> list[tuple[str, Callable[[], None]]]:
        """Active tasks with no image yet that no job runs here: the pipeline's scan."""
        with self.db.session() as session:
            tasks = session.scalars(
                select(ImportTask.id).where(
                    ImportTask.status == "active", ImportTask.image_id.is_(None)
                )
            ).all()
        return [(t, lambda t=t: self._run(t)) for t in tasks if not self.pipeline.busy(t)]

    # -- the background side -------------------------------------------------------------

    def _queue(self, task_id: str) -> None:
        self.pipeline.submit(task_id, lambda: self._run(task_id))

    def _run(self, task_id: str) -> None:
        with self.db.session() as session:
            task = session.get(ImportTask, task_id)
            if task is None or task.status != "active":
                return
            source = Source(task.source_bucket, task.source_key, task.disk_format)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        output = self.work_dir / f"{task_id}.raw"
        try:
            self._update(task_id, "converting", 5)
            self._convert(task_id, source, output)
            if self._cancelled(task_id):
                return
            self._update(task_id, "preparing ami", 85)
            self._register(task_id, output)
        except ImportFailed as error:
            if not self._cancelled(task_id):
                self._fail(task_id, f"ClientError: {error}")
        except Exception as error:
            log.exception("import %s failed", task_id)
            if not self._cancelled(task_id):
                self._fail(task_id, f"ServerError: {error}")
        finally:
            output.unlink(missing_ok=True)
            if self._cancelled(task_id):
                self._finish_cancel(task_id)

    def _convert(self, task_id: str, source: Source, output: Path) -> None:
        # A disk file far larger than the largest disk it may hold is refused before
        # anything is joined or read.
        stored = self.walrus.head_object(source.bucket, source.key).size
        if stored > self.max_bytes + self.max_bytes // FORMAT_OVERHEAD + FORMAT_SLACK:
            raise ImportFailed(
                f"The disk file is {stored} bytes; this cloud imports disks of at most "
                f"{self.max_bytes} bytes"
            )
        # qemu-img reads one file: a multipart upload (what `aws s3 cp` makes of any disk
        # over 8 MiB) is joined into one first.
        local = self.walrus.object_path(source.bucket, source.key)
        with (
            self.walrus.open_object(source.bucket, source.key) as reader,
            _descriptor(reader, local is not None, output.with_suffix(".source")) as fd,
        ):
            path = f"/proc/self/fd/{fd}"  # the descriptor is passed to qemu-img
            fmt = FORMATS[source.disk_format]
            info = _qemu_info(path, fmt, fd)
            elsewhere = _other_files(info, path)
            if elsewhere:
                raise ImportFailed(f"Disk validation failed [{elsewhere}]")
            if info.get("format") != fmt:
                raise ImportFailed(
                    f"Disk validation failed [the disk is not in {source.disk_format} format]"
                )
            size = int(info.get("virtual-size") or 0)
            if size > self.max_bytes:
                raise ImportFailed(
                    f"The disk is {size} bytes; this cloud imports disks of at most "
                    f"{self.max_bytes} bytes"
                )
            command = ["qemu-img", "convert", "-p", "-f", fmt, "-O", "raw", path, str(output)]
            process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(fd,)
            )
            with self._lock:
                self._processes[task_id] = process
            try:
                self._follow(task_id, process)
                _, err = process.communicate()
            finally:
                with self._lock:
                    self._processes.pop(task_id, None)
            if process.returncode != 0 and not self._cancelled(task_id):
                raise ImportFailed(
                    f"Disk conversion failed [{_without(err.decode(errors='replace'), path)}]"
                )

    def _follow(self, task_id: str, process: subprocess.Popen) -> None:
        """Read qemu-img's progress ("(12.34/100%)") into the task, 5% to 80%."""
        assert process.stdout is not None
        buffer, last = b"", -1
        while chunk := process.stdout.read1(4096):
            buffer = (buffer + chunk)[-256:]
            found = PROGRESS.findall(buffer)
            if found:
                percent = 5 + int(float(found[-1]) * 0.75)
                if percent >= last + 5:
                    last = percent
                    self._update(task_id, "converting", percent)

    def _register(self, task_id: str, output: Path) -> None:
        """The converted disk becomes a snapshot of the importer's, and a pending
        EBS-backed EMI on it; the task completes when the EBS worker settles the image."""
        with self.db.session() as session:
            task = session.get(ImportTask, task_id)
            assert task is not None
            account_id, description, architecture = (
                task.account_id,
                task.description,
                task.architecture,
            )
        snapshot_id = self.snapshots.create_from_file(
            account_id, output, f"Created by ImportImage {task_id}"
        ).snapshot.id
        if not self._record(task_id, snapshot_id=snapshot_id):
            self._discard(account_id, None, snapshot_id)
            return
        self._deregister_leftover(account_id, task_id)
        image_id = self.images.register_ebs_pending(
            account_id,
            RegisterRequest(
                name=task_id,
                description=description,
                architecture=architecture,
                root_device_name=ROOT_DEVICE,
                block_device_mappings=(root_from_snapshot(ROOT_DEVICE, snapshot_id),),
            ),
        )
        if not self._record(task_id, image_id=image_id):
            self._discard(account_id, image_id, snapshot_id)
            return
        log.info("import %s: %s registered on %s", task_id, image_id, snapshot_id)
        self.image_settled(image_id)  # the snapshot may have completed already

    def _record(
        self, task_id: str, *, snapshot_id: str | None = None, image_id: str | None = None
    ) -> bool:
        """Note what the import made, unless it was cancelled meanwhile (then False: the
        caller discards it). Under the lock that ``cancel`` takes, so exactly one of them
        cleans up."""
        with self._lock, self.db.write_session() as session:
            task = session.get(ImportTask, task_id)
            if task is None or task.status != "active":
                return False
            if snapshot_id:
                task.options = {**(task.options or {}), "snapshot_id": snapshot_id}
            if image_id:
                task.image_id = image_id
            return True

    def image_settled(self, image_id: str) -> None:
        """An imported image left ``pending`` (``Images.settle_ebs``, ``deregister``): its
        task completes when it is available; otherwise the task fails, leaving nothing."""
        with self._lock, self.db.write_session() as session:
            task = session.scalar(
                select(ImportTask).where(
                    ImportTask.image_id == image_id, ImportTask.status == "active"
                )
            )
            image = session.get(Image, image_id)
            if task is None or image is None or image.state == "pending":
                return
            task_id = task.id
            if image.state == "available":
                task.status, task.status_message, task.progress = "completed", None, 100
                log.info("import %s completed: %s", task_id, image_id)
                return
            reason = image.state_reason or f"the image was {image.state}"
        self._fail(task_id, f"ServerError: {reason}")

    def _abandon(self, task_id: str) -> None:
        """Forget and remove the snapshot and image a failed or cancelled import made."""
        with self._lock, self.db.write_session() as session:
            task = session.get(ImportTask, task_id)
            if task is None:
                return
            account_id, image_id = task.account_id, task.image_id
            snapshot_id = (task.options or {}).get("snapshot_id")
            task.image_id = None
            task.options = {k: v for k, v in (task.options or {}).items() if k != "snapshot_id"}
        self._discard(account_id, image_id, snapshot_id)

    def _discard(self, account_id: str, image_id: str | None, snapshot_id: str | None) -> None:
        if image_id:
            with self.db.session() as session:
                image = session.get(Image, image_id)
                registered = image is not None and image.state != "deregistered"
            if registered:
                self.images.deregister(account_id, image_id)
        if snapshot_id:
            try:
                self.snapshots.delete(account_id, snapshot_id)
            except CloudError as error:
                log.warning("import: could not delete snapshot %s: %s", snapshot_id, error)

    def _deregister_leftover(self, account_id: str, task_id: str) -> None:
        """An image a crash left registered (before the task recorded it) under the
        task's name: an import starting over registers that name again."""
        leftover = self.images.named(account_id, task_id)
        if leftover:
            self.images.deregister(account_id, leftover)

    def _update(self, task_id: str, message: str, progress: int) -> None:
        with self.db.write_session() as session:
            task = session.get(ImportTask, task_id)
            if task is not None and task.status == "active":
                task.status_message, task.progress = message, progress

    def _fail(self, task_id: str, message: str) -> None:
        log.info("import %s failed: %s", task_id, message)
        with self.db.write_session() as session:
            task = session.get(ImportTask, task_id)
            if task is not None:
                task.status, task.status_message = "deleted", message
        self._abandon(task_id)

    def _cancelled(self, task_id: str) -> bool:
        with self.db.session() as session:
            task = session.get(ImportTask, task_id)
            return task is None or task.status in ("deleting", "deleted")

    def _finish_cancel(self, task_id: str) -> None:
        with self.db.write_session() as session:
            task = session.get(ImportTask, task_id)
            if task is not None and task.status == "deleting":
                task.status, task.status_message = "deleted", "User requested cancel"


def _qemu_info(path: str, fmt: str, fd: int) -> dict[str, Any]:
    try:
        result = subprocess.run(
            ["qemu-img", "info", "--output=json", "-f", fmt, path],
            capture_output=True,
            text=True,
            timeout=60,
            pass_fds=(fd,),
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ImportFailed(f"Disk validation failed [{error}]") from None
    if result.returncode != 0:
        raise ImportFailed(
            f"Disk validation failed [the disk is not in a readable {fmt} format: "
            f"{_without(result.stderr, path)}]"
        )
    return json.loads(result.stdout)


def _without(message: str, path: str) -> str:
    """qemu-img's message without the descriptor path karri gave it (of no use to the
    importer, and a detail of the host)."""
    return message.replace(path, "disk").strip()


# The VMDK kinds that are one file; the others are a descriptor naming extent files.
SELF_CONTAINED_VMDK = ("monolithicSparse", "streamOptimized")


def _other_files(info: dict[str, Any], path: str) -> str | None:
    """Why converting the disk would make qemu-img read a file other than ``path`` (a
    file of karri's host, named by whoever made the disk), or None: a backing file, a
    qcow2 external data file, VMDK extents elsewhere."""
    if info.get("backing-filename") or info.get("full-backing-filename"):
        return "disk images with a backing file"
    data = (info.get("format-specific") or {}).get("data") or {}
    if data.get("data-file"):
        return "disk images with an external data file"
    if info.get("format") == "vmdk" and data.get("create-type") not in SELF_CONTAINED_VMDK:
        return f"VMDK disks of type {data.get('create-type')} (a descriptor of other files)"
    if any(extent.get("filename") != path for extent in data.get("extents") or ()):
        return "disk images with extents in other files"
    return None


def _strip_endpoint(url: str) -> str:
    """``s3://b/k``, or an http(s) URL path-style on the S3 endpoint: ``bucket/key``."""
    if url.startswith(("http://", "https://")):
        return url.split("://", 1)[1].partition("/")[2]
    return url


@contextlib.contextmanager
def _descriptor(reader: ObjectReader, local: bool, staging: Path) -> Iterator[int]:
    """A descriptor on the object's bytes: its own file when Walrus keeps local files,
    else a copy at ``staging`` (RADOS), removed after."""
    if local:
        yield reader.fd
        return
    try:
        with open(staging, "wb") as out:
            for chunk in reader.chunks(chunk=8 << 20):
                out.write(chunk)
        fd = os.open(staging, os.O_RDONLY)
        try:
            yield fd
        finally:
            os.close(fd)
    finally:
        staging.unlink(missing_ok=True)
