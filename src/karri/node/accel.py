"""KVM or TCG: decided by booting a throwaway guest, not by the presence of /dev/kvm.

A nested host can expose a /dev/kvm that answers ioctls but hangs any guest. The probe
boots a 512-byte boot sector that writes a marker to the serial port, under the
accelerator in question, and waits a few seconds for the marker. The answer is cached for
the host's boot (``/proc/sys/kernel/random/boot_id``) in ``DATA_DIR/node/accelerator.json``
so that restarting the node controller does not pay for the probe again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
from pathlib import Path

from karri.node.qemu import accelerator_args
from karri.node.spec import Accelerator

log = logging.getLogger("karri.node")

MARKER = b"karri-accel-probe-ok"

# cli; xor ax,ax; mov ds,ax; mov si,msg; mov dx,0x3f8
# next: lodsb; test al,al; jz done; out dx,al; jmp next
# done: hlt; jmp done
# msg: MARKER, CR, LF, 0 -- at 0x7c00 + 22
_CODE = bytes.fromhex("fa31c08ed8be167cbaf803ac84c07403eeebf8f4ebfd")
BOOT_SECTOR = (_CODE + MARKER + b"\r\n\0").ljust(510, b"\0") + b"\x55\xaa"


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


async def boots_with(qemu: str, accel: Accelerator, timeout: float) -> bool:
    """True when a guest under ``accel`` prints on its serial port within ``timeout``."""
    with tempfile.TemporaryDirectory(prefix="karri-accel-") as tmp:
        disk, serial = Path(tmp) / "boot.img", Path(tmp) / "serial.log"
        disk.write_bytes(BOOT_SECTOR)
        proc = await asyncio.create_subprocess_exec(
            qemu,
            "-machine",
            "pc",
            *accelerator_args(accel),
            "-m",
            "16",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
            "-serial",
            f"file:{serial}",
            "-drive",
            f"file={disk},format=raw,if=ide",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            while asyncio.get_running_loop().time() < deadline:
                if serial.exists() and MARKER in serial.read_bytes():
                    return True
                if proc.returncode is not None:
                    break
                await asyncio.sleep(0.05)
            if proc.returncode is not None and proc.stderr:
                err = (await proc.stderr.read()).decode(errors="replace").strip()
                log.info("accelerator probe: %s exited %s: %s", accel, proc.returncode, err[-300:])
            return False
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def choose(qemu: str, wanted: str, timeout: float, cache: Path) -> tuple[Accelerator, str]:
    """The accelerator for this node and why (for the log and `karri status`)."""
    if wanted in ("kvm", "tcg"):
        return wanted, "configured"  # type: ignore[return-value]
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg", "no usable /dev/kvm"
    boot_id = _boot_id()
    try:
        cached = json.loads(cache.read_text())
        if cached["boot_id"] == boot_id and cached["qemu"] == qemu:
            return cached["accelerator"], cached["reason"] + " (probed earlier this boot)"
    except (OSError, ValueError, KeyError):
        pass
    if await boots_with(qemu, "kvm", timeout):
        accel, reason = "kvm", "a probe guest booted under KVM"
    else:
        accel, reason = (
            "tcg",
            f"/dev/kvm exists but a probe guest did not boot under KVM in {timeout:g}s",
        )
    cache.write_text(
        json.dumps({"boot_id": boot_id, "qemu": qemu, "accelerator": accel, "reason": reason})
    )
    return accel, reason  # type: ignore[return-value]
