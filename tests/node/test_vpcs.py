"""VPCs on a Node with real TCG guests: each VPC its own network, security groups in the
kernel changed on running guests, public addresses on every port.

- X and Y are in VPC A (X: 172.31.0.11 runs busybox httpd on port 80; Y pings X and
  fetches its page); both are members of ``sg-web``, which admits its own members and
  tcp/22 from anywhere.
- Z is in VPC B with X's very address and MAC; it tries to reach Y's address.
"""

from __future__ import annotations

import socket
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from karri.node import GroupRules, Node, NodeSettings, Rule

from . import guests
from .conftest import LoopThread, needs_root

pytestmark = [needs_root, pytest.mark.guests]

X, Y, Z = "i-000000a1", "i-000000a2", "i-000000b1"
VPC = {X: "vpc-0000000000000000a", Y: "vpc-0000000000000000a", Z: "vpc-0000000000000000b"}
IP = {X: "172.31.0.11", Y: "172.31.0.12", Z: "172.31.0.11"}
MAC = {X: "d0:0d:ac:1f:00:0b", Y: "d0:0d:ac:1f:00:0c", Z: "d0:0d:ac:1f:00:0b"}
SUBNET = "172.31.0.0/20"
EVERYWHERE = ("0.0.0.0/0",)

WEB = GroupRules(
    "sg-web",
    ingress=(Rule("-1", groups=("sg-web",)), Rule("tcp", 22, 22, cidrs=EVERYWHERE)),
    egress=guests.EVERYTHING,
)
HTTP = GroupRules("sg-http", ingress=(Rule("tcp", 80, 80, cidrs=EVERYWHERE),))
OWN_ID = (
    'echo "karri-test: own id '
    '[$(wget -q -O - http://169.254.169.254/latest/meta-data/instance-id)]"'
)
SCRIPTS = {
    X: f"""{OWN_ID}
mkdir -p /www && echo hello-X > /www/index.html && httpd -p 80 -h /www
echo "karri-test: httpd up"
""",
    Y: f"""{OWN_ID}
ping_until {IP[X]}
# X's httpd may not be up yet (its user-data runs in parallel): ask until it answers
i=0; while [ $i -lt 60 ]; do
  out=$(timeout 5 wget -q -O - http://{IP[X]}/) && break; i=$((i+1)); sleep 1
done
echo "karri-test: http [$out]"
""",
    Z: f"""{OWN_ID}
if ping -c 3 -W 1 {IP[Y]} >/dev/null 2>&1; then r=reached; else r=unreachable; fi
echo "karri-test: other vpc ping $r"
if timeout 5 wget -q -O - http://{IP[X]}/ >/dev/null 2>&1; then r=reached; else r=unreachable; fi
echo "karri-test: other vpc http $r"
""",
}


def spec(image: Path, iid: str, groups: tuple[str, ...]):
    base = guests.spec(image, iid, IP[iid], MAC[iid])
    return replace(base, vpc_id=VPC[iid], subnet=SUBNET, security_groups=groups)


@pytest.fixture(scope="module")
def node(
    loop: LoopThread, tiny_image: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Node]:
    tmp = tmp_path_factory.mktemp("vpcs")
    meta = {
        i: guests.metadata(i, IP[i], MAC[i], user_data=guests.user_data(SCRIPTS[i]))
        for i in (X, Y, Z)
    }
    node = Node(tmp / "data", NodeSettings(stop_timeout=30), metadata=meta.get)
    loop.run(node.set_groups(VPC[X], [WEB, HTTP]))
    loop.run(node.set_groups(VPC[Z], [guests.OPEN]))
    loop.run(node.start(), 60)
    try:
        loop.run(node.launch(spec(tiny_image, X, ("sg-web",))))
        loop.run(node.launch(spec(tiny_image, Y, ("sg-web",))))
        loop.run(node.launch(spec(tiny_image, Z, (guests.OPEN.group_id,))))
        for iid in (X, Y, Z):
            guests.wait_console(loop, node, iid, guests.BOOTED, 240)
        yield node
    finally:
        loop.run(node.close(stop_instances=True), 180)
        for vpc in set(VPC.values()):
            assert not guests.vpc_namespace(node.data_dir, vpc).exists()


def fetch(address: str, timeout: float = 1.0) -> str | None:
    try:
        with urllib.request.urlopen(f"http://{address}/", timeout=timeout) as answer:
            return answer.read().decode().strip()
    except OSError:
        return None


def wait_for(check, limit: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if check():
            return time.monotonic() - start
    raise AssertionError(f"{check} did not hold within {limit} s")


def test_each_vpc_is_its_own_network(loop: LoopThread, node: Node) -> None:
    for iid in (X, Y, Z):  # X and Z have the same address: the VPC tells them apart
        guests.wait_console(loop, node, iid, rf"own id \[{iid}\]", 120)
    guests.wait_console(loop, node, Y, rf"ping {IP[X]} ok", 120)
    guests.wait_console(loop, node, Y, r"http \[hello-X\]", 120)
    guests.wait_console(loop, node, Z, r"other vpc ping unreachable", 120)
    guests.wait_console(loop, node, Z, r"other vpc http unreachable", 120)


def test_a_public_address_answers_on_every_port_its_groups_allow(
    loop: LoopThread, node: Node
) -> None:
    guests.wait_console(loop, node, X, "httpd up", 120)
    public = loop.call(node.info, X).public_ip
    assert public and public.startswith("127.64.")
    assert fetch(public) is None  # sg-web admits tcp/22 from the host, not 80
    with socket.create_connection((public, 22), timeout=30) as sock:
        assert sock.recv(64).startswith(b"SSH-2.0-dropbear")

    opened = GroupRules("sg-web", (*WEB.ingress, Rule("tcp", 80, 80, cidrs=EVERYWHERE)), WEB.egress)
    start = time.monotonic()
    loop.run(node.set_groups(VPC[X], [opened, HTTP]))
    after = wait_for(lambda: fetch(public, 0.3) == "hello-X", 1.0)
    print(f"\ntcp/80 open {after * 1000:.0f} ms after the call ({time.monotonic() - start:.2f} s)")
    loop.run(node.set_groups(VPC[X], [WEB, HTTP]))
    assert fetch(public, 0.5) is None


def test_an_instance_moved_between_groups_is_filtered_by_its_new_ones(
    loop: LoopThread, node: Node
) -> None:
    public = loop.call(node.info, X).public_ip
    assert public and fetch(public, 0.5) is None
    loop.run(node.set_instance_groups(X, ("sg-web", "sg-http")))
    wait_for(lambda: fetch(public, 0.3) == "hello-X", 1.0)
    loop.run(node.set_instance_groups(X, ("sg-web",)))
    assert fetch(public, 0.5) is None


def test_a_public_address_moves_and_goes(loop: LoopThread, node: Node) -> None:
    public = loop.call(node.info, X).public_ip
    assert public
    loop.run(node.set_groups(VPC[X], [WEB, HTTP]))
    loop.run(node.set_instance_groups(X, ("sg-web", "sg-http")))
    assert loop.run(node.set_public_ip(Y, public)) == public  # AssociateAddress, moved
    assert loop.call(node.info, Y).public_ip == public
    assert loop.call(node.info, X).public_ip is None
    assert fetch(public, 0.5) is None  # Y runs no web server and is not in sg-http
    loop.run(node.set_public_ip(X, public))
    wait_for(lambda: fetch(public, 0.3) == "hello-X", 1.0)
    loop.run(node.set_public_ip(X, None))
    assert loop.call(node.info, X).public_ip is None
    assert fetch(public, 0.5) is None
