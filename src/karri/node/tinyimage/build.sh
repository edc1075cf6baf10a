#!/bin/bash
# karri tiny guest image builder.
#
#   build.sh OUTDIR [CACHEDIR]
#
# Builds, from Debian packages fetched with `apt-get download` (cached in
# CACHEDIR, default OUTDIR/cache):
#   OUTDIR/vmlinuz     kernel of Debian's linux-image-amd64
#   OUTDIR/vmlinux     the same kernel uncompressed (PVH ELF, boots faster
#                      under TCG with QEMU -kernel); only if xz is there
#   OUTDIR/initrd      busybox initramfs (gzip, newc cpio) with the virtio,
#                      ext4 and ACPI button modules; mounts /dev/vda and
#                      switch_roots into it
#   OUTDIR/rootfs.img  small ext4 image: busybox, /sbin/karri-init, dropbear
#   OUTDIR/cmdline     the kernel command line to boot it with
#   OUTDIR/build-info  package versions used
#
# Needs: apt-get (lists updated), dpkg-deb, kmod (depmod, modprobe), cpio,
# gzip, e2fsprogs (mke2fs with -d).  Root is not needed.
#
# Environment:
#   KARRI_TINY_KERNEL_PKG   kernel package (default: what linux-image-amd64 depends on)
#   KARRI_TINY_ROOTFS_SIZE  rootfs image size for mke2fs (default 64M)
#   KARRI_TINY_DROPBEAR     1 (default) to add dropbear, 0 to leave it out
set -euo pipefail

usage() { echo "usage: $0 OUTDIR [CACHEDIR]" >&2; exit 2; }
die() { echo "build.sh: error: $*" >&2; exit 1; }
log() { echo "build.sh: [${SECONDS}s] $*" >&2; }

[ $# -ge 1 ] && [ $# -le 2 ] || usage
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GUEST=$HERE
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
CACHE=${2:-$OUT/cache}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
ROOTFS_SIZE=${KARRI_TINY_ROOTFS_SIZE:-64M}
WITH_DROPBEAR=${KARRI_TINY_DROPBEAR:-1}
CMDLINE="console=ttyS0 root=/dev/vda rw quiet"

# Modules the initramfs loads (their dependencies and soft dependencies are
# added from depmod's data, in load order).
MODULES="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci
virtio_blk failover net_failover virtio_net crc16 mbcache jbd2 ext4
button evdev virtio_rng pvpanic pvpanic_mmio"
DROPBEAR_PKGS="dropbear-bin libtomcrypt1 libtommath1 libgmp10 libcrypt1 zlib1g libc6"

for tool in apt-get apt-cache dpkg-deb depmod modprobe cpio gzip mke2fs flock; do
    command -v "$tool" >/dev/null 2>&1 || [ -x "/sbin/$tool" ] || [ -x "/usr/sbin/$tool" ] \
        || die "missing tool: $tool"
done
export PATH=$PATH:/usr/sbin:/sbin
export LC_ALL=C

WORK=$(mktemp -d "$OUT/.build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

APT_OPTS=(-q)
[ "$(id -u)" = 0 ] && APT_OPTS+=(-o APT::Sandbox::User=root)

# --- fetching ---------------------------------------------------------------
# fetch PKG...: make sure the candidate .deb of each package is in CACHE and
# print "PKG PATH" lines.  Offline, falls back to the newest cached .deb.
fetch() {
    local uris pkg file missing=() line size
    declare -A files=() sizes=()
    if uris=$(apt-get "${APT_OPTS[@]}" download --print-uris "$@" 2>/dev/null); then
        while read -r line; do
            [ -n "$line" ] || continue
            read -r _ file size _ <<<"$line"
            files[${file%%_*}]=$file
            sizes[${file%%_*}]=$size
        done <<<"$uris"
    fi
    for pkg in "$@"; do
        file=${files[$pkg]:-}
        if [ -n "$file" ]; then
            # a missing or truncated download is fetched again
            if [ "$(stat -c %s "$CACHE/$file" 2>/dev/null || echo 0)" != "${sizes[$pkg]}" ]; then
                rm -f "$CACHE/$file"
                missing+=("$pkg")
            fi
        fi
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "downloading ${missing[*]}"
        (cd "$CACHE" && apt-get "${APT_OPTS[@]}" download "${missing[@]}" >&2) \
            || die "apt-get download ${missing[*]} failed"
    fi
    for pkg in "$@"; do
        file=${files[$pkg]:-}
        if [ -z "$file" ]; then
            file=$(cd "$CACHE" && ls -1 "${pkg}"_*.deb 2>/dev/null | sort -V | tail -n 1)
            [ -n "$file" ] || die "cannot fetch $pkg (apt-get update done?)"
            log "offline: using cached $file"
        fi
        [ -s "$CACHE/$file" ] || die "download of $pkg failed"
        echo "$pkg $CACHE/$file"
    done
}

kernel_pkg=${KARRI_TINY_KERNEL_PKG:-}
if [ -z "$kernel_pkg" ]; then
    kernel_pkg=$(apt-cache depends linux-image-amd64 2>/dev/null \
        | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n 1 || true)
fi
if [ -z "$kernel_pkg" ]; then
    kernel_pkg=$(cd "$CACHE" && ls -1 linux-image-[0-9]*-amd64_*.deb 2>/dev/null \
        | sort -V | tail -n 1 | cut -d_ -f1)
fi
[ -n "$kernel_pkg" ] || die "cannot resolve linux-image-amd64 to a kernel package"

pkgs=("$kernel_pkg" busybox-static)
[ "$WITH_DROPBEAR" = 1 ] && read -r -a extra <<<"$DROPBEAR_PKGS" && pkgs+=("${extra[@]}")
declare -A DEB=()
# one build at a time fills the cache
exec 9>"$CACHE/.lock"
flock 9
fetch "${pkgs[@]}" > "$WORK/debs"
flock -u 9
while read -r pkg path; do DEB[$pkg]=$path; done < "$WORK/debs"

# --- kernel and modules -----------------------------------------------------
K=$WORK/kernel
# Only the module directories that can hold MODULES and their dependencies
# are unpacked (the whole package is ~400 MB of modules); if the dependency
# check below finds a module missing, the whole package is unpacked instead.
KERNEL_SUBSET=(./boot "./lib/modules/*/modules.*")
for d in drivers/virtio drivers/block drivers/net net/core fs/ext4 fs/jbd2 'fs/mbcache.ko*' \
        lib crypto arch/x86/crypto drivers/acpi drivers/input drivers/char/hw_random \
        drivers/misc/pvpanic; do
    KERNEL_SUBSET+=("./lib/modules/*/kernel/$d")
done

# unpack_kernel subset|full
unpack_kernel() {
    rm -rf "$K"
    mkdir -p "$K"
    log "unpacking $(basename "${DEB[$kernel_pkg]}") ($1)"
    if [ "$1" = full ]; then
        dpkg-deb -x "${DEB[$kernel_pkg]}" "$K"
    else
        dpkg-deb --fsys-tarfile "${DEB[$kernel_pkg]}" \
            | tar -x -C "$K" --wildcards --no-wildcards-match-slash "${KERNEL_SUBSET[@]}"
    fi
    kver=$(ls -1 "$K/lib/modules" | head -n 1)
    [ -n "$kver" ] && [ -f "$K/boot/vmlinuz-$kver" ] || die "no kernel in $kernel_pkg"
    # kmod built for a merged /usr looks under usr/lib/modules
    [ -e "$K/usr/lib/modules" ] || { mkdir -p "$K/usr/lib" && ln -s ../../lib/modules "$K/usr/lib/modules"; }
    depmod -b "$K" "$kver"
}

# resolve_modules: MODPATHS = MODULES and their (soft) dependencies in load
# order; fails if a module names a dependency that is not in the list.
resolve_modules() {
    local m deps kind path dep name
    declare -A seen=() names=()
    MODPATHS=()
    for m in $MODULES; do
        deps=$(modprobe -d "$K" -S "$kver" --show-depends "$m" 2>&1) || { log "module $m: $deps"; return 1; }
        while read -r kind path _; do
            [ "$kind" = insmod ] || continue
            [ -z "${seen[$path]:-}" ] || continue
            seen[$path]=1
            MODPATHS+=("$path")
            name=$(basename "$path"); name=${name%%.ko*}
            names[${name//-/_}]=1
        done <<<"$deps"
    done
    for path in "${MODPATHS[@]}"; do
        for dep in $(modinfo -F depends "$path" | tr ',' ' '); do
            [ -n "${names[${dep//-/_}]:-}" ] || { log "$(basename "$path") needs $dep: not found"; return 1; }
        done
    done
}

unpack_kernel subset
if ! resolve_modules; then
    unpack_kernel full
    resolve_modules || die "cannot resolve the kernel modules"
fi
log "kernel $kver unpacked, modules resolved"

# --- busybox ----------------------------------------------------------------
B=$WORK/busybox
dpkg-deb -x "${DEB[busybox-static]}" "$B"
BB=$B/bin/busybox
[ -x "$BB" ] || die "no /bin/busybox in busybox-static"

# stage_base DIR: busybox, its applet links and the guest files
stage_base() {
    local d=$1 applet dir
    mkdir -p "$d"/{bin,sbin,usr/bin,usr/sbin,usr/lib/karri,usr/share/karri,etc/karri,etc/udhcpc} \
        "$d"/{dev,proc,sys,run,tmp,mnt,root,home,var/lib/karri,var/log,lib/modules} \
        "$d"/etc/acpi/PWRF
    chmod 1777 "$d/tmp"
    chmod 700 "$d/root"
    ln -s ../run "$d/var/run"
    install -m 755 "$BB" "$d/bin/busybox"
    while read -r applet; do
        [ -n "$applet" ] && [ ! -e "$d/$applet" ] || continue
        dir=${applet%/*}
        case "$dir" in
            bin) ln -s busybox "$d/$applet" ;;
            sbin) ln -s ../bin/busybox "$d/$applet" ;;
            usr/bin|usr/sbin) ln -s ../../bin/busybox "$d/$applet" ;;
            *) ;;
        esac
    done < <("$BB" --list-full)
    rm -f "$d/sbin/init"
    install -m 755 "$GUEST/karri-init" "$d/sbin/karri-init"
    ln -s karri-init "$d/sbin/init"
    install -m 755 "$GUEST/guest-udhcpc.script" "$d/usr/share/karri/udhcpc.script"
    ln -s ../../usr/share/karri/udhcpc.script "$d/etc/udhcpc/default.script"
    install -m 755 "$GUEST/guest-console-shell" "$d/usr/lib/karri/console-shell"
    install -m 755 "$GUEST/guest-shutdown" "$d/usr/lib/karri/shutdown"
    install -m 755 "$GUEST/guest-acpi-power" "$d/etc/acpi/PWRF/00000080"
    install -m 644 "$GUEST/guest-inittab" "$d/etc/inittab"
    install -m 644 "$GUEST/guest-profile" "$d/etc/profile"
    echo "karri-tiny" > "$d/etc/hostname"
    printf '127.0.0.1 localhost\n' > "$d/etc/hosts"
    printf 'root:x:0:0:root:/root:/bin/sh\nsshd:x:74:65534:dropbear:/run:/sbin/nologin\n' > "$d/etc/passwd"
    printf 'root:*:19000:0:99999:7:::\n' > "$d/etc/shadow"
    chmod 600 "$d/etc/shadow"
    printf 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n' > "$d/etc/group"
    printf '/bin/sh\n/bin/ash\n' > "$d/etc/shells"
    printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n' > "$d/etc/nsswitch.conf"
    : > "$d/etc/resolv.conf"
    cat > "$d/etc/karri/image-info" <<EOF
name=karri-tiny
kernel=$kver
kernel_package=$kernel_pkg
cmdline=$CMDLINE
EOF
}

# --- initramfs ----------------------------------------------------------------
I=$WORK/initramfs
stage_base "$I"
install -m 755 "$GUEST/initramfs-init" "$I/init"
: > "$I/etc/karri/modules"
for path in "${MODPATHS[@]}"; do
    rel=${path#"$K"/lib/modules/"$kver"/}
    mkdir -p "$I/lib/modules/$kver/$(dirname "$rel")"
    case "$rel" in
        *.ko.xz)
            if command -v xz >/dev/null; then xz -dc "$path"; else "$BB" unxz -c "$path"; fi \
                > "$I/lib/modules/$kver/${rel%.xz}"
            rel=${rel%.xz} ;;
        *.ko.zst) zstd -q -dc "$path" > "$I/lib/modules/$kver/${rel%.zst}"; rel=${rel%.zst} ;;
        *.ko.gz) gzip -dc "$path" > "$I/lib/modules/$kver/${rel%.gz}"; rel=${rel%.gz} ;;
        *) cp "$path" "$I/lib/modules/$kver/$rel" ;;
    esac
    echo "$rel" >> "$I/etc/karri/modules"
done
log "initramfs modules: $(sed 's|.*/||; s|\.ko$||' "$I/etc/karri/modules" | tr '\n' ' ')"
(cd "$I" && find . -mindepth 1 | sort | cpio --quiet -o -H newc -R 0:0) | gzip -6 -n > "$WORK/initrd"

log "initramfs written"

# --- root file system -----------------------------------------------------------
R=$WORK/rootfs
stage_base "$R"
dropbear_info="no"
if [ "$WITH_DROPBEAR" = 1 ]; then
    D=$WORK/dropbear
    for pkg in $DROPBEAR_PKGS; do dpkg-deb -x "${DEB[$pkg]}" "$D"; done
    LDSO=$D/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
    LIBPATH=$D/lib/x86_64-linux-gnu:$D/usr/lib/x86_64-linux-gnu
    ok=1
    libs=""
    for bin in usr/sbin/dropbear usr/bin/dropbearkey usr/bin/dbclient; do
        [ -x "$D/$bin" ] || { ok=0; log "dropbear: no $bin"; break; }
        if ! list=$("$LDSO" --library-path "$LIBPATH" --list "$D/$bin" 2>&1) \
                || grep -q 'not found' <<<"$list"; then
            ok=0; log "dropbear: cannot resolve the libraries of $bin: $list"; break
        fi
        libs+=" $(sed -n 's/^.*=> \([^ ]*\) (.*$/\1/p' <<<"$list")"
    done
    if [ $ok = 1 ]; then
        mkdir -p "$R/lib/x86_64-linux-gnu" "$R/lib64" "$R/etc/dropbear"
        for lib in $libs; do cp -L "$lib" "$R/lib/x86_64-linux-gnu/$(basename "$lib")"; done
        cp -L "$LDSO" "$R/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
        ln -s ../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$R/lib64/ld-linux-x86-64.so.2"
        install -m 755 "$D/usr/sbin/dropbear" "$R/usr/sbin/dropbear"
        install -m 755 "$D/usr/bin/dropbearkey" "$R/usr/bin/dropbearkey"
        install -m 755 "$D/usr/bin/dbclient" "$R/usr/bin/dbclient"
        ln -sf dbclient "$R/usr/bin/ssh"
        dropbear_info=$(basename "${DEB[dropbear-bin]}" .deb)
    else
        log "warning: building without dropbear"
    fi
fi
echo "dropbear=$dropbear_info" >> "$R/etc/karri/image-info"
mke2fs -q -F -t ext4 -L karri-root -E root_owner=0:0 -d "$R" "$WORK/rootfs.img" "$ROOTFS_SIZE" >/dev/null

log "rootfs.img written"

# --- results ----------------------------------------------------------------------
cp "$K/boot/vmlinuz-$kver" "$WORK/vmlinuz"
# vmlinux: the same kernel uncompressed (ELF with a PVH entry point).  QEMU's
# -kernel boots it directly, without the decompression that costs TCG a few
# seconds per boot.  Optional: needs xz (or zstd) and CONFIG_PVH=y.
results="vmlinuz initrd rootfs.img cmdline build-info"
vmlinux_info=no
extract_vmlinux() {
    local z=$WORK/vmlinuz off
    grep -q '^CONFIG_PVH=y' "$K/boot/config-$kver" 2>/dev/null || return 1
    if command -v xz >/dev/null && off=$(grep -obUaP '\xfd7zXZ\x00' "$z" | head -n 1 | cut -d: -f1) \
            && [ -n "$off" ]; then
        tail -c +$((off + 1)) "$z" | xz -dc --single-stream > "$WORK/vmlinux" 2>/dev/null || true
    elif command -v zstd >/dev/null && off=$(grep -obUaP '\x28\xb5\x2f\xfd' "$z" | head -n 1 | cut -d: -f1) \
            && [ -n "$off" ]; then
        tail -c +$((off + 1)) "$z" | zstd -q -dc > "$WORK/vmlinux" 2>/dev/null || true
    else
        return 1
    fi
    [ "$(head -c 4 "$WORK/vmlinux" 2>/dev/null | od -An -tx1 | tr -d ' ')" = 7f454c46 ]
}
if extract_vmlinux; then
    results+=" vmlinux"
    vmlinux_info=yes
else
    rm -f "$WORK/vmlinux" "$OUT/vmlinux"
    log "note: no vmlinux (PVH) written (needs xz or zstd, CONFIG_PVH)"
fi
echo "$CMDLINE" > "$WORK/cmdline"
{
    echo "kernel_version=$kver"
    for pkg in "${pkgs[@]}"; do echo "deb=$(basename "${DEB[$pkg]}")"; done
    echo "dropbear=$dropbear_info"
    echo "vmlinux_pvh=$vmlinux_info"
    echo "cmdline=$CMDLINE"
} > "$WORK/build-info"
for f in $results; do
    mv -f "$WORK/$f" "$OUT/$f"
done
log "built $OUT: vmlinuz ($kver), initrd $(du -h "$OUT/initrd" | cut -f1), rootfs.img $ROOTFS_SIZE, dropbear: $dropbear_info"
