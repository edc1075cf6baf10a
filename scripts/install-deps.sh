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
    libpq5                          # psycopg's libpq (karri up --db-url postgresql://...)
    postgresql                      # the tests' throwaway PostgreSQL clusters (tests/postgres.py)
    ceph-common python3-rados python3-rbd  # Walrus on RADOS (karri up --walrus-backend rados)
    ceph-mon ceph-mgr ceph-osd      # the tests' throwaway one-host Ceph clusters (tests/ceph.py)
    qemu-block-extra                # QEMU's rbd driver
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

# Ceph's Python bindings exist for Debian's own Python only (python3-rados, python3-rbd):
# the venv reaches the two extension modules through links in a directory on its path,
# not through all of Debian's dist-packages.
bindings=.venv/ceph-bindings
mkdir -p "$bindings"
for module in /usr/lib/python3/dist-packages/{rados,rbd}.cpython-*.so; do
    [ -e "$module" ] && ln -sf "$module" "$bindings/"
done
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
echo "$PWD/$bindings" >"$site/karri-ceph-bindings.pth"
.venv/bin/python -c 'import rados' 2>/dev/null ||
    echo "warning: the venv's Python cannot load Ceph's bindings (--walrus-backend rados)" >&2
