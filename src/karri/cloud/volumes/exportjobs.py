"""Block jobs in a volume's export daemon (``storage/nbdexport.py``), over its QMP monitor.

A volume attached to a guest on another host is written by that host's QEMU through the
export; its bytes are here, in the daemon's block node (``nbdexport.NODE``: the volume's
file). A point-in-time copy of it is a ``blockdev-backup`` (sync ``full``) from that node:
copy-before-write, so the copy is the file as it was when the job started while the
remote guest keeps writing through NBD. An encrypted volume's copy is its qcow2 container
as it is, ciphertext with its own LUKS header: never opened as qcow2 a second time (the
guest's QEMU caches its metadata). Like a power cut at that instant, the copy holds what
the guest's QEMU had written by then (crash-consistent, as an AWS snapshot of an attached
volume is).

The daemon cannot grow its node while it is exported (the export holds ``resize``
unshared), and the guest's NBD client keeps the size it connected with: a volume in use
over NBD does not grow (``nodehost.CannotGrow``).

Blocking calls, for the EBS worker's threads: each runs its own event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from karri.node.qmp import EventListener, Qmp, QMPError, unix_connect
from karri.storage import StorageError
from karri.storage.nbdexport import NODE

JOB_ENDS = ("BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED")


def backup(monitor: Path, target: Path, name: str) -> None:
    """Copy the export's node, as it is now, into the file ``target`` (made the node's
    length; its content replaced), as block job ``name``; StorageError if it failed."""
    asyncio.run(_backup(monitor, target, name))


async def _backup(monitor: Path, target: Path, name: str) -> None:
    node, job = f"bak-{name}", f"backup-{name}"
    async with _connected(monitor) as (qmp, events):
        try:
            length = await _length(qmp)
            with open(target, "r+b") as file:  # the checkpoint's file: the copy goes in whole
                file.truncate(0)
                file.truncate(length)
            await qmp.blockdev_add({"driver": "file", "filename": str(target), "node-name": node})
            try:
                await qmp.blockdev_backup(job, NODE, node)
                event, data = await _job_end(events, job)
            finally:
                with contextlib.suppress(QMPError):
                    await qmp.blockdev_del(node)
        except QMPError as error:
            raise StorageError(f"backup of the export: {error}") from error
        if event != "BLOCK_JOB_COMPLETED" or data.get("error"):
            raise StorageError(f"backup of the export: {data.get('error') or event}")


async def _length(qmp: Qmp) -> int:
    length = await qmp.block_node_size(NODE)
    if length is None:
        raise StorageError(f"the export has no node {NODE!r}")
    return length


async def _job_end(events: EventListener, job: str) -> tuple[str, dict]:
    async for event in events:
        data = event.get("data", {})
        if event["event"] in JOB_ENDS and data.get("device") == job:
            return event["event"], data
    raise StorageError("the export's daemon went away during the copy")


@contextlib.asynccontextmanager
async def _connected(monitor: Path):
    try:
        sock = await unix_connect(monitor)
    except (FileNotFoundError, ConnectionRefusedError) as error:
        raise StorageError(f"no monitor for the export ({error.strerror})") from error
    qmp = Qmp(monitor.stem, lambda: True)
    try:
        events = await qmp.connect(sock)
    except QMPError as error:
        sock.close()
        raise StorageError(f"the export's monitor: {error}") from error
    try:
        yield qmp, events
    finally:
        await qmp.disconnect()
