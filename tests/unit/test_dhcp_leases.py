"""An address given back by a terminated instance goes to the next instance's MAC:
dnsmasq's lease of it to the old MAC is dropped (dnsmasq reads leases only at
start, so it is started again); a lease to the same MAC, or none, changes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path

from karri.node.dhcp import DhcpOptions, DhcpSubnet, Dnsmasq
from karri.node.dns import Resolver
from karri.node.netns import Namespace


class RecordingDnsmasq(Dnsmasq):
    """No process: what would have been started or signalled is recorded."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(Namespace("karri-test"), state_dir)
        self.events: list[str] = []

    async def start(
        self,
        subnets: Sequence[DhcpSubnet],
        hosts: Mapping[str, str],
        options: DhcpOptions = (),
        resolver: Resolver | None = None,
        mtu: int | None = None,
    ) -> None:
        self._write_hosts(hosts)
        self.events.append("start")

    async def stop(self) -> None:
        self.events.append("stop")

    def set_hosts(self, hosts: Mapping[str, str]) -> None:
        self._write_hosts(hosts)
        self.events.append("hup")


LEASES = "0 0e:00:00:00:00:01 172.31.0.4 * *\n0 0e:00:00:00:00:02 172.31.0.5 * *\n"


def test_a_lease_to_another_mac_is_dropped_and_dnsmasq_restarted(tmp_path: Path) -> None:
    dhcp = RecordingDnsmasq(tmp_path)
    dhcp.leases.write_text(LEASES)
    asyncio.run(dhcp.give("172.31.0.4", "0e:00:00:00:00:09", {"0e:00:00:00:00:09": "172.31.0.4"}))
    assert dhcp.events == ["stop", "start"]
    assert dhcp.leases.read_text() == "0 0e:00:00:00:00:02 172.31.0.5 * *\n"
    assert dhcp.hosts_file.read_text() == "0e:00:00:00:00:09,172.31.0.4\n"


def test_the_same_mac_or_no_lease_only_rereads_the_hosts(tmp_path: Path) -> None:
    dhcp = RecordingDnsmasq(tmp_path)
    asyncio.run(dhcp.give("172.31.0.4", "0e:00:00:00:00:01", {}))  # no lease file yet
    dhcp.leases.write_text(LEASES)
    asyncio.run(dhcp.give("172.31.0.4", "0E:00:00:00:00:01", {}))
    assert dhcp.events == ["hup", "hup"]
    assert dhcp.leases.read_text() == LEASES
