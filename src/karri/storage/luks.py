"""Volumes encrypted at rest: qcow2 files with LUKS encryption (format ``qcow2-luks``).

``qemu-img create -f qcow2 -o encrypt.format=luks`` writes a qcow2 file whose LUKS header
holds the volume's own master key, wrapped by the passphrase the cloud keeps per account;
each data cluster is AES-256-XTS with plain64 IVs. QEMU opens it with the ``qcow2`` driver
and ``encrypt.key-secret`` naming a ``secret`` object that holds the passphrase. The
passphrase never appears on a command line (``/proc/*/cmdline`` is world-readable):
``qemu-img`` reads it from a pipe, a guest's QEMU over QMP or from a 0600 file.

Why qcow2 rather than a raw LUKS file: a cluster never written is unallocated, so it reads
as zeros, as a new EBS volume does (a raw LUKS file's holes decrypt to noise), and it still
costs no space. The qcow2 metadata (header, tables) is plaintext; the data is not. A
snapshot of the file is its ciphertext, so a volume restored from it opens with the same
passphrase. The virtual size lives in the header: growing needs the passphrase
(``grow``), reading it does not (``virtual_size``).

Legacy: volumes made before this were raw LUKS files (format ``luks``, ``*.luks``); they
are kept as they are (converting one would allocate all of it, as its holes read as
noise) and still open, grow, snapshot and restore as raw LUKS (``payload_offset``).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

FORMAT = "qcow2-luks"
LEGACY_FORMAT = "luks"
MAGIC = b"QFI\xfb"
LEGACY_MAGIC = b"LUKS\xba\xbe"
SECTOR = 512
HEADER = 48  # qcow2: magic, version, backing file offset/size, cluster bits, size, crypt
_CRYPT_LUKS = 2
_PAYLOAD_OFFSET = slice(104, 108)  # LUKS1: the payload's start, in sectors, big-endian
# The passphrase is a random 256-bit key: PBKDF2 hardening adds nothing, so keep opens fast
CREATE_OPTIONS = ",".join(
    f"encrypt.{option}"
    for option in (
        "format=luks",
        "key-secret=passphrase",
        "cipher-alg=aes-256",
        "cipher-mode=xts",
        "ivgen-alg=plain64",
        "hash-alg=sha256",
        "iter-time=10",
    )
)
SECRET = "passphrase"


class LuksError(Exception):
    """qemu-img could not make or grow the file, or a file is not what it should be."""


# qemu-img times PBKDF2 by CPU time first, and gives up when a round took no measurable
# time ("Unable to get accurate CPU usage"): seen now and then; tried again
TRIES = 5
PBKDF_TIMING_FLAKE = "accurate CPU usage"


def blockdev(where: Path | str | dict[str, object], secret_id: str) -> dict[str, object]:
    """QEMU's options opening the encrypted qcow2 file ``where`` (a path, or a protocol
    node: an RBD image's) with the secret object ``secret_id``: never a backing file,
    whatever the header says (the node opens guests' disks alike: ``karri.node.disks``)."""
    file = where if isinstance(where, dict) else {"driver": "file", "filename": str(where)}
    return {
        "driver": "qcow2",
        "encrypt": {"format": "luks", "key-secret": secret_id},
        "backing": None,
        "file": file,
    }


def create(path: Path, size: int, passphrase: bytes) -> None:
    """Write an encrypted qcow2 file at ``path`` (replaced) of virtual size ``size``."""
    command = ["create", "-q", "-f", "qcow2", "-o", CREATE_OPTIONS, str(path), str(size)]
    for _ in range(TRIES):
        error = _qemu_img(command, passphrase)
        if error is None:
            return
        if PBKDF_TIMING_FLAKE not in error:
            break
    raise LuksError(f"qemu-img create failed: {error[:500]}")


def grow(path: Path, size: int, passphrase: bytes) -> None:
    """Grow the encrypted qcow2 file ``path`` to virtual size ``size`` (never shrinks)."""
    if virtual_size(path) < size:
        resize(path, size, passphrase)


def resize(where: Path | dict[str, object], size: int, passphrase: bytes) -> None:
    """Set the virtual size of the encrypted qcow2 file ``where`` (a path, or a protocol
    node) to ``size``: the caller checked that it grows."""
    image = f"json:{json.dumps(blockdev(where, SECRET))}"
    error = _qemu_img(["resize", "-q", image, str(size)], passphrase)
    if error is not None:
        raise LuksError(f"qemu-img resize failed: {error[:500]}")


def _qemu_img(args: list[str], passphrase: bytes) -> str | None:
    """Run ``qemu-img`` with the secret object ``passphrase`` read from a pipe; its
    complaint, or None once done."""
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, passphrase)  # a passphrase is far smaller than a pipe's buffer
        os.close(write_end)
        write_end = -1
        result = subprocess.run(
            [
                "qemu-img",
                args[0],
                "--object",
                f"secret,id={SECRET},file=/dev/fd/{read_end}",
                *args[1:],
            ],
            pass_fds=(read_end,),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
    return (result.stderr.strip() or "failed") if result.returncode != 0 else None


def virtual_size(path: Path) -> int:
    """The volume's size, from the qcow2 header of ``path`` (checked: ``check_header``)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return check_header(fd)
    finally:
        os.close(fd)


def check_header(fd: int) -> int:
    """The virtual size of the encrypted qcow2 file open as ``fd`` (``header_size``)."""
    return header_size(os.pread(fd, HEADER, 0))


def header_size(header: bytes) -> int:
    """The virtual size in an encrypted qcow2 file's first ``HEADER`` bytes; LuksError
    unless it is one karri makes: qcow2 version 3, LUKS-encrypted, without a backing file."""
    if len(header) < HEADER or not header.startswith(MAGIC):
        raise LuksError("not a qcow2 file")
    version = int.from_bytes(header[4:8], "big")
    backing = int.from_bytes(header[8:16], "big")
    crypt = int.from_bytes(header[32:36], "big")
    if version != 3 or backing != 0 or crypt != _CRYPT_LUKS:
        raise LuksError("not an encrypted volume's qcow2 file")
    return int.from_bytes(header[24:32], "big")


def payload_offset(fd: int) -> int:
    """Where the payload starts in the legacy raw LUKS file open as ``fd``."""
    header = os.pread(fd, _PAYLOAD_OFFSET.stop, 0)
    if len(header) < _PAYLOAD_OFFSET.stop or not header.startswith(LEGACY_MAGIC):
        raise LuksError("not a LUKS file")
    return int.from_bytes(header[_PAYLOAD_OFFSET], "big") * SECTOR


def legacy_header_size(path: Path) -> int:
    fd = os.open(path, os.O_RDONLY)
    try:
        return payload_offset(fd)
    finally:
        os.close(fd)
