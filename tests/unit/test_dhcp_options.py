"""A DHCP option set as dnsmasq hands it out (node/dhcp.py) and what the cloud gives the
node of a set (cloud/network/dhcp_options.py)."""

from __future__ import annotations

import pytest

from karri.cloud.network.dhcp_options import dhcp_of
from karri.cloud.network.dns import vpc_resolver
from karri.node import Resolver, SynthesizedNames
from karri.node.dhcp import dhcp_options, option_args
from karri.node.dns import resolver_args
from karri.node.errors import NetworkError


def test_a_set_becomes_dnsmasq_options() -> None:
    handed = dhcp_of(
        {
            "domain-name": ["corp.example other.example"],
            "domain-name-servers": ["AmazonProvidedDNS", "10.0.0.2"],
            "ntp-servers": ["10.0.0.3"],
            "ipv6-address-preferred-lease-time": ["140"],
        }
    )
    assert option_args(dhcp_options(handed)) == [
        "--dhcp-option=option:domain-name,corp.example",
        "--dhcp-option=option:domain-search,corp.example,other.example",
        "--dhcp-option=option:dns-server,10.0.0.2",
        "--dhcp-option=option:ntp-server,10.0.0.3",
    ]


def test_amazon_dns_alone_and_default_hand_out_nothing() -> None:
    assert dhcp_of({"domain-name-servers": ["AmazonProvidedDNS"]}) == {}
    assert dhcp_of(None) == {}


def test_a_value_cannot_smuggle_arguments() -> None:
    with pytest.raises(NetworkError):
        dhcp_options({"domain-name": ["a.example,option:router,1.2.3.4"]})


def test_amazon_provided_dns_is_the_vpcs_resolver_once() -> None:
    servers = {"domain-name-servers": ["10.0.0.2", "AmazonProvidedDNS", "10.9.9.9"]}
    assert dhcp_of(servers, "10.0.0.2") == {"domain-name-servers": ("10.0.0.2", "10.9.9.9")}
    assert dhcp_of(servers) == {"domain-name-servers": ("10.0.0.2", "10.9.9.9")}


def test_a_vpcs_resolver_follows_its_attributes() -> None:
    common = {"region": "eucalyptus", "cidrs": ["10.0.0.0/16", "10.1.0.0/16"]}
    assert vpc_resolver(**common, dns_support=False, dns_hostnames=True, public_pool=None) is None
    private = vpc_resolver(
        **common, dns_support=True, dns_hostnames=False, public_pool="1.2.0.0/16"
    )
    assert private is not None and private.address == "10.0.0.2"
    assert [(n.domain, n.network, n.prefix) for n in private.names] == [
        ("eucalyptus.compute.internal", "10.0.0.0/16", "ip-"),
        ("eucalyptus.compute.internal", "10.1.0.0/16", "ip-"),
    ]
    public = vpc_resolver(**common, dns_support=True, dns_hostnames=True, public_pool="1.2.0.0/16")
    assert public is not None
    assert (public.names[-1].domain, public.names[-1].prefix) == (
        "eucalyptus.compute.karri",
        "euca-",
    )
    args = resolver_args(public)
    assert args[:2] == ["--listen-address=10.0.0.2", "--listen-address=169.254.169.253"]
    assert "--synth-domain=eucalyptus.compute.internal,10.1.0.0/16,ip-" in args
    assert args.count("--local=/eucalyptus.compute.internal/") == 1
    assert "--dhcp-ignore-names" in args


def test_resolver_arguments_are_checked() -> None:
    bad = Resolver("10.0.0.2", (SynthesizedNames("x,y.example", "10.0.0.0/16", "ip-"),))
    with pytest.raises(NetworkError):
        resolver_args(bad)
