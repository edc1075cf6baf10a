"""A Node with three real TCG guests of the tiny image: boot, network, metadata, volumes,
reboot, power-off and crash.

- A (instance store) pings B, runs the IMDSv2 token flow from inside with busybox nc, and
  is reached over SSH through its public address.
- B (EBS-style: its root is a volume file) first poses as A (takes A's address) and asks
  the metadata service for A's instance id, then pings A.
- C powers itself off after booting.
Both A and B print their disks (name=serial) whenever they change, for the hot-plug tests.
The tests run in file order and share the guests.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from karri.node import (
    DetachTimeout,
    ExitReason,
    FileTarget,
    ImageRoot,
    InstanceExists,
    InstanceExit,
    InstanceMetadata,
    InstanceSpec,
    InsufficientCapacity,
    LaunchError,
    NetworkError,
    Node,
    NodeSettings,
    UnknownInstance,
    VmState,
    VolumeDisk,
    VolumeError,
)

from . import guests
from .conftest import LoopThread, needs_root

pytestmark = [needs_root, pytest.mark.guests]

A, B, C = "i-0000000a", "i-0000000b", "i-0000000c"
IP = {A: "172.31.0.10", B: "172.31.0.11", C: "172.31.0.12"}
MAC = {A: "52:54:00:00:00:0a", B: "52:54:00:00:00:0b", C: "52:54:00:00:00:0c"}
GATEWAY = "172.31.0.1"
ROOT_VOLUME = "vol-1000000b"
VOLUME = "vol-2000000a"

IMDSV2 = r"""
imds() {
    printf '%s %s HTTP/1.0\r\n%s\r\n\r\n' "$1" "$2" "$3" | nc -w 5 169.254.169.254 80
}
token=$(imds PUT /latest/api/token "X-aws-ec2-metadata-token-ttl-seconds: 60" | tail -n 1)
id=$(imds GET /latest/meta-data/instance-id "X-aws-ec2-metadata-token: $token" | tail -n 1)
echo "karri-test: imdsv2 [$id]"
status=$(imds GET /latest/meta-data/instance-id "X-aws-ec2-metadata-token: bogus" | head -n 1)
echo "karri-test: bad token [$(echo "$status" | tr -d '\r')]"
"""

A_SCRIPT = f"""
ping_until {IP[B]}
{IMDSV2}
watch_disks
"""

B_SCRIPT = f"""
own=$(wget -q -O - http://169.254.169.254/latest/meta-data/instance-id)
echo "karri-test: own id [$own]"
ip addr flush dev eth0
ip addr add {IP[A]}/16 dev eth0
ip route add default via {GATEWAY}
stolen=$(timeout 8 wget -q -O - http://169.254.169.254/latest/meta-data/instance-id 2>&1)
echo "karri-test: spoofed read [$stolen]"
ip addr flush dev eth0
ip addr add {IP[B]}/16 dev eth0
ip route add default via {GATEWAY}
ping_until {IP[A]}
watch_disks
"""

C_SCRIPT = "sleep 3; poweroff"


@dataclass
class Guests:
    loop: LoopThread
    node: Node
    tmp: Path
    key: Path
    exits: list[InstanceExit] = field(default_factory=list)
    booted_in: dict[str, float] = field(default_factory=dict)

    def run(self, coro, timeout: float = 120):
        return self.loop.run(coro, timeout)

    def info(self, iid: str):
        return self.loop.call(self.node.info, iid)

    def wait(self, iid: str, pattern: str, timeout: float = 180, count: int = 1):
        return guests.wait_console(self.loop, self.node, iid, pattern, timeout, count)

    def exit_of(self, iid: str, timeout: float = 60) -> InstanceExit:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for report in self.exits:
                if report.instance_id == iid:
                    return report
            time.sleep(0.2)
        raise AssertionError(f"no exit reported for {iid}: {self.exits}")

    def ns(self, *cmd: str) -> str:
        return subprocess.run(
            ["ip", "netns", "exec", guests.vpc_namespace(self.node.data_dir).name, *cmd],
            capture_output=True,
            text=True,
            check=True,
        ).stdout


def _ssh_key(tmp: Path) -> tuple[Path, str]:
    key = tmp / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key, (tmp / "id_ed25519.pub").read_text().strip()


@pytest.fixture(scope="module")
def env(
    loop: LoopThread, tiny_image: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Guests]:
    tmp = tmp_path_factory.mktemp("guests")
    key, public_key = _ssh_key(tmp)
    meta: dict[str, InstanceMetadata] = {
        A: guests.metadata(
            A,
            IP[A],
            MAC[A],
            public_keys=(("test", public_key),),
            user_data=guests.user_data(A_SCRIPT),
        ),
        B: guests.metadata(B, IP[B], MAC[B], user_data=guests.user_data(B_SCRIPT)),
        C: guests.metadata(C, IP[C], MAC[C], user_data=guests.user_data(C_SCRIPT)),
    }
    exits: list[InstanceExit] = []
    lock = threading.Lock()

    def on_exit(report: InstanceExit) -> None:
        with lock:
            exits.append(report)

    node = guests.open_node(
        tmp / "data",
        NodeSettings(stop_timeout=30, console_limit=128 * 1024),
        metadata=meta.get,
        on_exit=on_exit,
    )
    env = Guests(loop, node, tmp, key, exits)
    loop.run(node.start(), 60)
    try:
        root = tmp / f"{ROOT_VOLUME}.raw"
        shutil.copyfile(tiny_image / "rootfs.img", root)
        specs = [
            guests.spec(tiny_image, A, IP[A], MAC[A]),
            guests.spec(
                tiny_image, B, IP[B], MAC[B], root=VolumeDisk(ROOT_VOLUME, FileTarget(root))
            ),
            guests.spec(tiny_image, C, IP[C], MAC[C]),
        ]
        started = time.monotonic()
        for spec in specs:
            loop.run(node.launch(spec))
        for iid in (A, B):
            env.wait(iid, guests.BOOTED)
            env.booted_in[iid] = time.monotonic() - started
        print(f"\nlaunch to boot complete under {node.accelerator}: {env.booted_in}")
        yield env
    finally:
        loop.run(node.close(stop_instances=True), 120)
        assert not guests.vpc_namespace(node.data_dir).exists()


def test_guests_boot_with_their_instance_id_from_metadata(env: Guests) -> None:
    for iid in (A, B):
        env.wait(iid, rf"karri-tiny: instance {iid} boot 1$")
        info = env.info(iid)
        assert info.state == VmState.RUNNING and info.accelerator == env.node.accelerator
        assert info.pid and os.path.exists(f"/proc/{info.pid}")
    assert env.node.accelerator == "tcg" or os.access("/dev/kvm", os.W_OK)
    # the hostname came from the metadata too
    env.wait(A, r"root@ip-172-31-0-10:")
    capacity = env.loop.call(env.node.capacity)
    assert capacity.vcpus_used >= 2 and capacity.memory_mib_used >= 96 * 2
    assert capacity.fits(1, 64) and not capacity.fits(capacity.vcpus_total + 1, 64)


def test_launch_refuses_what_it_cannot_do(env: Guests, tiny_image: Path) -> None:
    capacity = env.loop.call(env.node.capacity)
    too_big = guests.spec(tiny_image, "i-000000ff", "172.31.0.99", "52:54:00:00:00:ff")
    too_big = dataclasses.replace(too_big, vcpus=capacity.vcpus_total + 1)
    with pytest.raises(InsufficientCapacity):
        env.run(env.node.launch(too_big))
    with pytest.raises(InstanceExists):
        env.run(env.node.launch(guests.spec(tiny_image, A, IP[A], MAC[A])))
    taken = guests.spec(tiny_image, "i-000000ff", IP[A], "52:54:00:00:00:ff")
    with pytest.raises(NetworkError):
        env.run(env.node.launch(taken))
    with pytest.raises(UnknownInstance):
        env.loop.call(env.node.info, "i-000000ff")
    assert not (env.node.instances_dir / "i-000000ff").exists()
    # QEMU refuses: its own words come back, nothing is left running or plugged
    broken = guests.spec(tiny_image, "i-000000fe", "172.31.0.98", "52:54:00:00:00:fe")
    not_a_kernel = env.tmp / "not-a-kernel"
    not_a_kernel.write_bytes(b"\0" * 4096)
    broken = dataclasses.replace(
        broken,
        kernel=dataclasses.replace(broken.kernel, kernel=guests.local_image(not_a_kernel)),
    )
    with pytest.raises(LaunchError, match="kernel too old"):  # QEMU's words
        env.run(env.node.launch(broken))
    info = env.info("i-000000fe")
    assert info.state == VmState.EXITED and info.exit and "launch failed" in info.exit.detail
    assert "kt000000fe" not in env.ns("ip", "-o", "link")
    env.run(env.node.destroy("i-000000fe"))
    assert not any(e.instance_id == "i-000000fe" for e in env.exits)


# cli; xor ax,ax; mov ds,ax; mov si,msg; mov dx,0x3f8
# next: lodsb; test al,al; jz done; out dx,al; jmp next
# done: hlt; jmp done
# msg: MARKER, CR, LF, 0 -- at 0x7c00 + 22
BOOT_MARKER = b"karri-boot-sector-ok"
_CODE = bytes.fromhex("fa31c08ed8be167cbaf803ac84c07403eeebf8f4ebfd")
BOOT_SECTOR = (_CODE + BOOT_MARKER + b"\r\n\0").ljust(510, b"\0") + b"\x55\xaa"


def test_without_a_kernel_seabios_boots_the_root_disk(env: Guests) -> None:
    """The root disk here is a boot sector that prints a marker on the serial port.
    (SeaBIOS does not boot a virtio disk of a single sector: 1 MiB then.)"""
    disk = env.tmp / "bootsector.img"
    disk.write_bytes(BOOT_SECTOR.ljust(1 << 20, b"\0"))
    iid = "i-000000f0"
    spec = InstanceSpec(
        iid, 1, 32, ImageRoot(guests.local_image(disk)), "52:54:00:00:00:f0", "172.31.0.240"
    )
    env.run(env.node.launch(spec))
    try:
        env.wait(iid, BOOT_MARKER.decode(), 60)
    finally:
        env.run(env.node.destroy(iid))


def test_guests_ping_each_other(env: Guests) -> None:
    env.wait(A, rf"karri-test: ping {IP[B]} ok$", 120)
    env.wait(B, rf"karri-test: ping {IP[A]} ok$", 120)


def test_imdsv2_token_flow_from_inside_a_guest(env: Guests) -> None:
    env.wait(A, rf"karri-test: imdsv2 \[{A}\]$", 120)
    env.wait(A, r"karri-test: bad token \[HTTP/1.1 401 Unauthorized\]$", 60)


def test_a_guest_posing_as_another_gets_nothing_of_it(env: Guests) -> None:
    env.wait(B, rf"karri-test: own id \[{B}\]$", 60)
    stolen = env.wait(B, r"karri-test: spoofed read \[(.*)\]$", 60).group(1)
    assert A not in stolen and "karri" not in stolen


def _ssh(env: Guests, command: str) -> subprocess.CompletedProcess:
    """Run ``command`` on A as root, through A's public address."""
    return subprocess.run(
        ["ssh", "-i", str(env.key), "-o", "StrictHostKeyChecking=no", "-o", "BatchMode=yes",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=30", "-o", "LogLevel=ERROR",
         f"root@{env.info(A).public_ip}", command],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_public_address_forwards_ssh(env: Guests) -> None:
    public_ip = env.info(A).public_ip
    assert public_ip and public_ip.startswith("127.64.")
    with socket.create_connection((public_ip, 22), timeout=30) as sock:
        assert sock.recv(64).startswith(b"SSH-2.0-dropbear")
    result = _ssh(env, "hostname; cat /sys/class/net/eth0/address")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ip-172-31-0-10", MAC[A]]


def test_hot_plug_attach_shows_the_volume_id_as_serial_and_detach_removes_it(
    env: Guests,
) -> None:
    volume = env.tmp / f"{VOLUME}.raw"
    with open(volume, "wb") as f:
        f.truncate(16 << 20)
        f.write(b"karri volume content " * 1000)
    env.wait(A, r"karri-test: disks vda=$", 120)
    env.run(env.node.attach_volume(A, VOLUME, FileTarget(volume)))
    env.wait(A, rf"karri-test: disks vda= vdb={VOLUME}$", 60)
    assert [v.volume_id for v in env.info(A).volumes] == [VOLUME]
    env.run(env.node.detach_volume(A, VOLUME))
    env.wait(A, r"karri-test: disks vda=$", 60, count=2)
    assert env.info(A).volumes == ()
    # released: the same file plugs into B, behind B's root volume
    env.run(env.node.attach_volume(B, VOLUME, FileTarget(volume)))
    env.wait(B, rf"karri-test: disks vda={ROOT_VOLUME} vdb={VOLUME}$", 60)


def test_backup_copies_plugged_in_volumes(env: Guests) -> None:
    volume, copy = env.tmp / f"{VOLUME}.raw", env.tmp / "copy.raw"
    with open(copy, "wb") as f:
        f.truncate(volume.stat().st_size)
    env.run(env.node.backup_volume(B, VOLUME, copy))
    assert copy.read_bytes() == volume.read_bytes()
    root_copy = env.tmp / "root-copy.raw"
    with open(root_copy, "wb") as f:
        f.truncate((env.tmp / f"{ROOT_VOLUME}.raw").stat().st_size)
    env.run(env.node.backup_volume(B, ROOT_VOLUME, root_copy))  # the root, in use
    with open(root_copy, "rb") as f:
        f.seek(1080)
        assert f.read(2) == b"\x53\xef"  # an ext4 superblock
    with pytest.raises(VolumeError):
        env.run(env.node.backup_volume(A, VOLUME, copy))


def _holds(pid: int, path: Path) -> bool:
    fds = Path(f"/proc/{pid}/fd")
    return any(os.path.realpath(fd) == str(path) for fd in fds.iterdir())


def test_detach_of_a_guest_that_does_not_let_go_is_forced(env: Guests) -> None:
    volume = env.tmp / f"{VOLUME}.raw"
    vm = env.node._vms[B]
    pid = env.info(B).pid
    assert _holds(pid, volume)
    env.run(vm.qmp.stop())  # a frozen guest cannot answer the ACPI eject
    try:
        with pytest.raises(DetachTimeout):
            env.run(env.node.detach_volume(B, VOLUME, timeout=2))
        assert [v.state for v in env.info(B).volumes] == ["detaching"]
        env.run(env.node.detach_volume(B, VOLUME, force=True, timeout=2))
        assert env.info(B).volumes == ()
        assert not _holds(pid, volume)  # QEMU let go of the file
    finally:
        env.run(vm.qmp.cont())
    env.wait(B, rf"karri-test: disks vda={ROOT_VOLUME}$", 60, count=2)
    deadline = time.monotonic() + 60  # the node drops the block nodes at DEVICE_DELETED,
    while True:  # which comes after the guest has let go of the disk
        nodes = set(env.run(vm.qmp.query_named_block_nodes()))
        if not {f"blk-{VOLUME}", f"null-{VOLUME}"} & nodes:
            break
        assert time.monotonic() < deadline, nodes
        time.sleep(0.2)


def test_console_output_is_the_tail(env: Guests) -> None:
    tail = env.loop.call(env.node.console_output, A, 100)
    assert 0 < len(tail) <= 100
    assert env.loop.call(env.node.console_output, A).endswith(tail)


def test_guest_power_off_is_reported(env: Guests) -> None:
    report = env.exit_of(C, 240)
    assert report.reason == ExitReason.GUEST_SHUTDOWN
    assert env.loop.call(env.node.state, C) == VmState.EXITED
    assert "karri-tiny: shutting down" in guests.console(env.loop, env.node, C)
    assert "kt0000000c" not in env.ns("ip", "-o", "link")  # its tap is gone


def test_reboot_shows_a_second_boot(env: Guests) -> None:
    pid = env.info(A).pid
    env.run(env.node.reboot(A))
    env.wait(A, rf"karri-tiny: instance {A} boot 2$", 180)
    env.wait(A, guests.BOOTED, 180, count=2)
    text = guests.console(env.loop, env.node, A)
    assert text.count("karri-tiny: running user-data") == 1  # once per instance
    assert env.info(A).pid == pid


def test_console_log_stays_bounded(env: Guests) -> None:
    """The guest prints 3x the node's limit; the log is trimmed, the tail stays right."""
    limit = env.node.settings.console_limit
    spam = f"head -c {3 * limit} /dev/zero | tr '\\000' x; echo; echo karri-test: spammed"
    assert _ssh(env, f"({spam}) >/dev/ttyS0").returncode == 0
    env.wait(A, r"karri-test: spammed$", 120)
    deadline = time.monotonic() + 30
    while (size := (env.node.instances_dir / A / "console.log").stat().st_size) > limit:
        assert time.monotonic() < deadline, size
        time.sleep(0.5)
    assert guests.console(env.loop, env.node, A).rstrip().endswith("karri-test: spammed")


def test_acpi_shutdown_ends_qemu(env: Guests) -> None:
    pid = env.info(A).pid
    report = env.run(env.node.shutdown(A, 60), 120)
    assert report.reason == ExitReason.HOST_SHUTDOWN
    assert not os.path.exists(f"/proc/{pid}")
    assert env.exit_of(A).reason == ExitReason.HOST_SHUTDOWN
    assert env.info(A).public_ip is None
    assert "kt0000000a" not in env.ns("ip", "-o", "link")


def test_qemu_killed_by_hand_is_reported_with_a_reason(env: Guests) -> None:
    pid = env.info(B).pid
    os.kill(pid, signal.SIGKILL)
    report = env.exit_of(B)
    assert report.reason == ExitReason.CRASHED
    assert "signal 9" in report.detail and "SIGKILL" in report.detail
    assert env.loop.call(env.node.state, B) == VmState.EXITED


def test_destroy_removes_the_instance(env: Guests) -> None:
    for iid in (A, B, C):
        env.run(env.node.destroy(iid))
        assert not (env.node.instances_dir / iid).exists()
    env.run(env.node.destroy(A))  # again: nothing to do, no error
    assert env.loop.call(env.node.instances) == []
    # the VPC's last instance is gone, and so is its namespace (taps, rules, routes)
    assert not guests.vpc_namespace(env.node.data_dir).exists()
    assert (env.tmp / f"{ROOT_VOLUME}.raw").exists()  # volumes are not the node's to delete
