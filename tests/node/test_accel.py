"""KVM or TCG: the probe boots the real guest kernel rather than trusting /dev/kvm."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from karri.node import accel

from .conftest import needs_root

QEMU = "qemu-system-x86_64"


@pytest.fixture(scope="module")
def guest(tiny_image: Path) -> accel.ProbeGuest:
    return accel.ProbeGuest(tiny_image / "vmlinux", tiny_image / "initrd")


def _wrapper(tmp_path: Path, on_kvm: str) -> str:
    """A QEMU that behaves as a nested host's does when asked for KVM: ``on_kvm`` runs
    instead (TCG otherwise, so the rest of the machine is real)."""
    script = tmp_path / "qemu-nested"
    script.write_text(
        "#!/bin/sh\n"
        'case " $* " in *" kvm "*) ;; *) exec qemu-system-x86_64 "$@" ;; esac\n'
        f"{on_kvm}\n"
    )
    script.chmod(0o755)
    return str(script)


@needs_root
def test_the_probe_sees_the_real_kernel_reach_userspace(guest: accel.ProbeGuest) -> None:
    """Under TCG the default guest's kernel always reaches the initramfs: the probe works."""
    assert asyncio.run(accel.boots_with(QEMU, "tcg", guest, 60)) == (True, "reached userspace")


@needs_root
def test_a_kvm_that_stops_the_guest_with_an_internal_error_is_refused(
    tmp_path: Path, guest: accel.ProbeGuest
) -> None:
    # what QEMU printed on the nested Intel host, then it sat there paused
    qemu = _wrapper(
        tmp_path,
        "echo 'KVM internal error. Suberror: 1' >&2; echo 'emulation failure' >&2; sleep 60",
    )
    ok, seen = asyncio.run(accel.boots_with(qemu, "kvm", guest, 20))
    assert not ok and "emulation failure" in seen


@needs_root
def test_a_kvm_whose_guest_stays_silent_is_refused(tmp_path: Path, guest: accel.ProbeGuest) -> None:
    """The other nested behaviour: QMP says running, the kernel never prints a byte."""
    qemu = _wrapper(
        tmp_path,
        'for a; do shift; case "$a" in kvm) a=tcg ;; host) a=qemu64 ;; esac\n'
        'set -- "$@" "$a"; done\n'
        'exec qemu-system-x86_64 -S "$@"',
    )
    ok, seen = asyncio.run(accel.boots_with(qemu, "kvm", guest, 3))
    assert not ok and "printed nothing" in seen


@needs_root
@pytest.mark.skipif(not os.access("/dev/kvm", os.W_OK), reason="no /dev/kvm")
def test_the_choice_on_this_host_is_what_the_real_kernel_does(
    tmp_path: Path, guest: accel.ProbeGuest
) -> None:
    cache = accel.AcceleratorCache(tmp_path / "accelerator.json")
    chosen = asyncio.run(accel.choose(QEMU, "auto", 20, cache, guest))
    booted, seen = asyncio.run(accel.boots_with(QEMU, "kvm", guest, 20))
    assert chosen.accelerator == ("kvm" if booted else "tcg")
    if not booted:
        assert seen in chosen.reason
    again = asyncio.run(accel.choose(QEMU, "auto", 20, cache, guest))
    assert again.accelerator == chosen.accelerator and "earlier this boot" in again.reason


@needs_root
@pytest.mark.skipif(not os.access("/dev/kvm", os.W_OK), reason="no /dev/kvm")
def test_the_probe_is_cached_per_qemu_and_kernel_and_a_fault_demotes_it(
    tmp_path: Path, guest: accel.ProbeGuest
) -> None:
    qemu = _wrapper(tmp_path, "echo 'KVM internal error. Suberror: 1' >&2; sleep 60")
    cache = accel.AcceleratorCache(tmp_path / "accelerator.json")
    first = asyncio.run(accel.choose(qemu, "auto", 20, cache, guest))
    assert first.accelerator == "tcg" and "KVM internal error" in first.reason
    # another QEMU binary is probed afresh
    other = accel.AcceleratorCache(tmp_path / "other.json")
    other.put({"qemu": "elsewhere"}, accel.Choice("kvm", "x"))
    assert other.get({"qemu": QEMU}) is None
    cache.demote("a guest faulted under KVM")
    assert asyncio.run(accel.choose(qemu, "auto", 20, cache, guest)).accelerator == "tcg"


def test_a_configured_accelerator_is_not_probed(tmp_path: Path) -> None:
    cache = accel.AcceleratorCache(tmp_path / "a.json")
    assert asyncio.run(accel.choose(QEMU, "tcg", 5, cache, None)) == accel.Choice(
        "tcg", "configured"
    )
    assert asyncio.run(accel.choose(QEMU, "kvm", 5, cache, None)).accelerator == "kvm"
    assert not (tmp_path / "a.json").exists()
