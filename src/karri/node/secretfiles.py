"""Passphrases handed to a starting QEMU as files: ``-object secret,file=…`` reads them
when it parses its command line, so they never show in ``ps``. The files live in a 0700
dir, mode 0600, only until QEMU answers on QMP (it has read them by then)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from karri.node.disks import ENCRYPTED
from karri.node.spec import InstanceSpec, VolumeDisk


@contextlib.contextmanager
def secret_files(directory: Path, secrets: Sequence[tuple[str, str]]) -> Iterator[None]:
    """``directory/<id>`` holding each (id, passphrase) for the duration of the block."""
    if not secrets:
        yield
        return
    shutil.rmtree(directory, ignore_errors=True)  # a crash's leftovers
    directory.mkdir(mode=0o700)
    try:
        for object_id, secret in secrets:
            fd = os.open(directory / object_id, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secret)
        yield
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def with_keys(spec: InstanceSpec, lookup: Callable[[str], str | None]) -> InstanceSpec:
    """``spec`` with each encrypted disk that lacks its passphrase given ``lookup``'s (by
    volume id): a relaunch of a guest adopted after a restart, whose record keeps none."""

    def keyed(disk: VolumeDisk) -> VolumeDisk:
        if disk.format not in ENCRYPTED or disk.secret:
            return disk
        return dataclasses.replace(disk, secret=lookup(disk.volume_id))

    root = keyed(spec.root) if isinstance(spec.root, VolumeDisk) else spec.root
    return dataclasses.replace(spec, root=root, volumes=tuple(map(keyed, spec.volumes)))
