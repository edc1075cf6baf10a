"""Extra network interfaces of running guests: hot-plugged as virtio-net devices over
QMP (``netdev_add`` of the interface's tap, then ``device_add`` with its MAC), unplugged
by ``device_del`` (the guest releases the device: ACPI eject, ``DEVICE_DELETED``) then
``netdev_del``. The tap, its filters and its DHCP host are the VPC network's
(``network.py``): plugged before the device exists, removed after it is gone."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from karri.node import qemu
from karri.node.errors import DetachTimeout, NetworkError, NodeError
from karri.node.qmp import QMPError
from karri.node.spec import NetworkCard
from karri.node.vm import Vm

log = logging.getLogger("karri.node")


async def hot_add(vm: Vm, card: NetworkCard) -> None:
    """The card's tap (which must exist) as a new NIC of the running guest."""
    netdev, device = qemu.card_args(card)
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
