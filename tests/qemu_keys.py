"""QEMU's tools on encrypted volumes in tests, the key passed as QEMU's own code passes it:
through a pipe, never on a command line."""

from __future__ import annotations

import os
import subprocess

from karri.storage.luks import PBKDF_TIMING_FLAKE, TRIES


def run_keyed(command: list[str], key: bytes) -> str:
    """Run ``qemu-io …`` or ``qemu-img SUBCOMMAND …`` with the secret object ``k`` holding
    ``key``; its output (CalledProcessError if it failed). Tried again when QEMU's PBKDF2
    timing gave up, as karri's own ``luks.create`` does."""
    for _ in range(TRIES - 1):
        try:
            return _run_keyed_once(command, key)
        except subprocess.CalledProcessError as error:
            if PBKDF_TIMING_FLAKE not in (error.stderr or ""):
                raise
    return _run_keyed_once(command, key)


def _run_keyed_once(command: list[str], key: bytes) -> str:
    read_end, write_end = os.pipe()
    os.write(write_end, key)
    os.close(write_end)
    at = 2 if command[0] == "qemu-img" else 1
    try:
        result = subprocess.run(
            [*command[:at], "--object", f"secret,id=k,file=/dev/fd/{read_end}", *command[at:]],
            pass_fds=(read_end,),
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        os.close(read_end)
    return result.stdout


def opened(path: str | os.PathLike[str]) -> str:
    """``--image-opts`` opening a volume file with the key ``k`` (``.luks``: raw LUKS)."""
    if str(path).endswith(".luks"):
        return f"driver=luks,key-secret=k,file.filename={path}"
    return f"driver=qcow2,encrypt.key-secret=k,file.filename={path}"
