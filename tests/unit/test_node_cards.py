"""An instance's extra network interfaces on the node: QEMU's command line gives each
its tap and MAC after the primary NIC, the record on disk keeps them (adoption plugs them
again), a VPC network refuses a card whose address or MAC another port has, and the
metadata lists every interface under its MAC."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from karri.node import network, qemu
from karri.node.errors import NetworkError
from karri.node.metadata import InstanceMetadata, InterfaceMetadata, meta_data, resolve
from karri.node.network import Port, VpcNetwork
from karri.node.spec import ImageRoot, InstanceSpec, NetworkCard
from karri.node.store import InstanceRecord

CARD = NetworkCard("eni-0123abcd", "0e:00:00:00:00:02", "172.31.0.9", "172.31.0.0/20", 1, ("sg-1",))


def spec() -> InstanceSpec:
    return InstanceSpec(
        instance_id="i-0123abcd",
        vcpus=1,
        memory_mib=128,
        root=ImageRoot(Path("/images/emi"), "raw", 1 << 30),
        mac="0e:00:00:00:00:01",
        private_ip="172.31.0.5",
        subnet="172.31.0.0/20",
        cards=(CARD,),
    )


def test_command_line_has_each_card_after_the_primary_nic(tmp_path: Path) -> None:
    cmd = qemu.command("qemu", spec(), "tcg", qemu.InstanceFiles(tmp_path), "kt0123abcd")
    netdevs = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "-netdev"]
    assert netdevs == [
        "tap,id=net0,ifname=kt0123abcd,script=no,downscript=no",
        "tap,id=net-eni-0123abcd,ifname=kte0123abcd,script=no,downscript=no",
    ]
    nics = [cmd[i + 1] for i, arg in enumerate(cmd) if arg.startswith("-device")]
    assert "virtio-net-pci,id=nic-eni-0123abcd,netdev=net-eni-0123abcd," in ",".join(nics)
    netdev, device = qemu.card_args(CARD)  # what QMP's hot-plug sends: the same
    assert netdev["ifname"] == "kte0123abcd" and device["mac"] == CARD.mac


def test_record_keeps_the_cards(tmp_path: Path) -> None:
    InstanceRecord(spec(), "tcg", "kt0123abcd", 0.0).save(tmp_path)
    assert InstanceRecord.load(tmp_path).spec.cards == (CARD,)


def test_a_card_may_not_take_another_ports_address(tmp_path: Path) -> None:
    net = VpcNetwork(tmp_path, tmp_path / "state", "vpc-0123abcd")
    net.ports["i-0123abcd"] = Port(
        "i-0123abcd", "kt0123abcd", "0e:00:00:00:00:01", "172.31.0.5", "172.31.0.0/20"
    )
    clash = Port(
        "i-0123abcd",
        "kte0123abcd",
        "0e:00:00:00:00:02",
        "172.31.0.5",
        "172.31.0.0/20",
        (),
        "eni-0123abcd",
    )
    with pytest.raises(NetworkError):
        net.check(clash)
    net.check(
        Port(
            "i-0123abcd",
            "kte0123abcd",
            CARD.mac,
            CARD.private_ip,
            CARD.subnet,
            (),
            CARD.interface_id,
        )
    )


def test_metadata_lists_every_interface_under_its_mac() -> None:
    other = InterfaceMetadata(
        CARD.mac, CARD.interface_id, 1, ("172.31.0.9", "172.31.0.10"), "subnet-1",
        "172.31.0.0/20", ("sg-1",), ("web",),
    )  # fmt: skip
    m = InstanceMetadata(
        "i-0123abcd", "123456789012", "r", "z", "r-1", "emi-1", "t1.micro", "172.31.0.5",
        "0e:00:00:00:00:01", datetime.now(UTC), interface_id="eni-00000001",
        secondary_ipv4s=("172.31.0.6",), other_interfaces=(other,),
    )  # fmt: skip
    tree = meta_data(m)
    macs = resolve(tree, "network/interfaces/macs/")
    assert macs is not None and not isinstance(macs, str | bytes)
    assert macs.text() == "0e:00:00:00:00:01/\n0e:00:00:00:00:02/"
    base = "network/interfaces/macs/"
    assert resolve(tree, base + "0e:00:00:00:00:01/local-ipv4s") == "172.31.0.5\n172.31.0.6"
    assert resolve(tree, base + "0e:00:00:00:00:02/interface-id") == CARD.interface_id
    assert resolve(tree, base + "0e:00:00:00:00:02/device-number") == "1"
    assert resolve(tree, base + "0e:00:00:00:00:02/local-ipv4s") == "172.31.0.9\n172.31.0.10"
    assert resolve(tree, base + "0e:00:00:00:00:02/security-group-ids") == "sg-1"


def test_each_private_address_of_a_port_is_a_member_of_its_groups(tmp_path: Path) -> None:
    port = Port(
        "i-0123abcd", "kte0123abcd", CARD.mac, CARD.private_ip, CARD.subnet, ("sg-1", "sg-9"),
        CARD.interface_id, ("172.31.0.10", "172.31.0.11"),
    )  # fmt: skip
    members = network._members(port, {"sg-1"})
    assert [(m.name, m.ip, m.group_ids) for m in members] == [
        ("kte0123abcd", "172.31.0.9", ("sg-1",)),
        ("kte0123abcd-1", "172.31.0.10", ("sg-1",)),
        ("kte0123abcd-2", "172.31.0.11", ("sg-1",)),
    ]
    full, _mac = network._elements(port)  # the tap may send from each of them
    assert full.split(", ") == [
        f'"kte0123abcd" . 0e:00:00:00:00:02 . {ip}' for ip in port.addresses
    ]
    net = VpcNetwork(tmp_path, tmp_path / "state", "vpc-0123abcd")
    net.ports[port.key] = port
    other = Port("i-0000beef", "kt0000beef", "0e:00:00:00:00:03", "172.31.0.11", CARD.subnet)
    with pytest.raises(NetworkError):  # another port's secondary address
        net.check(other)
