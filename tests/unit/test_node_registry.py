"""Joining nodes and their states (cloud/nodes): tokens, certificates, heartbeats, on a
real database and the real CA, with a clock driven by the test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from karri.cloud.nodes.ca import NodeCA
from karri.cloud.nodes.registry import JoinRefused, Nodes, UnknownNode
from karri.db.engine import Database
from karri.pki import csr_for, fingerprint, new_key, parse_join_token

ZONE = "eucalyptus-1a"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def nodes(tmp_path: Path, clock: Clock) -> Nodes:
    return Nodes(Database(f"sqlite:///{tmp_path / 'k.db'}"), NodeCA(tmp_path), [ZONE], clock)


def serial_of(cert_pem: bytes) -> str:
    return format(x509.load_pem_x509_certificate(cert_pem).serial_number, "x")


def test_a_token_names_the_ca_and_joins_once(nodes: Nodes) -> None:
    token = nodes.new_token()
    assert parse_join_token(token)[2] == fingerprint(nodes.ca.pem)
    cert = nodes.join(token, "n1", None, csr_for(new_key(), "n1"))
    issued = x509.load_pem_x509_certificate(cert)
    issued.verify_directly_issued_by(nodes.ca.cert)
    with pytest.raises(JoinRefused, match="not valid"):
        nodes.join(token, "n2", None, csr_for(new_key(), "n2"))
    [view] = nodes.list()
    assert (view.name, view.zone, view.state) == ("n1", ZONE, "NOTREADY")


def test_what_a_join_refuses(nodes: Nodes, clock: Clock) -> None:
    def join(name: str = "n1", zone: str | None = None, csr: bytes | None = None, token=None):
        given = token or nodes.new_token()
        return nodes.join(given, name, zone, csr or csr_for(new_key(), name))

    with pytest.raises(JoinRefused, match="name"):
        join("Not_A_Name")
    with pytest.raises(JoinRefused, match="the cloud's own name"):
        join("karri-cloud")  # its certificate would serve as the gateway's
    with pytest.raises(JoinRefused, match="zone"):
        join(zone="elsewhere")
    with pytest.raises(JoinRefused, match="CN"):
        join(csr=csr_for(new_key(), "someone-else"))
    with pytest.raises(JoinRefused, match="not a certificate"):
        join(csr=b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----")
    token = nodes.new_token()
    forged = token[:7] + ("0" if token[7] != "0" else "1") + token[8:]
    with pytest.raises(JoinRefused, match="not valid"):
        join(token=forged)
    with pytest.raises(JoinRefused, match="not valid"):
        join(token="garbage")
    expiring = nodes.new_token()
    clock.now += timedelta(hours=1, seconds=1)
    with pytest.raises(JoinRefused, match="not valid"):
        join(token=expiring)
    join()
    with pytest.raises(JoinRefused, match="joined already"):
        join()
    assert [n.name for n in nodes.list()] == ["n1"]


def test_states_follow_heartbeats(nodes: Nodes, clock: Clock) -> None:
    cert = nodes.join(nodes.new_token(), "n1", ZONE, csr_for(new_key(), "n1"))
    serial = serial_of(cert)
    nodes.heartbeat("n1", serial, vcpus=2, memory_mib=24000, interval=10)
    [view] = nodes.list()
    assert (view.state, view.vcpus, view.memory_mib) == ("ENABLED", 2, 24000)
    clock.now += timedelta(seconds=30)
    assert nodes.list()[0].state == "ENABLED"
    clock.now += timedelta(seconds=1)
    assert nodes.list()[0].state == "BROKEN"  # three heartbeats missed
    nodes.heartbeat("n1", serial, vcpus=2, memory_mib=24000, interval=10)
    assert nodes.list()[0].state == "ENABLED"
    nodes.set_enabled("n1", False)
    assert nodes.list()[0].state == "DISABLED"
    clock.now += timedelta(seconds=31)
    assert nodes.list()[0].state == "BROKEN"  # a disabled node that died is BROKEN too
    nodes.heartbeat("n1", serial, vcpus=2, memory_mib=24000, interval=10)
    assert nodes.list()[0].state == "DISABLED"
    nodes.set_enabled("n1", True)
    with pytest.raises(UnknownNode):
        nodes.heartbeat("n1", "1234", vcpus=2, memory_mib=1, interval=10)  # not its serial
    nodes.remove("n1")
    with pytest.raises(UnknownNode):
        nodes.heartbeat("n1", serial, vcpus=2, memory_mib=1, interval=10)
    with pytest.raises(UnknownNode):
        nodes.set_enabled("n1", True)


def test_the_gateway_certificate_names_its_hosts(nodes: Nodes, tmp_path: Path) -> None:
    cert_path, _key = nodes.ca.gateway_identity(tmp_path, ["127.0.0.1"])
    first = cert_path.read_bytes()
    assert nodes.ca.gateway_identity(tmp_path, ["127.0.0.1"])[0].read_bytes() == first
    nodes.ca.gateway_identity(tmp_path, ["10.0.0.1", "cloud.example"])
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["karri-cloud", "cloud.example"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.1"]
