"""Writing a volume's plaintext into an encrypted volume file (``karri.storage.luks``)
without a plaintext file anywhere: ``qemu-storage-daemon`` opens the file with its
passphrase (read from a pipe) and exports the decrypted view over NBD on a unix socket in
a private (0700) directory; a minimal NBD client (fixed newstyle handshake, WRITE, FLUSH,
DISC) sends the blocks, which QEMU encrypts on their way to the file (all-zero blocks stay
unallocated: ``detect-zeroes``)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from karri.storage import luks, sparse
from karri.storage.interface import Readable

_OPTS_MAGIC = 0x49484156454F5054  # "IHAVEOPT"
_REQUEST = struct.Struct(">IHHQQI")
_REQUEST_MAGIC = 0x25609513
_REPLY = struct.Struct(">IIQ")
_REPLY_MAGIC = 0x67446698
_OPT_EXPORT_NAME = 1
_CMD_WRITE, _CMD_DISC, _CMD_FLUSH = 1, 2, 3
_FLAG_FIXED_NEWSTYLE, _FLAG_NO_ZEROES = 1, 2
EXPORT = "volume"
START_TIMEOUT = 30.0

Write = Callable[[bytes, int], None]


class NbdError(Exception):
    """The daemon did not start, or the NBD server refused a request."""


@contextlib.contextmanager
def encrypted_writer(where: Path | dict[str, object], passphrase: bytes) -> Iterator[Write]:
    """``write(data, offset)`` into the volume held by the encrypted qcow2 file ``where``
    (a path, or a protocol node: an RBD image's); flushed and closed at the end of the
    block."""
    with tempfile.TemporaryDirectory(prefix="karri-nbd-") as private:  # mode 0700
        sock_path = os.path.join(private, "nbd.sock")
        read_end, write_end = os.pipe()
        os.write(write_end, passphrase)
        os.close(write_end)
        blockdev = luks.blockdev(where, "sec0") | {
            "node-name": "vol",
            "discard": "unmap",
            "detect-zeroes": "unmap",
        }
        try:
            daemon = subprocess.Popen(
                [
                    "qemu-storage-daemon",
                    "--object",
                    f"secret,id=sec0,file=/dev/fd/{read_end}",
                    "--blockdev",
                    json.dumps(blockdev),
                    "--nbd-server",
                    f"addr.type=unix,addr.path={sock_path}",
                    "--export",
                    f"type=nbd,id=exp0,node-name=vol,name={EXPORT},writable=on",
                ],
                pass_fds=(read_end,),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        finally:
            os.close(read_end)
        try:
            conn = _connect(sock_path, daemon)
            try:
                client = _Client(conn)
                yield client.write
                client.flush()
                client.close()
            finally:
                conn.close()
        finally:
            daemon.terminate()
            try:
                daemon.wait(10)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
            if daemon.stderr:
                daemon.stderr.close()


def encrypt_stream(
    where: Path | dict[str, object],
    stream: Readable | BinaryIO,
    virtual: int,
    passphrase: bytes,
    progress: Callable[[int], None] | None,
) -> None:
    """A plain snapshot stream's blocks (its header read) into the encrypted qcow2 file
    ``where``, encrypted by QEMU on their way in: no plaintext file, not even a temporary
    one."""
    with encrypted_writer(where, passphrase) as write:
        sparse.decode_into(stream.read, write, virtual, progress)


def _connect(sock_path: str, daemon: subprocess.Popen) -> socket.socket:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if daemon.poll() is not None:
            err = daemon.stderr.read().decode(errors="replace") if daemon.stderr else ""
            raise NbdError(f"qemu-storage-daemon failed: {err.strip()[:500]}")
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(sock_path)
            return conn
        except OSError:
            conn.close()
            if time.monotonic() > deadline:
                raise NbdError("qemu-storage-daemon did not listen") from None
            time.sleep(0.05)


class _Client:
    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.handle = 0
        magic, opts, flags = struct.unpack(">QQH", self._recv(18))
        if magic != int.from_bytes(b"NBDMAGIC", "big") or opts != _OPTS_MAGIC:
            raise NbdError("not a newstyle NBD server")
        client_flags = _FLAG_FIXED_NEWSTYLE | (flags & _FLAG_NO_ZEROES)
        name = EXPORT.encode()
        conn.sendall(
            struct.pack(">IQII", client_flags, _OPTS_MAGIC, _OPT_EXPORT_NAME, len(name)) + name
        )
        self.size, _transmission = struct.unpack(">QH", self._recv(10))
        if not flags & _FLAG_NO_ZEROES:
            self._recv(124)

    def _recv(self, n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            chunk = self.conn.recv(n - len(data))
            if not chunk:
                raise NbdError("the NBD server closed the connection")
            data += chunk
        return bytes(data)

    def _request(self, kind: int, offset: int = 0, data: bytes = b"", length: int = 0) -> None:
        self.handle += 1
        header = _REQUEST.pack(_REQUEST_MAGIC, 0, kind, self.handle, offset, length or len(data))
        self.conn.sendall(header + data)
        if kind == _CMD_DISC:
            return
        magic, error, handle = _REPLY.unpack(self._recv(_REPLY.size))
        if magic != _REPLY_MAGIC or handle != self.handle or error:
            raise NbdError(f"NBD request {kind} at {offset} failed (error {error})")

    def write(self, data: bytes, offset: int) -> None:
        if offset + len(data) > self.size:
            raise NbdError(f"write past the volume's end at {offset}")
        self._request(_CMD_WRITE, offset, data)

    def flush(self) -> None:
        self._request(_CMD_FLUSH)

    def close(self) -> None:
        self._request(_CMD_DISC)
