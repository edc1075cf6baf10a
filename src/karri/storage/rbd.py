"""The Ceph RBD backend (``karri up --ebs-backend rbd``): each volume is an RBD image.

Layout, in one pool::

    vol-1a2b3c4d                an image: a volume (QEMU opens it with its rbd driver)
    vol-1a2b3c4d@snap-5e6f7a8b  an RBD snapshot: a snapshot's checkpoint, kept and protected
    snap-5e6f7a8b@snap-5e6f7a8b an image holding a checkpoint made from a file (ImportImage,
                                the default EBS image), with its one snapshot
    gone.vol-1a2b3c4d           a deleted volume whose checkpoints are still kept
    tmp.vol-…                   an image being written; removed by ``sweep``
    namespace karri-checkpoints, object snap-5e6f7a8b: the id of the image holding it

A volume is thin (``rbd create``). A snapshot's checkpoint is an RBD snapshot: instant,
and consistent while a guest writes (the client holding the image's exclusive lock, QEMU,
takes it with its writes flushed). It is exported to Walrus like any other, then *kept*:
CreateVolume from the snapshot is an RBD clone of it (copy-on-write, instant), flattened
in the background (``Flattener``); an EBS-backed launch's root volume stays a clone, so
launching an image again copies nothing. A checkpoint names its image by id, so a
deleted volume with kept checkpoints is only renamed (``gone.``) and removed with its
last checkpoint. Dropping a checkpoint flattens its clones first.

An encrypted volume's image holds an encrypted qcow2 file, the local backend's very file
(``storage.rbdluks``): QEMU layers qcow2 with LUKS over its rbd driver, and its snapshots
export the same ciphertext streams. Its checkpoints are RBD snapshots kept as plain ones
are: an encrypted volume from one is a clone holding the same file (the same key, the
account's), grown through the passphrase when it is larger (``qemu-img resize`` writes its
qcow2 header and tables: the rest stays shared); legacy raw LUKS snapshots (files' before
qcow2) are refused.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from karri.cephclient import connect, ensure_pool, unreachable
from karri.storage import luks, nbdwrite, rbdluks, sparse
from karri.storage.interface import (
    GIB,
    Readable,
    StorageError,
    StorageUnavailable,
    VolumeTarget,
    check_snapshot_id,
    check_volume_id,
)
from karri.storage.rbdflatten import FLATTEN_KEY, Flattener

log = logging.getLogger("karri.ebs")

CHECKPOINTS = "karri-checkpoints"  # the namespace of the checkpoints' records
GONE, TMP = "gone.", "tmp."
COPY_BLOCK = 4 << 20
CLOSE_WAIT = 10.0  # seconds ``close`` waits for a flatten under way


@dataclass(frozen=True)
class RbdPool:
    """Where the volumes go: a Ceph configuration file (None: librados's default), the
    client's user name (``client.<user>``) and the pool (created if missing)."""

    conf: str | None = None
    user: str = "admin"
    pool: str = "karri-volumes"
    timeout: float = 30.0  # seconds any one Ceph operation may take


@dataclass
class RbdStream(sparse.SparseStream):
    """The snapshot stream of a checkpoint: the data extents of an RBD snapshot."""

    storage: RbdStorage | None = field(default=None, repr=False)
    image_id: str = ""
    snapshot: str = ""  # empty: the image itself

    @contextlib.contextmanager
    def reader(self) -> Iterator[Callable[[int, int], bytes]]:
        assert self.storage is not None
        with self.storage._image(self.image_id, self.snapshot or None, read_only=True) as image:
            yield lambda length, offset: image.read(offset, length)


class RbdStorage:
    """``StorageController`` over RBD images in one pool (see the module docstring)."""

    keeps_checkpoints = True
    live_checkpoints = True

    def __init__(self, ceph: RbdPool) -> None:
        self.ceph = ceph
        self._lock = threading.Lock()
        self._cluster: Any = None
        self._ioctx: Any = None
        self._records: Any = None
        self.flattener = Flattener(self)

    # -- the connection ------------------------------------------------------------------

    def _io(self) -> Any:
        with self._lock:
            if self._ioctx is None:
                self._connect()
            return self._ioctx

    def _connect(self) -> None:
        target = self.ceph
        try:
            cluster = connect(target.conf, target.user, target.timeout)
        except Exception as error:
            raise StorageUnavailable(f"cannot reach Ceph: {error}") from error
        try:
            ensure_pool(cluster, target.pool, "rbd", target.timeout)
            ioctx = cluster.open_ioctx(target.pool)
            records = cluster.open_ioctx(target.pool)
            records.set_namespace(CHECKPOINTS)
        except BaseException:
            cluster.shutdown()
            raise
        self._cluster, self._ioctx, self._records = cluster, ioctx, records

    def close(self) -> None:
        """Disconnect; while a flatten still runs (librbd in another thread) the
        connection is left to the process's exit rather than shut under it."""
        if not self.flattener.stop(CLOSE_WAIT):
            log.warning("ebs: a flatten is still running: left to finish at the next start")
            return
        with self._lock:
            if self._cluster is not None:
                self._records.close()
                self._ioctx.close()
                self._cluster.shutdown()
                self._cluster = self._ioctx = self._records = None

    @contextlib.contextmanager
    def _calls(self, what: str) -> Iterator[None]:
        """librbd's failures as ``StorageError`` (``StorageUnavailable`` out of reach)."""
        import rados
        import rbd

        try:
            yield
        except (rbd.Error, rados.Error) as error:
            if unreachable(error):
                raise StorageUnavailable(f"{what}: Ceph cannot be reached ({error})") from error
            raise StorageError(f"{what}: {error}") from error

    @contextlib.contextmanager
    def _image(
        self,
        name_or_id: str,
        snapshot: str | None = None,
        *,
        by_id: bool = True,
        read_only: bool = False,
    ):
        """An open image (by id, or by ``name``), closed on the way out."""
        import rbd

        io = self._io()
        options: dict[str, Any] = {"image_id": name_or_id} if by_id else {"name": name_or_id}
        read_only = read_only or snapshot is not None
        image = rbd.Image(io, snapshot=snapshot, read_only=read_only, **options)
        try:
            yield image
        finally:
            image.close()

    # -- volumes ---------------------------------------------------------------------------

    def create(self, volume_id: str, size_gib: int, passphrase: bytes | None = None) -> None:
        """A thin image; with a ``passphrase``, one holding a new encrypted qcow2 file."""
        import rbd

        with self._calls(f"creating {volume_id}"), _luks_errors(volume_id):
            if passphrase is None:
                self._remove_leftover(check_volume_id(volume_id))
                rbd.RBD().create(self._io(), volume_id, size_gib * GIB)
                return
            with self._staged(volume_id) as staged:
                self._new_encrypted(staged, size_gib * GIB, passphrase)

    def create_from(
        self,
        volume_id: str,
        stream: Readable | BinaryIO,
        size_gib: int,
        progress: Callable[[int], None] | None = None,
        *,
        encrypted: bool = False,
        passphrase: bytes | None = None,
    ) -> None:
        """The snapshot stream written into a new image (``tmp.``), renamed into place; an
        encrypted snapshot's ciphertext as it is (grown through the passphrase), a plain
        one's encrypted by QEMU into a new encrypted file when a ``passphrase`` is given."""
        size = size_gib * GIB
        with (
            self._calls(f"restoring {volume_id}"),
            _luks_errors(volume_id),
            self._staged(volume_id) as staged,
        ):
            virtual = sparse.read_header(stream.read)
            if encrypted:
                self._fill(staged, virtual, stream, progress)
                self._grow_restored(staged, size, passphrase)
                return
            if virtual > size:
                raise StorageError(f"the snapshot holds {virtual} bytes, more than {size}")
            if passphrase is None:
                self._fill(staged, size, stream, progress, virtual)
                return
            self._new_encrypted(staged, size, passphrase)
            node = rbdluks.protocol_node(self.ceph, staged)
            nbdwrite.encrypt_stream(node, stream, virtual, passphrase, progress)

    @contextlib.contextmanager
    def _staged(self, volume_id: str) -> Iterator[str]:
        """The name a new volume's image is written under (``tmp.``), renamed to
        ``volume_id`` (replacing an unfinished create's) if the block succeeds; nothing is
        left behind otherwise."""
        import rbd

        staged = TMP + check_volume_id(volume_id)
        self._remove_leftover(volume_id)
        self._remove(staged)
        try:
            yield staged
            rbd.RBD().rename(self._io(), staged, volume_id)
        finally:
            self._remove(staged)

    def _fill(
        self,
        name: str,
        size: int,
        stream: Readable | BinaryIO,
        progress: Callable[[int], None] | None,
        virtual: int | None = None,
    ) -> None:
        """A new image ``name`` of ``size`` bytes holding the stream's ``virtual`` bytes
        (its header read; all of the image when None)."""
        import rbd

        rbd.RBD().create(self._io(), name, size)
        with self._image(name, by_id=False) as image:
            length = size if virtual is None else virtual
            sparse.decode_into(stream.read, _writer(image), length, progress)
            image.flush()

    def _new_encrypted(self, name: str, size: int, passphrase: bytes) -> None:
        """A new image ``name`` holding a new encrypted qcow2 file of virtual size
        ``size`` (``rbdluks``), marked encrypted."""
        import rbd

        with rbdluks.new_file(size, passphrase) as path:
            length = path.stat().st_size
            rbd.RBD().create(self._io(), name, length)
            with self._image(name, by_id=False) as image:
                _copy_file(path, image, length)
                rbdluks.mark_encrypted(image)
                image.flush()

    def _grow_restored(self, name: str, size: int, passphrase: bytes | None) -> None:
        """An encrypted snapshot's file just written (or cloned) into the image ``name``:
        checked, marked encrypted, grown to the volume's ``size`` through the passphrase."""
        with self._image(name, by_id=False) as image:
            if image.read(0, len(luks.LEGACY_MAGIC)) == luks.LEGACY_MAGIC:
                raise StorageError(
                    "a raw LUKS snapshot (taken before qcow2) is not restored on Ceph RBD"
                )
            virtual = rbdluks.virtual_size(image)
            if virtual > size:
                raise StorageError(f"the snapshot holds {virtual} bytes, more than {size}")
            rbdluks.mark_encrypted(image)
        if virtual < size:
            if passphrase is None:
                raise StorageError("growing an encrypted volume needs its passphrase")
            luks.resize(rbdluks.protocol_node(self.ceph, name), size, passphrase)

    def clone_checkpoint(
        self,
        snapshot_id: str,
        volume_id: str,
        size_gib: int,
        *,
        flatten: bool,
        passphrase: bytes | None = None,
    ) -> bool:
        """A clone of the kept checkpoint (written as ``tmp.``, renamed into place); an
        encrypted one's (``passphrase``: the volume is encrypted) holds the same qcow2
        file, its ciphertext shared, grown through the passphrase if the volume is larger.
        False when the checkpoint is not kept, or is not encrypted as the volume is."""
        import rbd

        size = size_gib * GIB
        with (
            self._calls(f"cloning {snapshot_id} into {volume_id}"),
            _luks_errors(volume_id),
        ):
            image_id = self._holder(snapshot_id)
            if image_id is None:
                return False
            with self._image(image_id) as parent:
                if not _has_snap(parent, snapshot_id):
                    return False
                if rbdluks.is_encrypted(parent) != (passphrase is not None):
                    return False  # a plain volume from an encrypted one's, or the reverse
                parent_name = parent.get_name()
            with self._staged(volume_id) as staged:
                io = self._io()
                rbd.RBD().clone(io, parent_name, snapshot_id, io, staged)
                with self._image(staged, by_id=False) as image:
                    with contextlib.suppress(KeyError):
                        image.metadata_remove(FLATTEN_KEY)  # the parent's, if librbd copied it
                    if flatten:
                        image.metadata_set(FLATTEN_KEY, "1")
                    if passphrase is None and image.size() < size:
                        image.resize(size)
                if passphrase is not None:  # the same file: grown through the passphrase
                    self._grow_restored(staged, size, passphrase)
        if flatten:
            self.flattener.add(volume_id)
        return True

    def delete(self, volume_id: str) -> None:
        """Remove the image; one with kept checkpoints is renamed ``gone.`` (removed with
        its last checkpoint)."""
        import rbd

        with self._calls(f"deleting {volume_id}"):
            try:
                with self._image(check_volume_id(volume_id), by_id=False) as image:
                    kept = any(True for _ in image.list_snaps())
            except rbd.ImageNotFound:
                return
            if kept:
                rbd.RBD().rename(self._io(), volume_id, GONE + volume_id)
            else:
                self._remove(volume_id)

    def exists(self, volume_id: str) -> bool:
        return check_volume_id(volume_id) in self._names()

    def target(self, volume_id: str) -> VolumeTarget:
        """The image; an encrypted volume's format is ``qcow2-luks``, its size the qcow2
        header's."""
        import rbd

        fmt = "raw"
        with self._calls(f"opening {volume_id}"), _luks_errors(volume_id):
            try:
                with self._image(check_volume_id(volume_id), by_id=False) as image:
                    size = image.size()
                    if rbdluks.is_encrypted(image):
                        fmt, size = luks.FORMAT, rbdluks.virtual_size(image)
            except rbd.ImageNotFound:
                raise StorageError(f"volume {volume_id} does not exist") from None
        path = f"{self.ceph.pool}/{volume_id}"
        return VolumeTarget(volume_id, "rbd", path, fmt, size, self.ceph.conf, self.ceph.user)

    def resize(self, volume_id: str, size_gib: int, passphrase: bytes | None = None) -> None:
        """Grow the image; an encrypted volume's qcow2 file through its ``passphrase``."""
        import rbd

        size = size_gib * GIB
        with self._calls(f"resizing {volume_id}"), _luks_errors(volume_id):
            try:
                with self._image(check_volume_id(volume_id), by_id=False) as image:
                    encrypted = rbdluks.is_encrypted(image)
                    if encrypted:
                        grows = rbdluks.virtual_size(image) < size
                    elif image.size() < size:
                        image.resize(size)
            except rbd.ImageNotFound:
                raise StorageError(f"volume {volume_id} does not exist") from None
            if encrypted and grows:
                if passphrase is None:
                    raise StorageError(f"growing {volume_id} needs its passphrase")
                luks.resize(rbdluks.protocol_node(self.ceph, volume_id), size, passphrase)

    def volume_ids(self) -> set[str]:
        return {name for name in self._names() if name.startswith("vol-")}

    def volume_stream(self, volume_id: str) -> sparse.SparseStream:
        """The image's data extents (a clone's parent's included; an encrypted volume's
        qcow2 file)."""
        import rbd

        with self._calls(f"reading {volume_id}"):
            try:
                with self._image(check_volume_id(volume_id), by_id=False, read_only=True) as image:
                    image_id = image.id()
            except rbd.ImageNotFound:
                raise StorageError(f"volume {volume_id} does not exist") from None
            return self._stream(image_id, "")

    def _names(self) -> list[str]:
        import rbd

        with self._calls("listing images"):
            return list(rbd.RBD().list(self._io()))

    # -- checkpoints -----------------------------------------------------------------------

    def checkpoint(self, volume_id: str, snapshot_id: str) -> None:
        """An RBD snapshot of the volume, protected (clones need it so)."""
        import rbd

        check_snapshot_id(snapshot_id)
        with self._calls(f"snapshotting {volume_id}"):
            try:
                with self._image(check_volume_id(volume_id), by_id=False) as image:
                    if not _has_snap(image, snapshot_id):
                        image.create_snap(snapshot_id)
                    if not image.is_protected_snap(snapshot_id):
                        image.protect_snap(snapshot_id)
                    image_id = image.id()
            except rbd.ImageNotFound:
                raise StorageError(f"volume {volume_id} does not exist") from None
            self._records_io().write_full(snapshot_id, image_id.encode())

    def checkpoint_file(self, snapshot_id: str, path: Path) -> None:
        """A new image ``snap-…`` holding the file's data blocks, and its snapshot."""
        size = path.stat().st_size
        self._image_checkpoint(snapshot_id, size, lambda image: _copy_file(path, image, size))

    def checkpoint_from(
        self,
        snapshot_id: str,
        stream: Readable | BinaryIO,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """A new image ``snap-…`` holding the stream's blocks, and its snapshot."""
        try:
            size = sparse.read_header(stream.read)
            fill = lambda image: sparse.decode_into(stream.read, _writer(image), size, progress)  # noqa: E731
            self._image_checkpoint(snapshot_id, size, fill)
        except sparse.CorruptStream as error:
            self._purge(snapshot_id)
            raise StorageError(f"snapshot stream for {snapshot_id}: {error}") from error

    def _image_checkpoint(
        self,
        snapshot_id: str,
        size: int,
        fill: Callable[[Any], None] | None,
        make: Callable[[], None] | None = None,
    ) -> None:
        """A checkpoint in an image of its own (``snap-…@snap-…``) of ``size`` bytes that
        ``fill`` writes (or that ``make`` creates and writes); its record is written last,
        so until then it is no checkpoint at all."""
        import rbd

        name = check_snapshot_id(snapshot_id)
        with self._calls(f"storing {snapshot_id}"):
            self.drop_checkpoint(snapshot_id)
            self._purge(name)
            if make is not None:
                make()
            else:
                rbd.RBD().create(self._io(), name, size)
            with self._image(name, by_id=False) as image:
                if fill is not None:
                    fill(image)
                image.flush()
                image.create_snap(snapshot_id)
                image.protect_snap(snapshot_id)
                image_id = image.id()
            self._records_io().write_full(snapshot_id, image_id.encode())

    def _purge(self, name: str) -> None:
        """Remove an image no record names (an unfinished checkpoint's), snapshots and all:
        nothing was cloned from it."""
        import rbd

        try:
            with self._image(name, by_id=False) as image:
                for snap in list(image.list_snaps()):
                    if image.is_protected_snap(snap["name"]):
                        image.unprotect_snap(snap["name"])
                    image.remove_snap(snap["name"])
        except rbd.ImageNotFound:
            return
        self._remove(name)

    def checkpoint_target(
        self, snapshot_id: str, size_gib: int, passphrase: bytes | None = None
    ) -> VolumeTarget:
        raise StorageError("RBD checkpoints are snapshots: nothing is copied into them")

    def encrypted_checkpoint(
        self,
        snapshot_id: str,
        stream: Readable | BinaryIO,
        passphrase: bytes,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """A new image ``snap-…`` holding a new encrypted qcow2 file that QEMU encrypts the
        plain stream's blocks into, and its snapshot. The file's size is the stream's
        rounded up to whole GiB, as a volume from it is: its clones need no growing."""
        name = check_snapshot_id(snapshot_id)
        try:
            with _luks_errors(snapshot_id):
                virtual = sparse.read_header(stream.read)

                def make() -> None:
                    self._new_encrypted(name, -(-virtual // GIB) * GIB, passphrase)
                    node = rbdluks.protocol_node(self.ceph, name)
                    nbdwrite.encrypt_stream(node, stream, virtual, passphrase, progress)

                self._image_checkpoint(snapshot_id, virtual, None, make)
        except BaseException:
            self._purge(name)  # not even ciphertext is left behind
            raise

    def seal_checkpoint(self, snapshot_id: str) -> None:
        """RBD snapshots are durable when made: nothing to seal."""

    def has_checkpoint(self, snapshot_id: str) -> bool:
        import rbd

        with self._calls(f"looking for {snapshot_id}"):
            image_id = self._holder(snapshot_id)
            if image_id is None:
                return False
            try:
                with self._image(image_id) as image:
                    return _has_snap(image, snapshot_id)
            except rbd.ImageNotFound:
                return False

    def export(self, snapshot_id: str, since: str | None = None) -> sparse.SparseStream:
        """The RBD snapshot's data extents (``diff_iterate`` from nothing); with ``since``,
        an earlier RBD snapshot of the same image, the extents changed since it (``rbd
        export-diff --from-snap``): a diff, or the whole snapshot if ``since`` is not one."""
        with self._calls(f"reading {snapshot_id}"):
            image_id = self._holder(snapshot_id)
            if image_id is None:
                raise StorageError(f"no checkpoint for {snapshot_id}")
            if since is not None and self._holder(since) != image_id:
                since = None
            return self._stream(image_id, snapshot_id, since)

    def _stream(self, image_id: str, snapshot: str, since: str | None = None) -> RbdStream:
        """The data extents of an image (``snapshot`` empty) or of one of its snapshots;
        with ``since`` (one of its earlier snapshots), those changed since it, and the
        ranges that read as zeros now."""
        extents: list[tuple[int, int]] = []
        zeros: list[tuple[int, int]] = []

        def found(offset: int, length: int, exists: bool) -> None:
            _adjoin(extents if exists else zeros, offset, length)

        with self._image(image_id, snapshot or None, read_only=True) as image:
            size = image.size()
            if since is not None and not _has_snap(image, since):
                since = None
            image.diff_iterate(0, size, since, found)
        where = Path(f"rbd:{self.ceph.pool}/{image_id}" + (f"@{snapshot}" if snapshot else ""))
        return RbdStream(
            where,
            size,
            list(sparse.records_of(sorted(extents))),
            zeros=list(sparse.records_of(sorted(zeros))) if since else [],
            since=since,
            storage=self,
            image_id=image_id,
            snapshot=snapshot,
        )

    def drop_checkpoint(self, snapshot_id: str) -> None:
        """Remove the RBD snapshot (its clones flattened first), its record, and its
        image once nothing else keeps it (a file's, a deleted volume's)."""
        import rados
        import rbd

        with self._calls(f"dropping {snapshot_id}"):
            image_id = self._holder(check_snapshot_id(snapshot_id))
            if image_id is None:
                return
            try:
                with self._image(image_id) as image:
                    if _has_snap(image, snapshot_id):
                        self._unclone(image, snapshot_id)
                        image.remove_snap(snapshot_id)
                    name = image.get_name()
                    alone = not any(True for _ in image.list_snaps())
            except rbd.ImageNotFound:
                name, alone = "", False
            with contextlib.suppress(rados.ObjectNotFound):
                self._records_io().remove_object(snapshot_id)
            if alone and (name.startswith(GONE) or name == snapshot_id):
                self._remove(name)

    def _unclone(self, image: Any, snapshot_id: str) -> None:
        """Make the snapshot's clones independent, then unprotect it."""
        if not image.is_protected_snap(snapshot_id):
            return
        image.set_snap(snapshot_id)
        children = list(image.list_children())
        image.set_snap(None)
        for _pool, child in children:
            log.info("ebs: flattening %s before %s goes", child, snapshot_id)
            self.flattener.flatten_now(child)
        image.unprotect_snap(snapshot_id)

    def checkpoint_ids(self) -> set[str]:
        with self._calls("listing checkpoints"):
            return {item.key for item in self._records_io().list_objects()}

    def _holder(self, snapshot_id: str) -> str | None:
        """The id of the image holding the snapshot's checkpoint, if any."""
        import rados

        try:
            return self._records_io().read(check_snapshot_id(snapshot_id)).decode() or None
        except rados.ObjectNotFound:
            return None

    def _records_io(self) -> Any:
        self._io()
        return self._records

    # -- housekeeping ------------------------------------------------------------------------

    def sweep(self) -> int:
        """Remove what a crash left behind (``tmp.`` images, ``gone.`` images with no
        checkpoint left); resume the flattening of clones that had not finished."""
        import rbd

        removed = 0
        for name in self._names():
            if name.startswith(TMP):
                self._remove(name)
                removed += 1
            elif name.startswith(GONE):
                with self._calls(f"sweeping {name}"), self._image(name, by_id=False) as image:
                    alone = not any(True for _ in image.list_snaps())
                if alone:
                    self._remove(name)
                    removed += 1
            elif name.startswith("vol-"):
                with (
                    self._calls(f"sweeping {name}"),
                    contextlib.suppress(rbd.ImageNotFound),
                    self._image(name, by_id=False) as image,
                ):
                    if FLATTEN_KEY in dict(image.metadata_list()):
                        self.flattener.add(name)
        return removed

    def _remove(self, name: str) -> None:
        """Remove an image (one that is gone already: fine)."""
        import rbd

        with contextlib.suppress(rbd.ImageNotFound):
            rbd.RBD().remove(self._io(), name)

    def _remove_leftover(self, volume_id: str) -> None:
        """An unfinished create's image (a volume not yet available), replaced."""
        self._remove(volume_id)


def _has_snap(image: Any, snapshot_id: str) -> bool:
    return any(snap["name"] == snapshot_id for snap in image.list_snaps())


def _adjoin(extents: list[tuple[int, int]], offset: int, length: int) -> None:
    """Add an extent, merged with the last one when they touch."""
    if extents and extents[-1][0] + extents[-1][1] == offset:
        extents[-1] = (extents[-1][0], extents[-1][1] + length)
    else:
        extents.append((offset, length))


@contextlib.contextmanager
def _luks_errors(name: str) -> Iterator[None]:
    """What QEMU or a stream refused, as ``StorageError``."""
    try:
        yield
    except (luks.LuksError, nbdwrite.NbdError, sparse.CorruptStream) as error:
        raise StorageError(f"{name}: {error}") from error


def _writer(image: Any) -> Callable[[bytes, int], None]:
    def write(data: bytes, offset: int) -> None:
        image.write(data, offset)

    return write


def _copy_file(path: Path, image: Any, size: int) -> None:
    """The file's data blocks into the image, leaving out holes and all-zero blocks."""
    zeros = bytes(COPY_BLOCK)
    fd = os.open(path, os.O_RDONLY)
    try:
        for offset, length in sparse.data_extents(fd, size):
            end = offset + length
            while offset < end:
                data = os.pread(fd, min(COPY_BLOCK, end - offset), offset)
                if not data:
                    break
                if data != zeros[: len(data)]:
                    image.write(data, offset)
                offset += len(data)
    finally:
        os.close(fd)
