"""NBD from a guest's namespace to the cloud: a relay on a unix socket (issue 19).

A guest's QEMU runs in its VPC's network namespace, which has no route to the storage
controller's host (and on one host its 127.0.0.1 is the namespace's own). A unix socket
is a file, reachable from every namespace: the node serves one per volume exported to it
(``<node>/nbd/<volume>.sock``) and passes its bytes on, over the host's own network, to the
export's address. TLS stays end to end, between QEMU and the export (the relay sees only
ciphertext). The relay is a process of its own (``python -m karri.node.nbdrelay SOCKET
HOST PORT``, in a session of its own): like the guest, it outlives `karri node`. It
splices (``os.splice``): the bytes go socket to pipe to socket inside the kernel.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

from karri.node.errors import VolumeError
from karri.node.spec import NbdTarget, VolumeTarget
from karri.pidfiles import running_pid

START_TIMEOUT = 10.0
CONNECT_TIMEOUT = 10.0
CHUNK = 1024 * 1024  # bytes spliced at once (the pipe's size, where the kernel allows)


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


def _carry(source: socket.socket, target: socket.socket) -> None:
    """``source``'s bytes to ``target`` until ``source`` ends or either fails: spliced
    through a pipe in the kernel, never copied into Python's memory."""
    read_end, write_end = os.pipe()
    try:
        with contextlib.suppress(OSError):  # a pipe of the default size still works
            fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, CHUNK)
        while count := os.splice(source.fileno(), write_end, CHUNK):
            while count:
                count -= os.splice(read_end, target.fileno(), count)
    except OSError:
        pass
    finally:
        os.close(read_end)
        os.close(write_end)


def _relay(client: socket.socket, host: str, port: int) -> None:
    """One NBD connection: both ways until either side ends, then both closed."""
    with client:
        try:
            upstream = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT)
        except OSError:
            return
        with upstream:
            upstream.settimeout(None)
            upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            back = threading.Thread(target=_carry, args=(upstream, client), daemon=True)
            back.start()
            _carry(client, upstream)
            for end in (client, upstream):  # the other direction's splice returns
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
            back.join()


def serve(socket_path: Path, host: str, port: int) -> None:
    """Until SIGTERM (or SIGINT): each connection on ``socket_path`` relayed to
    ``host:port`` on threads of its own."""

    def stop(_signum: int, _frame: object) -> None:
        raise SystemExit(0)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    socket_path.unlink(missing_ok=True)
    bound = socket_path.with_name(f"{socket_path.name}.new")
    bound.unlink(missing_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(bound))
        listener.listen(16)
        # the socket appears where QEMU opens it only once it listens: a connection
        # between bind and listen would be refused (seen under load)
        os.rename(bound, socket_path)
        while True:
            client, _address = listener.accept()
            threading.Thread(target=_relay, args=(client, host, port), daemon=True).start()


if __name__ == "__main__":
    serve(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
