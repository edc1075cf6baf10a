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
_V3_HEADER = 104  # and refcount order, header length (version 3)
_CRYPTO_EXTENSION = 0x0537BE77  # the header extension locating the LUKS header
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


def container_size(path: Path) -> int:
    """The length the encrypted qcow2 file ``path`` reaches at most with every cluster of
    its virtual size written: QEMU's "fully-allocated" size of qcow2 without encryption
    (``qemu-img measure``: measuring with LUKS derives a key, seconds of CPU) plus the file's
    LUKS header, as the ``qemu-img measure`` of the encrypted file says."""
    with open(path, "rb") as f:
        header = f.read(_V3_HEADER)
        virtual = header_size(header)
        cluster = 1 << int.from_bytes(header[20:24], "big")
        refcount_bits = 1 << int.from_bytes(header[96:100], "big")
        f.seek(int.from_bytes(header[100:104], "big"))
        luks_length = _crypto_header_length(f.read(cluster))
    result = subprocess.run(
        [
            "qemu-img", "measure", "--output=json", "-O", "qcow2", "--size", str(virtual),
            "-o", f"cluster_size={cluster},refcount_bits={refcount_bits}",
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise LuksError(f"qemu-img measure failed: {result.stderr.strip()[:500]}")
    luks_clusters = -(-luks_length // cluster)
    return int(json.loads(result.stdout)["fully-allocated"]) + luks_clusters * cluster


def _crypto_header_length(extensions: bytes) -> int:
    """The LUKS header's length, from the qcow2 header extensions ``extensions``."""
    at = 0
    while at + 8 <= len(extensions):
        kind = int.from_bytes(extensions[at : at + 4], "big")
        length = int.from_bytes(extensions[at + 4 : at + 8], "big")
        if kind == 0:
            break
        if kind == _CRYPTO_EXTENSION and length >= 16:
            return int.from_bytes(extensions[at + 16 : at + 24], "big")
        at += 8 + -(-length // 8) * 8
    raise LuksError("an encrypted qcow2 file without its LUKS header extension")


def fit_container(path: Path) -> None:
    """Lengthen the encrypted qcow2 file ``path`` (sparse: no space taken) to its
    ``container_size``, so that a QEMU writing to it through a fixed-size NBD export finds
    room for every cluster: an export's size is the file's length when it starts."""
    size = container_size(path)
    if os.stat(path).st_size < size:
        os.truncate(path, size)


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
