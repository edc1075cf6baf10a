"""Extra network interfaces of running guests: hot-plugged as virtio-net devices over
QMP (``netdev_add`` of the interface's tap, then ``device_add`` with its MAC), unplugged
by ``device_del`` (the guest releases the device: ACPI eject, ``DEVICE_DELETED``) then
``netdev_del``. The tap, its filters and its DHCP host are the VPC network's
(``network.py``): plugged before the device exists, removed after it is gone."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

from karri.node import qemu
from karri.node.errors import DetachTimeout, NetworkError, NodeError
from karri.node.netns import Namespace
from karri.node.qmp import QMPError
from karri.node.spec import NetworkCard
from karri.node.vm import Vm

log = logging.getLogger("karri.node")


async def hot_add(vm: Vm, card: NetworkCard, ns: Namespace | None = None) -> None:
    """The card's tap (which must exist) as a new NIC of the running guest; with ``ns``
    (QEMU runs outside the tap's namespace) its descriptor is handed over (``getfd``)."""
    if ns is not None:
        await _hand_tap(vm, card, ns)
    netdev, device = qemu.card_args(card, _fd_name(card) if ns is not None else None)
    try:
        await vm.qmp.netdev_add(netdev)
    except QMPError as exc:
        raise NetworkError(f"{vm.instance_id}: {card.interface_id}: {exc}") from exc
    try:
        await vm.qmp.device_add(device)
    except QMPError as exc:
        with contextlib.suppress(QMPError, NodeError):
            await vm.qmp.netdev_del(netdev["id"])
        raise NetworkError(f"{vm.instance_id}: {card.interface_id}: {exc}") from exc
    log.info("%s: %s plugged in (%s)", vm.instance_id, card.interface_id, card.mac)


def _fd_name(card: NetworkCard) -> str:
    return f"fd-{card.interface_id}"


async def _hand_tap(vm: Vm, card: NetworkCard, ns: Namespace) -> None:
    try:
        fd = await asyncio.to_thread(ns.open_tap, qemu.card_tap(card.interface_id))
    except OSError as exc:
        raise NetworkError(f"{vm.instance_id}: {card.interface_id}: {exc}") from exc
    try:
        await vm.qmp.getfd(_fd_name(card), fd)
    except QMPError as exc:
        raise NetworkError(f"{vm.instance_id}: {card.interface_id}: {exc}") from exc
    finally:
        os.close(fd)


async def hot_remove(vm: Vm, card: NetworkCard, timeout: float) -> None:
    """Ask the guest to release the card's NIC; DetachTimeout if it has not within
    ``timeout`` (it may still: asking again is harmless)."""
    netdev, device = qemu.card_args(card)
    deleted = vm.device_deleted(device["id"])
    try:
        await vm.qmp.device_del(device["id"])
    except QMPError as exc:
        if "not found" not in str(exc).lower():
            raise NetworkError(f"{vm.instance_id}: {card.interface_id}: {exc}") from exc
        deleted.set()  # gone already (an earlier request the guest completed)
    try:
        await asyncio.wait_for(deleted.wait(), timeout)
    except TimeoutError:
        raise DetachTimeout(
            f"{vm.instance_id} did not release {card.interface_id} within {timeout:g}s"
        ) from None
    with contextlib.suppress(QMPError, NodeError):
        await vm.qmp.netdev_del(netdev["id"])
    log.info("%s: %s unplugged", vm.instance_id, card.interface_id)
