"""KVM or TCG: decided by booting the real guest kernel, not by the presence of /dev/kvm.

A nested host can expose a /dev/kvm that answers ioctls, even runs a boot sector, and
still stops every Linux guest at kernel start (an instruction the nested KVM cannot
emulate: ``KVM internal error``, or a silent hang while QMP says ``running``). So the
probe boots what instances boot, the default guest's kernel and initramfs, under KVM with
the instances' CPU model, and waits for the initramfs to print its marker from userspace
(``karri.probe`` on the command line). A KVM that hangs spins a core for the whole
timeout, so the answer is the host's, not a cloud's: cached in
``/var/cache/karri/accelerator.json`` (else ``~/.cache/karri``) for the host's boot, the
QEMU binary and version and the probe kernel, probed by one cloud at a time (a file lock)
and read by every other; a guest that faults under KVM later (``Node`` notices)
overwrites it with ``tcg``. The probe's QEMU dies with its parent, however that dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import subprocess
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from karri.node.commands import dies_with_us
from karri.node.qemu import accelerator_args
from karri.node.spec import Accelerator

log = logging.getLogger("karri.node")

MARKER = b"karri-probe: userspace reached"
PROBE_CMDLINE = "console=ttyS0 root=none karri.probe panic=-1"
PROBE_MEMORY_MIB = 128


@dataclass(frozen=True)
class ProbeGuest:
    """The kernel and initramfs the probe boots (those of the default guest image)."""

    kernel: Path
    initrd: Path

    @property
    def key(self) -> str:
        """Names this kernel in the cache (its build directory)."""
        return str(self.kernel.parent)


@dataclass(frozen=True)
class Choice:
    accelerator: Accelerator
    reason: str


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def qemu_version(qemu: str) -> str:
    try:
        out = subprocess.run([qemu, "-version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unknown ({exc})"
    return out.stdout.splitlines()[0].strip() if out.stdout else f"unknown ({out.returncode})"


async def boots_with(
    qemu: str, accel: Accelerator, guest: ProbeGuest, timeout: float
) -> tuple[bool, str]:
    """Whether the guest kernel reaches userspace under ``accel`` within ``timeout``, and
    if not, what was seen instead (QEMU's own words, or silence)."""
    with tempfile.TemporaryDirectory(prefix="karri-accel-") as tmp:
        serial, errors = Path(tmp) / "serial.log", Path(tmp) / "qemu.log"
        with open(errors, "wb") as err:
            proc = await asyncio.create_subprocess_exec(
                qemu,
                "-machine",
                "pc",
                *accelerator_args(accel),
                "-m",
                str(PROBE_MEMORY_MIB),
                "-nodefaults",
                "-no-user-config",
                "-display",
                "none",
                "-no-reboot",
                "-serial",
                f"file:{serial}",
                "-kernel",
                str(guest.kernel),
                "-initrd",
                str(guest.initrd),
                "-append",
                PROBE_CMDLINE,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                preexec_fn=dies_with_us(),  # a killed karri up must not leave it running
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while loop.time() < deadline:
                if serial.exists() and MARKER in serial.read_bytes():
                    return True, "reached userspace"
                if proc.returncode is not None or b"internal error" in _read(errors):
                    break
                await asyncio.sleep(0.1)
            said = _last_line(errors)
            if said:
                return False, said
            if proc.returncode is not None:
                return False, f"QEMU exited with status {proc.returncode} before userspace"
            printed = "nothing" if not serial.exists() or not serial.stat().st_size else "output"
            return False, f"the guest kernel printed {printed} and no marker in {timeout:g}s"
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _last_line(path: Path) -> str:
    lines = _read(path).decode(errors="replace").strip().splitlines()
    return lines[-1].strip()[-300:] if lines else ""


def host_cache() -> Path:
    """Where this host's answer is kept: /var/cache/karri, else ~/.cache/karri."""
    for directory in (Path("/var/cache/karri"), Path.home() / ".cache" / "karri"):
        with contextlib.suppress(OSError):
            directory.mkdir(parents=True, exist_ok=True)
            if os.access(directory, os.W_OK):
                return directory / "accelerator.json"
    return Path(tempfile.gettempdir()) / "karri-accelerator.json"


class AcceleratorCache:
    """The probe's answers, one per host boot, QEMU binary and version, and probe kernel."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.key: str | None = None
        """The key of the last answer looked up or stored (what ``demote`` changes)."""

    def get(self, key: dict[str, str]) -> Choice | None:
        self.key = json.dumps(key, sort_keys=True)
        entry = self._entries().get(self.key)
        if isinstance(entry, dict) and entry.get("accelerator") in ("kvm", "tcg"):
            return Choice(entry["accelerator"], str(entry.get("reason", "")))
        return None

    def put(self, key: dict[str, str], choice: Choice) -> None:
        self.key = json.dumps(key, sort_keys=True)
        self._store(self.key, choice)

    def demote(self, reason: str) -> None:
        """A guest faulted under KVM after the probe passed: TCG from now on (this boot)."""
        if self.key is not None:
            self._store(self.key, Choice("tcg", reason))

    @contextlib.asynccontextmanager
    async def probing(self) -> AsyncIterator[None]:
        """One prober at a time on this host; the others wait and then read its answer."""
        with open(self.path.with_suffix(".lock"), "a") as lock:
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await asyncio.sleep(0.2)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _entries(self) -> dict:
        try:
            entries = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return entries if isinstance(entries, dict) else {}

    def _store(self, key: str, choice: Choice) -> None:
        boot_id = _boot_id()
        entries = {}  # answers of earlier host boots are of no use
        for k, v in self._entries().items():
            with contextlib.suppress(ValueError, AttributeError):
                if json.loads(k).get("boot_id") == boot_id:
                    entries[k] = v
        entries[key] = {"accelerator": choice.accelerator, "reason": choice.reason}
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(entries, indent=1))
        tmp.replace(self.path)


async def choose(
    qemu: str,
    wanted: str,
    timeout: float,
    cache: AcceleratorCache,
    guest: ProbeGuest | None,
) -> Choice:
    """The accelerator for this node and why (for the log and `karri status`)."""
    if wanted in ("kvm", "tcg"):
        return Choice(wanted, "configured")  # type: ignore[arg-type]
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return Choice("tcg", "no usable /dev/kvm")
    if guest is None:
        return Choice("tcg", "no guest kernel to probe KVM with")
    key = {
        "boot_id": _boot_id(),
        "qemu": qemu,
        "qemu_version": await asyncio.to_thread(qemu_version, qemu),
        "probe": guest.key,
    }
    async with cache.probing():
        cached = cache.get(key)
        if cached is not None:
            return Choice(cached.accelerator, cached.reason + " (probed earlier this boot)")
        ok, seen = await boots_with(qemu, "kvm", guest, timeout)
        if ok:
            choice = Choice("kvm", "the guest kernel reached userspace under KVM")
        else:
            choice = Choice("tcg", f"the guest kernel did not boot under KVM: {seen}")
        cache.put(key, choice)
    return choice
