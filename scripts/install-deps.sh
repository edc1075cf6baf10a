#!/usr/bin/env bash
# Installs what karri needs and is missing: Debian packages, then a .venv with karri
# and its Python dependencies. Idempotent and quick when nothing is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(
    qemu-system-x86 qemu-utils      # guests and their disks
    busybox-static kmod cpio e2fsprogs xz-utils  # the default tiny image
    dnsmasq-base iproute2 nftables procps  # the VPC namespaces (nft: groups, NAT; sysctl)
    openssh-client                  # the tests log in to guests
    putty-tools                     # the tests read CreateKeyPair's PuTTY keys with puttygen
    python3 python3-venv            # the runtime, when the machine has no other Python
)

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Any Python >= 3.11 with venv will do: the first on PATH, else Debian's own.
python=""
for candidate in python3 /usr/bin/python3; do
    if command -v "$candidate" >/dev/null &&
        "$candidate" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        python=$candidate
        break
    fi
done
[ -n "$python" ] || { echo "no Python >= 3.11 with venv found" >&2; exit 1; }

stamp=.venv/.installed
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e '.[test]'
    touch "$stamp"
fi
