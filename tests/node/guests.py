"""Helpers for tests that boot tiny guests on a Node: specs, metadata, console waits."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import hashlib
import re
import time
from pathlib import Path

from karri.node import (
    LOCAL_VPC,
    GroupRules,
    ImageRef,
    ImageRoot,
    InstanceMetadata,
    InstanceSpec,
    KernelBoot,
    Node,
    NodeSettings,
    Rule,
    VolumeDisk,
)
from karri.node.netns import Namespace, namespace_name

from .conftest import LoopThread, kernel_of

CMDLINE = "console=ttyS0 root=/dev/vda rw quiet"
BOOTED = "karri-tiny: boot complete"

# Prints the guest's disks (name=serial) whenever they change; runs in the background.
WATCH_DISKS = r"""
watch_disks() {
    seen=""
    while :; do
        now=""
        for d in /sys/block/vd*; do
            [ -e "$d" ] && now="$now $(basename "$d")=$(cat "$d/serial" 2>/dev/null)"
        done
        [ "$now" != "$seen" ] && echo "karri-test: disks$now" && seen="$now"
        sleep 1
    done
}
"""

# Pings an address until it answers (90 s at most).
PING = r"""
ping_until() {
    n=0
    while [ $n -lt 90 ]; do
        ping -c 1 -W 1 "$1" >/dev/null 2>&1 && echo "karri-test: ping $1 ok" && return
        n=$((n + 1))
        sleep 1
    done
    echo "karri-test: ping $1 failed"
}
"""


VPC = LOCAL_VPC
EVERYTHING = (Rule("-1", cidrs=("0.0.0.0/0",)),)
OPEN = GroupRules("sg-open", EVERYTHING, EVERYTHING)
"""The group of every spec below: all ingress, all egress (the node filters by it)."""


def open_node(data_dir: Path, settings: NodeSettings | None = None, **kwargs) -> Node:
    """A Node whose VPC has the group ``OPEN`` (given before start: only recorded)."""
    node = Node(data_dir, settings, **kwargs)
    asyncio.run(node.set_groups(VPC, [OPEN]))
    return node


def vpc_namespace(data_dir: Path, vpc_id: str = VPC) -> Namespace:
    return Namespace(namespace_name(data_dir, vpc_id))


def user_data(body: str) -> bytes:
    """A `#!` script whose work runs in the background, its output on the console.

    karri-init waits for the script (its output goes through a pipe), so the script
    detaches at once and `boot complete` is not delayed.
    """
    script = f"#!/bin/sh\n{WATCH_DISKS}{PING}(\n{body}\n) </dev/null >/dev/console 2>&1 &\n"
    return script.encode()


def metadata(iid: str, ip: str, mac: str, **extra) -> InstanceMetadata:
    """An instance of account 123456789012 in eucalyptus-1a; ``extra`` sets any field."""
    fields = {
        "instance_id": iid,
        "account_id": "123456789012",
        "region": "eucalyptus",
        "availability_zone": "eucalyptus-1a",
        "reservation_id": "r-00000001",
        "ami_id": "emi-00000001",
        "instance_type": "t1.micro",
        "local_ipv4": ip,
        "mac": mac,
        "launch_time": dt.datetime.now(dt.UTC),
    }
    return InstanceMetadata(**(fields | extra))


@functools.cache
def local_image(path: Path) -> ImageRef:
    """A file of the test's as an image reference (the node's cache copies it once)."""
    data = path.read_bytes()
    image_id = "emi-" + hashlib.sha256(str(path).encode()).hexdigest()[:8]
    return ImageRef(image_id, len(data), hashlib.sha256(data).hexdigest(), path.as_uri())


def spec(
    image: Path, iid: str, ip: str, mac: str, memory: int = 96, root: VolumeDisk | None = None
) -> InstanceSpec:
    return InstanceSpec(
        instance_id=iid,
        vcpus=1,
        memory_mib=memory,
        root=root or ImageRoot(local_image(image / "rootfs.img")),
        mac=mac,
        private_ip=ip,
        kernel=KernelBoot(
            local_image(kernel_of(image, memory)), local_image(image / "initrd"), CMDLINE
        ),
        security_groups=(OPEN.group_id,),
    )


def console(loop: LoopThread, node: Node, iid: str) -> str:
    return loop.call(node.console_output, iid, 1 << 20).decode(errors="replace").replace("\r", "")


def wait_console(
    loop: LoopThread, node: Node, iid: str, pattern: str, timeout: float = 180, count: int = 1
) -> re.Match:
    """Wait until ``pattern`` (a regex) shows ``count`` times on the console.

    Lines printed in the background may follow the console shell's prompt: patterns
    should not anchor at the start of a line.
    """
    regex = re.compile(pattern, re.MULTILINE)
    deadline = time.monotonic() + timeout
    while True:
        text = console(loop, node, iid)
        matches = list(regex.finditer(text))
        if len(matches) >= count:
            return matches[count - 1]
        if time.monotonic() > deadline:
            tail = text[-3000:]
            raise AssertionError(
                f"{iid}: no {pattern!r} (x{count}) in {timeout}s; console:\n{tail}"
            )
        time.sleep(0.25)
