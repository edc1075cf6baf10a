"""The EBS worker: the slow half of every volume and snapshot call, resumed after a crash.

The API records intent (a volume ``creating`` or ``deleting``, a snapshot ``pending`` or
``deleting``); the worker is what ``karri.cloud.converge`` needs to know of EBS: which
rows to scan for, and the job that moves each one on. The engine runs them (one job per
resource at a time, on a small thread pool, backing off what fails). Every job is
idempotent, so a job cut short by a crash, even SIGKILL, is simply run again after the
restart:

- a volume is written under a temporary name and renamed into place before its row says
  ``available``; a half-written one is thrown away and written again;
- a snapshot first gets its checkpoint (the volume's point-in-time copy), then is
  streamed from it into Walrus, whose writes are atomic; only then is it ``completed``.
  A volume is not deleted while one of its pending snapshots still needs its checkpoint,
  and a snapshot's object is not deleted while a volume is being created from it.

When a job cannot succeed (a checkpoint lost to a host reboot, a corrupt stream), the
volume or snapshot goes to ``error`` with the reason; nothing else is touched.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Protocol

from sqlalchemy import delete, select, update

from karri.cloud.converge import SCAN_SECONDS, Cancelled, Converger, Job, NotYet, ThreadWork
from karri.cloud.instances import states as instance_states
from karri.cloud.instances.models import Instance
from karri.cloud.tags import Tags
from karri.cloud.volumes import endings, states
from karri.cloud.volumes.checkpoints import awaits_checkpoint
from karri.cloud.volumes.exports import SnapshotExports
from karri.cloud.volumes.host import CannotGrow, GuestGone, HostUnavailable, VolumeHost
from karri.cloud.volumes.keys import EbsKeys
from karri.cloud.volumes.models import Snapshot, Volume, VolumeAttachment, VolumeModification
from karri.cloud.volumes.objects import SnapshotObjects
from karri.cloud.volumes.volume_types import Performance, disk_limits, volume_limits
from karri.db.engine import Database
from karri.storage import StorageController, StorageUnavailable

log = logging.getLogger("karri.ebs")

PROGRESS_SECONDS = 0.5
GIB = 1 << 30
OPTIMIZING_FOR = timedelta(seconds=2)  # at least, from the modification's start
# A modification's states (``modifications`` names them for the API too)
MODIFYING, OPTIMIZING, COMPLETED, FAILED = "modifying", "optimizing", "completed", "failed"
# Instances whose guest may be coming or going: a volume of theirs is modified afterwards
_MOVING = (
    instance_states.PENDING,
    instance_states.STOPPING,
    instance_states.SHUTTING_DOWN,
)


class PendingImages(Protocol):
    """The images service: EBS-backed images (CreateImage, ImportImage) wait for their
    snapshots, and the worker settles them."""

    def pending_ebs(self) -> dict[str, set[str]]: ...
    def settle_ebs(self, image_id: str, state: str, reason: str | None = None) -> None: ...


class EbsWorker:
    def __init__(
        self,
        db: Database,
        storage: StorageController,
        objects: SnapshotObjects,
        tags: Tags,
        keys: EbsKeys,
        *,
        wakeup: threading.Event,
        images: PendingImages,
        resume_captures: Callable[[], None],
        threads: int = 4,
    ) -> None:
        """``wakeup`` is set by every EBS call that leaves work (built first, so the
        services can be given ``wakeup.set`` before the worker exists);
        ``resume_captures`` carries out CreateImage's restarts at each scan."""
        self.db = db
        self.storage = storage
        self.objects = objects
        self.exports = SnapshotExports(db, storage, objects)
        self.tags = tags
        self.keys = keys
        self.host: VolumeHost | None = None  # set once the node is up (Ebs.use_host)
        self.images = images
        self.resume_captures = resume_captures
        # One job per volume or snapshot; a host gone away interrupts it (tried later)
        self._jobs = Converger(
            log,
            "ebs",
            scan=self._scan,
            every=SCAN_SECONDS,
            threads=threads,
            wakeup=wakeup,
            interrupted=(HostUnavailable, StorageUnavailable),
        )

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        self.objects.ensure_bucket()
        try:
            removed = self.storage.sweep()
            if removed:
                log.warning("ebs: removed %d temporary files left by a crash", removed)
            self._report_orphans()
        except StorageUnavailable as error:  # the jobs wait for it; the API serves on
            log.warning("ebs: the volumes' storage cannot be reached: %s", error)
        self._jobs.start()

    def stop(self) -> None:
        """Stop scanning and cancel running jobs; they resume at the next start."""
        self._jobs.stop()

    def wake(self) -> None:
        self._jobs.wake()

    def _report_orphans(self) -> None:
        """Volume files without a row are kept (never lose a volume) but reported;
        checkpoints no snapshot needs are dropped (completed snapshots keep theirs where
        the backend keeps checkpoints: volumes are cloned from them)."""
        wanted = Snapshot.state == states.PENDING
        if self.storage.keeps_checkpoints:
            wanted = wanted | (Snapshot.state == states.COMPLETED)
        with self.db.session() as session:
            known = set(session.scalars(select(Volume.id)))
            needed = set(session.scalars(select(Snapshot.id).where(wanted)))
        for volume_id in sorted(self.storage.volume_ids() - known):
            log.warning("ebs: volume file %s has no volume record; kept", volume_id)
        for snapshot_id in self.storage.checkpoint_ids() - needed:
            self.storage.drop_checkpoint(snapshot_id)

    # -- what to scan ------------------------------------------------------------------------

    def _scan(self) -> Iterator[Job[ThreadWork]]:
        """A job for every volume, attachment and snapshot not yet as its row asks (and
        the images and CreateImage restarts that wait on them, in between)."""
        with self.db.session() as session:
            volumes = list(
                session.execute(
                    select(Volume.id, Volume.state).where(
                        Volume.state.in_((states.CREATING, states.DELETING))
                    )
                )
            )
            snapshots = list(
                session.execute(
                    select(Snapshot.id, Snapshot.state).where(
                        Snapshot.state.in_((states.PENDING, states.SNAPSHOT_DELETING))
                    )
                )
            )
            modifications = list(
                session.execute(
                    select(VolumeModification.volume_id, VolumeModification.state).where(
                        VolumeModification.state.in_((MODIFYING, OPTIMIZING))
                    )
                )
            )
            attachments = list(
                session.execute(
                    select(VolumeAttachment.volume_id, VolumeAttachment.state, Instance.state)
                    .outerjoin(Instance, Instance.id == VolumeAttachment.instance_id)
                    .where(
                        VolumeAttachment.state.in_((states.ATTACHING, states.DETACHING))
                        | Instance.state.is_(None)
                        | (Instance.state == instance_states.TERMINATED)
                    )
                )
            )
        for volume_id, state in volumes:
            yield _job(
                volume_id, self._create_volume if state == states.CREATING else self._delete_volume
            )
        self._settle_images()
        for volume_id, state, instance_state in attachments:
            if instance_state in (None, instance_states.TERMINATED):
                yield _job(volume_id, self._release)
            elif state == states.ATTACHING:
                yield _job(volume_id, self._attach)
            else:
                yield _job(volume_id, self._detach)
        for volume_id, state in modifications:
            yield _job(volume_id, self._modify if state == MODIFYING else self._optimized)
        for snapshot_id, state in snapshots:
            if state == states.SNAPSHOT_DELETING:
                self._jobs.cancel(snapshot_id)  # a copy still under way stops
                yield _job(snapshot_id, self._delete_snapshot)
            else:
                yield _job(snapshot_id, self._snapshot)
        self.resume_captures()

    @staticmethod
    def _check(cancel: threading.Event) -> None:
        """Stop a long job once it is cancelled (set too when karri stops)."""
        if cancel.is_set():
            raise Cancelled

    def _settle_images(self) -> None:
        """EBS-backed images from CreateImage become available once all their snapshots
        are complete, or fail with the first that failed."""
        pending = self.images.pending_ebs()
        if not pending:
            return
        wanted = set().union(*pending.values())
        with self.db.session() as session:
            found = dict(
                session.execute(
                    select(Snapshot.id, Snapshot.state).where(Snapshot.id.in_(wanted))
                ).all()
            )
        for image_id, snapshot_ids in pending.items():
            snapshot_states = {found.get(s, states.SNAPSHOT_ERROR) for s in snapshot_ids}
            if snapshot_states <= {states.COMPLETED}:
                self.images.settle_ebs(image_id, "available")
            elif snapshot_states & {states.SNAPSHOT_ERROR, states.SNAPSHOT_DELETING}:
                self.images.settle_ebs(
                    image_id, "failed", "Server.InternalError: a snapshot of the image failed"
                )

    # -- volumes -------------------------------------------------------------------------------

    def _create_volume(self, volume_id: str, cancel: threading.Event) -> None:
        with self.db.session() as session:
            volume = session.get(Volume, volume_id)
            if volume is None or volume.state != states.CREATING:
                return
            size, snapshot_id = volume.size_gib, volume.snapshot_id
            encrypted, account_id = volume.encrypted, volume.account_id
            source = session.get(Snapshot, snapshot_id) if snapshot_id else None
            from_encrypted = source.encrypted if source is not None else encrypted
            # an EBS-backed launch's volume (created attached) stays a clone: no copy at all
            launched = session.get(VolumeAttachment, volume_id) is not None
        started = time.monotonic()
        how = f"restored from {snapshot_id}" if snapshot_id else "new"
        try:
            passphrase = self.keys.passphrase(account_id) if encrypted else None
            # a clone shares the checkpoint's bytes: a plain one's, or an encrypted one's
            # ciphertext (the same key, grown through it); a plain one's encrypted is a copy
            cloned = snapshot_id and encrypted == from_encrypted
            if cloned and self.storage.clone_checkpoint(
                snapshot_id, volume_id, size, flatten=not launched, passphrase=passphrase
            ):
                how = f"a clone of {snapshot_id}"  # its kept checkpoint (RBD): nothing copied
            elif snapshot_id:  # an encrypted snapshot's ciphertext stays as it is
                with self.objects.open(snapshot_id) as (reader, _length):
                    self.storage.create_from(
                        volume_id,
                        reader,
                        size,
                        lambda _done: self._check(cancel),
                        encrypted=from_encrypted,  # a plain one's is encrypted with the key
                        passphrase=passphrase,
                    )
            else:
                self.storage.create(volume_id, size, passphrase)
        except (Cancelled, StorageUnavailable):
            raise
        except Exception as error:
            log.exception("ebs: creating %s failed", volume_id)
            self._set_volume(volume_id, states.ERROR, f"{type(error).__name__}: {error}")
            return
        if not self._set_volume(volume_id, states.AVAILABLE, None):
            # deleted while it was being created: the delete job removes the file
            return
        log.info("ebs: %s available in %.2fs (%s)", volume_id, time.monotonic() - started, how)

    def _set_volume(self, volume_id: str, state: str, message: str | None) -> bool:
        with self.db.write_session() as session:
            result = session.execute(
                update(Volume)
                .where(Volume.id == volume_id, Volume.state == states.CREATING)
                .values(state=state, state_message=message)
            )
            return result.rowcount == 1

    def _delete_volume(self, volume_id: str, _cancel: threading.Event) -> None:
        with self.db.session() as session:
            if awaits_checkpoint(session, volume_id):
                return  # the snapshot's job wakes us once its checkpoint exists
        self.storage.delete(volume_id)
        with self.db.write_session() as session:
            volume = session.get(Volume, volume_id)
            if volume is not None and volume.state == states.DELETING:
                self.tags.forget(session, [volume_id])
                session.delete(volume)
        log.info("ebs: %s deleted", volume_id)

    # -- attachments -----------------------------------------------------------------------------

    @staticmethod
    def _in_guest(host: VolumeHost | None, instance_id: str, volume_id: str, root: bool) -> bool:
        """Whether the running guest has the volume: hot-plugged, or booted from it (the
        root volume of an EBS-backed instance is the guest's first disk, never hot-plugged).
        """
        if host is None or not host.running(instance_id):
            return False
        return root or volume_id in host.attached(instance_id)

    def _attach(self, volume_id: str, _cancel: threading.Event) -> None:
        """``attaching`` → ``attached``: hot-plugged into a running guest, or simply recorded
        for a stopped one (its next start boots with it)."""
        with self.db.session() as session:
            attachment = session.get(VolumeAttachment, volume_id)
            volume = session.get(Volume, volume_id)
            if attachment is None or attachment.state != states.ATTACHING or volume is None:
                return
            if volume.state != states.AVAILABLE or awaits_checkpoint(session, volume_id):
                return  # created or copied first; woken when that is done
            instance = session.get(Instance, attachment.instance_id)
            instance_id = attachment.instance_id
            instance_state = instance.state if instance else instance_states.TERMINATED
            root = instance is not None and attachment.device == instance.root_device_name
            limits = volume_limits(volume)
            encrypted, account_id = volume.encrypted, volume.account_id
        secret = self.keys.passphrase(account_id).decode() if encrypted else None
        host = self.host
        if host is not None and host.running(instance_id):
            if not self._in_guest(host, instance_id, volume_id, root):
                try:
                    target = self.storage.target(volume_id)
                    host.attach(instance_id, volume_id, target, limits, secret)
                except HostUnavailable:
                    raise
                except GuestGone:  # terminated meanwhile: the attachment goes with it
                    log.info("ebs: %s ended before %s could be attached", instance_id, volume_id)
                    self._drop_attachment(volume_id, states.ATTACHING)
                    return
                except Exception:
                    log.exception("ebs: attaching %s to %s failed", volume_id, instance_id)
                    self._drop_attachment(volume_id, states.ATTACHING)
                    return
        elif instance_state != instance_states.STOPPED:
            return  # starting or stopping: try again at the next scan
        with self.db.write_session() as session:
            session.execute(
                update(VolumeAttachment)
                .where(
                    VolumeAttachment.volume_id == volume_id,
                    VolumeAttachment.state == states.ATTACHING,
                )
                .values(state=states.ATTACHED)
            )
        log.info("ebs: %s attached to %s", volume_id, instance_id)

    def _detach(self, volume_id: str, _cancel: threading.Event) -> None:
        with self.db.session() as session:
            attachment = session.get(VolumeAttachment, volume_id)
            if attachment is None or attachment.state != states.DETACHING:
                return
            if awaits_checkpoint(session, volume_id):
                return  # a snapshot is being copied out of the guest first
            instance_id, force = attachment.instance_id, attachment.force
        host = self.host
        if self._in_guest(host, instance_id, volume_id, root=False):
            assert host is not None
            if not host.detach(instance_id, volume_id, force):
                return  # the guest has not let go: still detaching, asked again later
        elif host is None:
            with self.db.session() as session:
                instance = session.get(Instance, instance_id)
                if instance is not None and instance.state not in (
                    instance_states.STOPPED,
                    instance_states.TERMINATED,
                ):
                    return  # the node is not up yet: it may still hold the volume
        self._drop_attachment(volume_id, states.DETACHING)
        log.info("ebs: %s detached from %s", volume_id, instance_id)

    def _release(self, volume_id: str, _cancel: threading.Event) -> None:
        """An attachment of a terminated instance that its termination did not release
        (written before it did, or its instance row gone): ``endings.release``."""
        with self.db.write_session() as session:
            attachment = session.get(VolumeAttachment, volume_id)
            if attachment is None:
                return
            delete_too = endings.release(session, attachment)
        log.info(
            "ebs: %s released by a terminated instance (%s)",
            volume_id,
            "deleting" if delete_too else "kept",
        )

    def _drop_attachment(self, volume_id: str, state: str) -> None:
        with self.db.write_session() as session:
            session.execute(
                delete(VolumeAttachment).where(
                    VolumeAttachment.volume_id == volume_id, VolumeAttachment.state == state
                )
            )

    # -- modifications (ModifyVolume) ----------------------------------------------------------

    def _modify(self, volume_id: str, _cancel: threading.Event) -> None:
        """``modifying`` → ``optimizing``: the volume grown (by QEMU while a guest has it,
        so the guest sees its new size) and its guest's limits changed; then its row
        takes the new configuration."""
        with self.db.session() as session:
            modification = latest_modification(session, volume_id)
            volume = session.get(Volume, volume_id)
            if modification is None or modification.state != MODIFYING or volume is None:
                return
            if volume.state != states.AVAILABLE or awaits_checkpoint(session, volume_id):
                raise NotYet  # a snapshot's point-in-time copy is taken first
            attachment = session.get(VolumeAttachment, volume_id)
            instance = session.get(Instance, attachment.instance_id) if attachment else None
            if instance is not None and instance.state in _MOVING:
                raise NotYet  # its guest is starting or stopping: wait until it is settled
            root = instance is not None and attachment.device == instance.root_device_name
            instance_id = attachment.instance_id if attachment else None
            running = instance is not None and instance.state == instance_states.RUNNING
            target = Performance(
                modification.target_type,
                modification.target_size,
                modification.target_iops,
                modification.target_throughput,
            )
            grow = target.size_gib > volume.size_gib
            encrypted, account_id = volume.encrypted, volume.account_id
        host = self.host
        try:
            in_guest = bool(instance_id) and self._in_guest(host, instance_id, volume_id, root)
            if running and not in_guest:
                raise NotYet  # the node is not up, or the volume is still being plugged in
            if in_guest:
                assert host is not None and instance_id is not None
                if grow:
                    host.resize(instance_id, volume_id, target.size_gib * GIB)
                host.throttle(instance_id, volume_id, disk_limits(target))
            elif grow:  # an encrypted volume's size is in its (qcow2) file: opened to grow
                passphrase = self.keys.passphrase(account_id) if encrypted else None
                self.storage.resize(volume_id, target.size_gib, passphrase)
        except NotYet:
            raise
        except (HostUnavailable, GuestGone):
            raise NotYet from None  # tried again once the node or the instance has settled
        except CannotGrow as error:  # nothing changed: modified again once it can grow
            log.warning("ebs: modifying %s failed: %s", volume_id, error)
            self._end_modification(volume_id, FAILED, str(error))
            return
        except Exception as error:
            log.exception("ebs: modifying %s failed", volume_id)
            self._end_modification(volume_id, FAILED, f"{type(error).__name__}: {error}")
            return
        with self.db.write_session() as session:
            session.execute(
                update(Volume)
                .where(Volume.id == volume_id)
                .values(
                    size_gib=target.size_gib,
                    volume_type=target.volume_type,
                    iops=target.iops,
                    throughput=target.throughput,
                )
            )
            session.execute(
                update(VolumeModification)
                .where(
                    VolumeModification.volume_id == volume_id,
                    VolumeModification.state == MODIFYING,
                )
                .values(state=OPTIMIZING, progress=50)
            )
        log.info("ebs: %s modified to %s", volume_id, target)

    def _optimized(self, volume_id: str, _cancel: threading.Event) -> None:
        """``optimizing`` → ``completed``: nothing is left to move here, but a client
        polling the modification sees it optimize for a moment, as on AWS."""
        with self.db.session() as session:
            modification = latest_modification(session, volume_id)
            started = modification.start_time if modification else None
        if started is not None and datetime.now(UTC) - started < OPTIMIZING_FOR:
            raise NotYet
        self._end_modification(volume_id, COMPLETED, None)

    def _end_modification(self, volume_id: str, state: str, message: str | None) -> None:
        with self.db.write_session() as session:
            session.execute(
                update(VolumeModification)
                .where(
                    VolumeModification.volume_id == volume_id,
                    VolumeModification.state.in_((MODIFYING, OPTIMIZING)),
                )
                .values(
                    state=state,
                    status_message=message,
                    progress=100 if state == COMPLETED else 0,
                    end_time=datetime.now(UTC),
                )
            )

    # -- snapshots -------------------------------------------------------------------------------

    def _snapshot(self, snapshot_id: str, cancel: threading.Event) -> None:
        with self.db.session() as session:
            snapshot = session.get(Snapshot, snapshot_id)
            if snapshot is None or snapshot.state != states.PENDING:
                return
            volume_id, source_id = snapshot.volume_id, snapshot.source_snapshot_id
            checkpointed, account_id = snapshot.checkpointed, snapshot.account_id
            source = session.get(Snapshot, source_id) if source_id else None
            encrypts = source is not None and snapshot.encrypted and not source.encrypted
        started = time.monotonic()
        try:
            if source_id and not encrypts:
                stored = self._copy(snapshot_id, source_id, cancel)
            else:
                if encrypts:  # a plain snapshot's copy is encrypted into its checkpoint
                    assert source_id is not None
                    if not self.storage.has_checkpoint(snapshot_id):
                        self._encrypt_copy(snapshot_id, source_id, account_id, cancel)
                elif not checkpointed:
                    self._checkpoint(snapshot_id, volume_id)
                elif not self.storage.has_checkpoint(snapshot_id):
                    raise RuntimeError(
                        "the volume's point-in-time copy was lost (the host restarted)"
                    )
                stored = self.exports.upload(
                    snapshot_id,
                    volume_id,
                    lambda stream: self._progress(snapshot_id, stream, stream.length, cancel),
                )
        except (Cancelled, HostUnavailable, NotYet, StorageUnavailable):
            raise
        except Exception as error:
            log.exception("ebs: snapshot %s failed", snapshot_id)
            self._finish(snapshot_id, states.SNAPSHOT_ERROR, f"{type(error).__name__}: {error}")
            return
        self._finish(snapshot_id, states.COMPLETED, None, stored)
        elapsed = time.monotonic() - started
        log.info("ebs: %s completed: %d bytes in %.2fs", snapshot_id, stored, elapsed)

    def _checkpoint(self, snapshot_id: str, volume_id: str) -> None:
        """The volume's point-in-time copy: through QEMU while a guest has it plugged in
        (a backup job, consistent while the guest writes), else a copy of its file."""
        with self.db.session() as session:
            volume = session.get(Volume, volume_id)
            if volume is None or volume.state not in (states.AVAILABLE, states.DELETING):
                raise RuntimeError(f"the volume {volume_id} can no longer be read")
            attachment = session.get(VolumeAttachment, volume_id)
            instance = session.get(Instance, attachment.instance_id) if attachment else None
            root = instance is not None and attachment.device == instance.root_device_name
            instance_id, size = attachment.instance_id if attachment else None, volume.size_gib
            encrypted, account_id = volume.encrypted, volume.account_id
            if instance is not None and instance.state == instance_states.STOPPING:
                raise NotYet  # CreateImage stops the guest first: copy what it left on disk
        host = self.host
        live = self.storage.live_checkpoints  # consistent while the guest writes (RBD)
        if not live and instance_id and self._in_guest(host, instance_id, volume_id, root):
            assert host is not None
            # an encrypted volume's copy is encrypted too (its own LUKS header, same key)
            passphrase = self.keys.passphrase(account_id) if encrypted else None
            target = self.storage.checkpoint_target(snapshot_id, size, passphrase)
            log.info("ebs: %s: copying %s out of %s's guest", snapshot_id, volume_id, instance_id)
            host.backup(instance_id, volume_id, target, passphrase.decode() if passphrase else None)
            self.storage.seal_checkpoint(snapshot_id)
        else:
            self.storage.checkpoint(volume_id, snapshot_id)
        with self.db.write_session() as session:
            session.execute(
                update(Snapshot).where(Snapshot.id == snapshot_id).values(checkpointed=True)
            )
        self.wake()  # a DeleteVolume may have waited for this copy

    def _encrypt_copy(
        self, snapshot_id: str, source_id: str, account_id: str, cancel: threading.Event
    ) -> None:
        with self.objects.open(source_id) as (reader, _length):
            self.storage.encrypted_checkpoint(
                snapshot_id,
                reader,
                self.keys.passphrase(account_id),
                lambda _done: self._check(cancel),
            )

    def _copy(self, snapshot_id: str, source_id: str, cancel: threading.Event) -> int:
        with self.objects.open(source_id) as (reader, length):
            chunks = iter(lambda: reader.read(1 << 20), b"")
            return self.objects.put(
                snapshot_id,
                self._progress(snapshot_id, chunks, length, cancel),
                {"copied-from": source_id},
            )

    def _progress(
        self, snapshot_id: str, chunks: Iterable[bytes], total: int, cancel: threading.Event
    ) -> Iterator[bytes]:
        """Pass the chunks on, writing the percentage done to the row now and then."""
        done, shown, last = 0, 0, time.monotonic()
        for chunk in chunks:
            self._check(cancel)
            yield chunk
            done += len(chunk)
            percent = min(99, done * 100 // max(total, 1))
            if percent != shown and time.monotonic() - last >= PROGRESS_SECONDS:
                shown, last = percent, time.monotonic()
                with self.db.write_session() as session:
                    session.execute(
                        update(Snapshot)
                        .where(Snapshot.id == snapshot_id, Snapshot.state == states.PENDING)
                        .values(progress=percent)
                    )
        self._check(cancel)

    def _finish(
        self, snapshot_id: str, state: str, message: str | None, stored: int | None = None
    ) -> None:
        with self.db.write_session() as session:
            values: dict = {"state": state, "state_message": message}
            if state == states.COMPLETED:
                values |= {
                    "progress": 100,
                    "stored_bytes": stored,
                    "completed_at": datetime.now(UTC),
                }
            session.execute(
                update(Snapshot)
                .where(Snapshot.id == snapshot_id, Snapshot.state == states.PENDING)
                .values(**values)
            )
        # kept where the backend keeps checkpoints: volumes are cloned from it
        if state != states.COMPLETED or not self.storage.keeps_checkpoints:
            self.storage.drop_checkpoint(snapshot_id)

    def _delete_snapshot(self, snapshot_id: str, _cancel: threading.Event) -> None:
        with self.db.session() as session:
            restoring = session.scalar(
                select(Volume.id)
                .where(Volume.snapshot_id == snapshot_id, Volume.state == states.CREATING)
                .limit(1)
            )
            copying = session.scalar(
                select(Snapshot.id)
                .where(Snapshot.source_snapshot_id == snapshot_id, Snapshot.state == states.PENDING)
                .limit(1)
            )
            needed = self.exports.needed(session, snapshot_id)
        if restoring or copying:
            return  # woken again when that job ends
        self.storage.drop_checkpoint(snapshot_id)
        if needed:
            # a later diff is laid over its object: kept (its row hidden, ``deleting``)
            # until that snapshot goes too, whose deletion wakes this job
            log.debug("ebs: %s's object kept: a diff needs it", snapshot_id)
            return
        self.objects.delete(snapshot_id)
        with self.db.write_session() as session:
            snapshot = session.get(Snapshot, snapshot_id)
            base = snapshot.base_snapshot_id if snapshot is not None else None
            session.execute(
                delete(Snapshot).where(
                    Snapshot.id == snapshot_id, Snapshot.state == states.SNAPSHOT_DELETING
                )
            )
            self.tags.forget(session, [snapshot_id])
        if base is not None:
            self.wake()  # its base, if deleted, may be needed no more
        log.info("ebs: %s deleted", snapshot_id)


def latest_modification(session, volume_id: str) -> VolumeModification | None:
    return session.scalar(
        select(VolumeModification)
        .where(VolumeModification.volume_id == volume_id)
        .order_by(VolumeModification.id.desc())
        .limit(1)
    )


def _job(resource_id: str, work: Callable[[str, threading.Event], None]) -> Job[ThreadWork]:
    """The job ``work`` does on the resource: its failures back off per resource and job."""
    return Job(resource_id, partial(work, resource_id), step=work.__name__.lstrip("_"))
