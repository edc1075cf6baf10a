"""NBD from a guest's namespace to the cloud: a relay on a unix socket (issue 19).

A guest's QEMU runs in its VPC's network namespace, which has no route to the storage
controller's host (and on one host its 127.0.0.1 is the namespace's own). A unix socket
is a file, reachable from every namespace: the node serves one per volume exported to it
(``<node>/nbd/<volume>.sock``) and passes its bytes on, over the host's own network, to the
export's address. TLS stays end to end, between QEMU and the export (the relay sees only
ciphertext). The relay is a process of its own (``python -m karri.node.nbdrelay SOCKET
HOST PORT``, in a session of its own): like the guest, it outlives `karri node`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

from karri.node.errors import VolumeError
from karri.node.spec import NbdTarget, VolumeTarget
from karri.pidfiles import running_pid

START_TIMEOUT = 10.0
CHUNK = 256 * 1024


class NbdRelays:
    """The relays of one node's volumes, under ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._children: dict[str, subprocess.Popen] = {}  # started here: reaped at their end

    def local(self, volume_id: str, target: VolumeTarget) -> VolumeTarget:
        """``target`` as the guest's QEMU reaches it: an NBD export through its relay
        (started if needed); anything else as it is."""
        if not isinstance(target, NbdTarget) or target.url.startswith("nbd+unix:"):
            return target
        url = urlsplit(target.url)
        if url.scheme != "nbd" or not url.hostname or not url.port:
            raise VolumeError(f"{volume_id}: not an NBD URL: {target.url!r}")
        socket_path = self._start(volume_id, url.hostname, url.port)
        export = quote(url.path.lstrip("/"))
        return NbdTarget(f"nbd+unix:///{export}?socket={socket_path}", target.tls_hostname)

    def _start(self, volume_id: str, host: str, port: int) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        sock, upstream = self._socket(volume_id), self._upstream(volume_id)
        wanted = f"{host} {port}"
        if self._pid(volume_id) and upstream.exists() and upstream.read_text() == wanted:
            return sock
        self.end(volume_id)
        process = subprocess.Popen(
            [sys.executable, "-m", "karri.node.nbdrelay", str(sock), host, str(port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not sock.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise VolumeError(f"{volume_id}: the NBD relay did not start")
            time.sleep(0.02)
        self._children[volume_id] = process
        self._pid_file(volume_id).write_text(str(process.pid))
        upstream.write_text(wanted)
        return sock

    def end(self, volume_id: str) -> None:
        """Stop the volume's relay (nothing if there is none)."""
        pid = self._pid(volume_id)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        child = self._children.pop(volume_id, None)
        if child is not None:
            try:
                child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        for path in (self._socket(volume_id), self._pid_file(volume_id), self._upstream(volume_id)):
            path.unlink(missing_ok=True)

    def _socket(self, volume_id: str) -> Path:
        return self.directory / f"{volume_id}.sock"

    def _pid_file(self, volume_id: str) -> Path:
        return self.directory / f"{volume_id}.pid"

    def _upstream(self, volume_id: str) -> Path:
        return self.directory / f"{volume_id}.upstream"

    def _pid(self, volume_id: str) -> int | None:
        """The volume's relay, if it runs (its command line names its socket)."""
        return running_pid(self._pid_file(volume_id), str(self._socket(volume_id)))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def serve(socket_path: Path, host: str, port: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    socket_path.unlink(missing_ok=True)
    server = await asyncio.start_unix_server(handle, path=str(socket_path))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.close)
    async with server:
        with contextlib.suppress(asyncio.CancelledError):
            await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])))
