#!/usr/bin/env python3
"""Boot check of the karri tiny guest image under QEMU (TCG).

Standalone script, not a pytest test; run it as root:

    python3 tests/tinyimage/boot_check.py [IMAGEDIR] [--cache DIR] [--keep] [--kvm]

IMAGEDIR holding vmlinuz, initrd and rootfs.img is reused; otherwise the
image is built there (or into a temporary directory) with
src/karri/node/tinyimage/build.sh.

In a network namespace karri-tinytest-<pid> it sets up a bridge
(172.31.0.1/16), lo with 169.254.169.254/32, a tap, dnsmasq with a fixed
--dhcp-host and a stub metadata service on 169.254.169.254:80, then boots the
image with QEMU and checks:

  1. first boot: `karri-tiny: instance i-12345678 boot 1`, the user-data
     marker, `karri-tiny: boot complete`;
  2. (if ssh is available) the installed key logs in to dropbear, the
     hostname is set, and a guest `reboot` gives boot 2;
  3. QMP `system_reset` gives the next boot, user-data does not run again;
  4. QMP `system_powerdown` makes QEMU exit within 30 s.

Everything it creates (namespace, processes by PID, temp files) is removed.
Exit status 0 when every check passed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD_SH = REPO / "src" / "karri" / "node" / "tinyimage" / "build.sh"

INSTANCE_ID = "i-12345678"
HOSTNAME = "ip-172-31-0-5.karri.internal"
GUEST_MAC = "52:54:00:12:34:56"
GUEST_IP = "172.31.0.5"
GATEWAY = "172.31.0.1"
IMDS = "169.254.169.254"
USER_DATA = f"#!/bin/sh\necho USERDATA-MARKER {INSTANCE_ID}\n"
KERNEL_CMDLINE = "console=ttyS0 root=/dev/vda rw quiet"
BOOT_TIMEOUT = 120.0
POWERDOWN_TIMEOUT = 30.0

# Stub metadata service, run inside the namespace: python3 -c IMDS_STUB CONFIG LOG
IMDS_STUB = r"""
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
cfg = json.load(open(sys.argv[1]))
log = open(sys.argv[2], "a", buffering=1)
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def log_message(self, *a):
        pass
    def do_GET(self):
        path = self.path.split("?")[0]
        body = cfg["paths"].get(path)
        log.write(f"{self.client_address[0]} GET {path} {200 if body is not None else 404}\n")
        if body is None:
            self.send_response(404)
            body = "not found"
        else:
            self.send_response(200)
        data = body.encode()
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_PUT(self):
        log.write(f"{self.client_address[0]} PUT {self.path} 405\n")
        self.send_response(405)
        self.send_header("Content-Length", "0")
        self.end_headers()
ThreadingHTTPServer((cfg["bind"], 80), H).serve_forever()
"""


def log(msg: str) -> None:
    print(f"[boot_check {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(*cmd: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, text=True, capture_output=True, **kw)


class Qmp:
    """Minimal synchronous QMP client (JSON lines over a unix socket)."""

    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(str(path))
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.sock.settimeout(timeout)
        self.buf = b""
        self._read()  # greeting
        self.execute("qmp_capabilities")

    def _read(self) -> dict:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("QMP socket closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def execute(self, cmd: str, **args) -> object:
        msg: dict = {"execute": cmd}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            reply = self._read()
            if "event" in reply:
                continue
            if "error" in reply:
                raise RuntimeError(f"QMP {cmd}: {reply['error']}")
            return reply.get("return")

    def close(self) -> None:
        self.sock.close()


class Console:
    """Reads the serial log file written by QEMU."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def text(self) -> str:
        try:
            return self.path.read_bytes().decode("utf-8", "replace").replace("\r", "")
        except FileNotFoundError:
            return ""

    def lines(self) -> list[str]:
        return self.text().split("\n")

    def wait_for(self, line: str, start: int, timeout: float, proc=None) -> tuple[int, float]:
        """Wait for an exact line at index >= start; return (index, seconds)."""
        t0 = time.monotonic()
        while True:
            lines = self.lines()
            for i in range(start, len(lines)):
                # the last line may still be incomplete
                if lines[i].strip() == line and i < len(lines) - 1:
                    return i, time.monotonic() - t0
            if proc is not None and proc.poll() is not None:
                raise CheckFailed(f"QEMU exited ({proc.returncode}) waiting for {line!r}")
            if time.monotonic() - t0 > timeout:
                raise CheckFailed(f"timed out after {timeout:.0f}s waiting for {line!r}")
            time.sleep(0.1)


class CheckFailed(Exception):
    pass


class BootCheck:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.ns = f"karri-tinytest-{os.getpid()}"
        self.tmp = Path(tempfile.mkdtemp(prefix="karri-tinytest-"))
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.ns_created = False
        self.results: list[tuple[str, bool, str]] = []
        self.timings: dict[str, float] = {}
        self.ssh_key: Path | None = None

    # --- bookkeeping -------------------------------------------------------
    def ok(self, name: str, passed: bool, detail: str = "") -> bool:
        self.results.append((name, passed, detail))
        log(f"{'PASS' if passed else 'FAIL'} {name}{': ' + detail if detail else ''}")
        return passed

    def start(self, name: str, cmd: list[str], **kw) -> subprocess.Popen:
        out = open(self.tmp / f"{name}.out", "w")  # noqa: SIM115 - lives as long as the process
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, **kw)
        out.close()
        self.procs.append((name, proc))
        return proc

    def nsexec(self, *cmd: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns, *cmd]

    # --- image -------------------------------------------------------------
    def image(self) -> Path:
        wanted = (self.args.kernel, "initrd", "rootfs.img")
        if self.args.imagedir:
            d = Path(self.args.imagedir).resolve()
            if all((d / f).is_file() for f in wanted):
                log(f"reusing the image in {d}")
                self.timings["build"] = 0.0
                return d
        else:
            d = self.tmp / "image"
        cmd = [str(BUILD_SH), str(d)]
        if self.args.cache:
            cmd.append(str(Path(self.args.cache).resolve()))
        log(f"building: {' '.join(cmd)}")
        t0 = time.monotonic()
        res = subprocess.run(cmd, text=True, capture_output=True)
        self.timings["build"] = time.monotonic() - t0
        if res.returncode != 0:
            sys.stderr.write(res.stdout + res.stderr)
            raise CheckFailed(f"build.sh failed ({res.returncode})")
        log(f"build took {self.timings['build']:.1f}s")
        return d

    # --- network namespace and services ------------------------------------
    def setup_network(self) -> None:
        ns = self.ns
        run("ip", "netns", "add", ns)
        self.ns_created = True
        for cmd in (
            "ip link set lo up",
            f"ip addr add {IMDS}/32 dev lo",
            "ip link add br0 type bridge",
            f"ip addr add {GATEWAY}/16 dev br0",
            "ip link set br0 up",
            "ip tuntap add dev tap0 mode tap",
            "ip link set tap0 master br0",
            "ip link set tap0 up",
        ):
            run(*self.nsexec(*cmd.split()))
        self.start(
            "dnsmasq",
            self.nsexec(
                "dnsmasq",
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--port=0",
                "--interface=br0",
                "--bind-interfaces",
                "--dhcp-authoritative",
                f"--dhcp-range={GATEWAY[:-1]}10,172.31.255.250,255.255.0.0,1h",
                f"--dhcp-host={GUEST_MAC},{GUEST_IP}",
                f"--dhcp-option=option:router,{GATEWAY}",
                f"--dhcp-leasefile={self.tmp / 'dnsmasq.leases'}",
                "--log-dhcp",
                f"--log-facility={self.tmp / 'dnsmasq.log'}",
            ),
        )
        paths = {
            "/latest/meta-data/": "ami-id\nhostname\ninstance-id\nlocal-hostname\n"
            "local-ipv4\npublic-keys/\n",
            "/latest/meta-data/instance-id": INSTANCE_ID,
            "/latest/meta-data/hostname": HOSTNAME,
            "/latest/meta-data/local-hostname": HOSTNAME,
            "/latest/meta-data/local-ipv4": GUEST_IP,
            "/latest/meta-data/ami-id": "emi-00000001",
            "/latest/meta-data/public-keys/": "0=karri-tinytest",
            "/latest/meta-data/public-keys/0/": "openssh-key",
            "/latest/meta-data/public-keys/0/openssh-key": self.public_key(),
            "/latest/user-data": USER_DATA,
        }
        cfg = self.tmp / "imds.json"
        cfg.write_text(json.dumps({"bind": IMDS, "paths": paths}))
        self.start(
            "imds",
            self.nsexec(sys.executable, "-c", IMDS_STUB, str(cfg), str(self.tmp / "imds.log")),
        )
        # wait until the stub answers
        deadline = time.monotonic() + 10
        while True:
            res = run(
                *self.nsexec(
                    sys.executable,
                    "-c",
                    "import urllib.request,sys;"
                    f"urllib.request.urlopen('http://{IMDS}/latest/meta-data/instance-id',"
                    "timeout=1)",
                ),
                check=False,
            )
            if res.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise CheckFailed(f"metadata stub does not answer: {res.stderr}")
            time.sleep(0.2)
        (self.tmp / "imds.log").write_text("")

    def public_key(self) -> str:
        if shutil.which("ssh-keygen") and shutil.which("ssh"):
            key = self.tmp / "id_ed25519"
            run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "boot-check", "-f", str(key))
            self.ssh_key = key
            return (self.tmp / "id_ed25519.pub").read_text().strip()
        log("no ssh/ssh-keygen on this host: the ssh checks are skipped")
        return (
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0wmN/Cr3JXqmLW7u+g9pTh+wyqDHpSQEQQ5ca1Rt/s"
            " boot-check-dummy"
        )

    def ssh(self, command: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
        assert self.ssh_key is not None
        return run(
            *self.nsexec(
                "ssh",
                "-i",
                str(self.ssh_key),
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                f"UserKnownHostsFile={self.tmp / 'known_hosts'}",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=10",
                f"root@{GUEST_IP}",
                command,
            ),
            check=False,
            timeout=timeout,
        )

    # --- QEMU --------------------------------------------------------------
    def start_qemu(self, image: Path) -> subprocess.Popen:
        overlay = self.tmp / "root.qcow2"
        run(
            "qemu-img",
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            str(image / "rootfs.img"),
            "-F",
            "raw",
            str(overlay),
        )
        self.serial = self.tmp / "console.log"
        self.qmp_path = self.tmp / "qmp.sock"
        accel = "kvm" if self.args.kvm else "tcg"
        cmd = [
            "qemu-system-x86_64",
            "-machine",
            f"{self.args.machine},accel={accel}",
            "-m",
            "128",
            "-smp",
            "1",
            "-nodefaults",
            "-display",
            "none",
            "-no-user-config",
            "-chardev",
            f"file,id=ser0,path={self.serial}",
            "-serial",
            "chardev:ser0",
            "-kernel",
            str(image / self.args.kernel),
            "-initrd",
            str(image / "initrd"),
            "-append",
            f"{KERNEL_CMDLINE} {self.args.append}".strip(),
            "-drive",
            f"file={overlay},if=none,id=root,format=qcow2",
            "-device",
            "virtio-blk-pci,drive=root,serial=vol-00000000",
            "-netdev",
            "tap,id=net0,ifname=tap0,script=no,downscript=no",
            "-device",
            f"virtio-net-pci,netdev=net0,mac={GUEST_MAC},romfile=",
            "-device",
            "virtio-rng-pci",
            "-qmp",
            f"unix:{self.qmp_path},server=on,wait=off",
        ]
        (self.tmp / "qemu.cmd").write_text(" ".join(cmd) + "\n")
        proc = self.start("qemu", self.nsexec(*cmd), stdin=subprocess.DEVNULL)
        self.qmp = Qmp(self.qmp_path)
        return proc

    # --- the checks ----------------------------------------------------------
    def check_boot(self, qemu: subprocess.Popen, n: int, start: int, t0: float, label: str) -> int:
        con = self.console
        boot_line = f"karri-tiny: instance {INSTANCE_ID} boot {n}"
        try:
            i_boot, _ = con.wait_for(boot_line, start, BOOT_TIMEOUT, qemu)
            i_done, _ = con.wait_for("karri-tiny: boot complete", i_boot, BOOT_TIMEOUT, qemu)
        except CheckFailed as e:
            self.ok(f"{label}: boot {n}", False, str(e))
            raise
        elapsed = time.monotonic() - t0
        self.timings[label] = elapsed
        self.ok(f"{label}: '{boot_line}' and boot complete", True, f"{elapsed:.1f}s")
        section = con.lines()[start : i_done + 1]
        ud_runs = [ln for ln in section if ln.strip() == f"USERDATA-MARKER {INSTANCE_ID}"]
        if n == 1:
            self.ok(f"{label}: user-data ran once", len(ud_runs) == 1, f"{len(ud_runs)} marker(s)")
        else:
            self.ok(
                f"{label}: user-data did not run again",
                not ud_runs
                and any("user-data already ran" in ln for ln in section)
                and con.text().count(f"USERDATA-MARKER {INSTANCE_ID}\n") == 1,
                f"{len(ud_runs)} marker(s) in this boot",
            )
        self.ok(
            f"{label}: ssh key installed",
            any(re.match(r"karri-tiny: installed \d+ ssh public key", ln) for ln in section),
        )
        return i_done + 1

    def run(self) -> bool:
        image = self.image()
        self.setup_network()
        self.console = Console(self.tmp / "console.log")
        t0 = time.monotonic()
        qemu = self.start_qemu(image)
        next_line = self.check_boot(qemu, 1, 0, t0, "first boot")
        boot = 1

        if self.ssh_key is not None:
            res = self.ssh("hostname; cat /var/lib/karri/boot-count; id -u")
            out = res.stdout.split()
            self.ok(
                "ssh login with the metadata key (dropbear)",
                res.returncode == 0,
                res.stderr.strip()[-200:] if res.returncode else "",
            )
            if res.returncode == 0:
                self.ok(
                    "hostname set from metadata",
                    out[:1] == [HOSTNAME.split(".")[0]],
                    f"hostname={out[:1]}",
                )
                self.ok("boot-count file", out[1:2] == ["1"], f"boot-count={out[1:2]}")
                # guest-initiated reboot: busybox reboot signals init and returns
                t0 = time.monotonic()
                try:
                    res = self.ssh("/sbin/reboot", timeout=30)
                    self.ok("ssh: guest reboot requested", res.returncode == 0, res.stderr.strip())
                except subprocess.TimeoutExpired:
                    self.ok("ssh: guest reboot requested", True, "ssh did not return (timeout)")
                boot += 1
                next_line = self.check_boot(qemu, boot, next_line, t0, "guest reboot")

        t0 = time.monotonic()
        self.qmp.execute("system_reset")
        boot += 1
        next_line = self.check_boot(qemu, boot, next_line, t0, "QMP system_reset")

        t0 = time.monotonic()
        self.qmp.execute("system_powerdown")
        try:
            rc = qemu.wait(timeout=POWERDOWN_TIMEOUT)
            elapsed = time.monotonic() - t0
            self.timings["powerdown"] = elapsed
            self.ok("QMP system_powerdown: QEMU exited", True, f"{elapsed:.1f}s, status {rc}")
        except subprocess.TimeoutExpired:
            self.ok("QMP system_powerdown: QEMU exited", False, "still running after 30s")
        self.ok(
            "guest saw the ACPI power button",
            "karri-tiny: ACPI power button" in self.console.text(),
        )

        imds = (self.tmp / "imds.log").read_text().split("\n")
        clients = {ln.split()[0] for ln in imds if ln.strip()}
        self.ok(
            "metadata requests came from the guest's DHCP address",
            clients == {GUEST_IP},
            f"clients={sorted(clients)}",
        )
        return all(p for _, p, _ in self.results)

    # --- cleanup -----------------------------------------------------------
    def cleanup(self) -> None:
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    log(f"killing {name} (pid {proc.pid})")
                    proc.kill()
                    proc.wait()
        if hasattr(self, "qmp"):
            self.qmp.close()
        if self.ns_created:
            run(*self.nsexec("ip", "link", "del", "tap0"), check=False)
            run(*self.nsexec("ip", "link", "del", "br0"), check=False)
            run("ip", "netns", "del", self.ns, check=False)
        if self.args.keep:
            log(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("imagedir", nargs="?", help="image directory to reuse or build into")
    ap.add_argument("--cache", help="package cache for build.sh")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--kvm", action="store_true", help="use KVM instead of TCG")
    ap.add_argument("--machine", default="q35", help="QEMU machine type (q35 or pc)")
    ap.add_argument(
        "--kernel",
        choices=("vmlinuz", "vmlinux"),
        default="vmlinuz",
        help="boot the bzImage (default) or the uncompressed PVH vmlinux",
    )
    ap.add_argument("--append", default="", help="extra kernel command line (e.g. karri.debug)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("boot_check.py must run as root (network namespace, tap)", file=sys.stderr)
        return 2
    for tool in ("ip", "dnsmasq", "qemu-system-x86_64", "qemu-img"):
        if not shutil.which(tool):
            print(f"missing tool: {tool}", file=sys.stderr)
            return 2
    check = BootCheck(args)
    passed = False
    try:
        passed = check.run()
    except CheckFailed as e:
        log(f"FAIL: {e}")
    except Exception as e:  # report, clean up, fail
        log(f"ERROR: {type(e).__name__}: {e}")
        import traceback

        traceback.print_exc()
    finally:
        if not passed:
            con = check.tmp / "console.log"
            if con.exists():
                log("console log (last 60 lines):")
                print("\n".join(con.read_text("utf-8", "replace").splitlines()[-60:]))
        check.cleanup()
    n_pass = sum(1 for _, p, _ in check.results if p)
    n_fail = sum(1 for _, p, _ in check.results if not p)
    if not passed and n_fail == 0:
        n_fail = 1
    log("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in check.timings.items()))
    print(f"{n_pass} passed, {n_fail} failed")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
