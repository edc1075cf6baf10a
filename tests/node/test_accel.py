"""KVM or TCG: the probe boots a throwaway guest rather than trusting /dev/kvm."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

from karri.node import accel

from .conftest import needs_root

QEMU = "qemu-system-x86_64"


@needs_root
def test_probe_recognises_a_guest_that_boots() -> None:
    """Under TCG the probe's boot sector always prints its marker: the probe works."""
    assert asyncio.run(accel.boots_with(QEMU, "tcg", 20))


@needs_root
def test_choice_is_probed_once_per_host_boot(tmp_path: Path) -> None:
    cache = tmp_path / "accelerator.json"
    chosen, reason = asyncio.run(accel.choose(QEMU, "auto", 5, cache))
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        assert (chosen, reason) == ("tcg", "no usable /dev/kvm")
        return
    # this machine's /dev/kvm is nested and hangs guests: KVM must lose here, and win
    # wherever the probe guest boots
    assert chosen == ("kvm" if asyncio.run(accel.boots_with(QEMU, "kvm", 5)) else "tcg")
    assert json.loads(cache.read_text())["accelerator"] == chosen
    started = time.monotonic()
    again, why = asyncio.run(accel.choose(QEMU, "auto", 5, cache))
    assert again == chosen and "earlier this boot" in why
    assert time.monotonic() - started < 0.5


def test_a_configured_accelerator_is_not_probed(tmp_path: Path) -> None:
    assert asyncio.run(accel.choose(QEMU, "tcg", 5, tmp_path / "a.json")) == ("tcg", "configured")
    assert not (tmp_path / "a.json").exists()
