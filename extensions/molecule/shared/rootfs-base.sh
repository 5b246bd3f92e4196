#!/usr/bin/env bash
# Build, unpack or reuse the cached Debian base rootfs that every test host of a suite overlays.
#
# Usage: rootfs-base.sh SUITE CACHE_DIR [FLAVOUR]
# Prints two lines: "path=<base rootfs directory>" and "state=reused|unpacked|built".
# FLAVOUR is minbase (default: chroot hosts) or systemd (adds systemd, systemd-sysv and dbus, for hosts booted
# with systemd-nspawn; its own cache name and key).
#
# The base is debootstrap --variant=minbase plus python3, python3-apt (package_facts and the apt module
# need it) and ca-certificates, with the host's extra CAs (TLS is intercepted on these machines) trusted
# inside. It is kept as a directory and as a .tar.zst; the directory name carries a key over the include
# list and the CA files, so a changed CA set builds a new base instead of reusing a stale one.
# Concurrent runs are serialised with flock; a finished base appears by an atomic rename only.
# Debian mirror: $MOLECULE_DEBIAN_MIRROR, else the host's apt configuration.
set -euo pipefail

if [ "$#" -ne 2 ] && [ "$#" -ne 3 ]; then
    echo "usage: $0 SUITE CACHE_DIR [minbase|systemd]" >&2
    exit 2
fi
suite=$1
cache=$2
flavour=${3:-minbase}
case "$suite" in
    ''|*[!a-z0-9-]*) echo "rootfs-base: bad suite name '$suite' (expected e.g. bookworm, trixie)" >&2; exit 2 ;;
esac

format=1
case "$flavour" in
    minbase) include=python3,python3-apt,ca-certificates ;;
    systemd) include=python3,python3-apt,ca-certificates,systemd,systemd-sysv,dbus ;;
    *) echo "rootfs-base: bad flavour '$flavour' (expected minbase or systemd)" >&2; exit 2 ;;
esac
ca_dir=/usr/local/share/ca-certificates

key=$(
    {
        echo "format=$format suite=$suite include=$include"
        find "$ca_dir" -type f -name '*.crt' -print0 2>/dev/null | sort -z | xargs -0 -r cat
    } | sha256sum | cut -c1-12
)
name="$suite-$flavour-$key"
base="$cache/$name"
tarball="$cache/$name.tar.zst"

mkdir -p "$cache"
exec 9>"$cache/$name.lock"
flock 9

discard() {
    # A half-built base: instance-down.sh unmounts what an interrupted debootstrap left mounted, then deletes it.
    "$(dirname "$0")/instance-down.sh" "$1" >/dev/null
}

debian_mirror() {
    if [ -n "${MOLECULE_DEBIAN_MIRROR:-}" ]; then
        echo "$MOLECULE_DEBIAN_MIRROR"
        return
    fi
    local uri=""
    if [ -r /etc/apt/sources.list.d/debian.sources ]; then
        uri=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources)
    fi
    if [ -z "$uri" ] && [ -r /etc/apt/sources.list ]; then
        uri=$(awk '$1 == "deb" && $2 !~ /^\[/ { print $2; exit }' /etc/apt/sources.list)
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

if [ -d "$base" ]; then
    state=reused
elif [ -s "$tarball" ]; then
    discard "$base.tmp"
    mkdir "$base.tmp"
    tar --zstd --numeric-owner -xpf "$tarball" -C "$base.tmp"
    mv "$base.tmp" "$base"
    state=unpacked
else
    trap 'discard "$base.tmp"; rm -f "$tarball.tmp"' EXIT
    discard "$base.tmp"
    mirror=$(debian_mirror)
    debootstrap --variant=minbase --include="$include" "$suite" "$base.tmp" "$mirror" >"$cache/$name.debootstrap.log" 2>&1 || {
        echo "rootfs-base: debootstrap $suite from $mirror failed; last lines of $cache/$name.debootstrap.log:" >&2
        tail -n 20 "$cache/$name.debootstrap.log" >&2
        exit 1
    }
    if compgen -G "$ca_dir/*.crt" >/dev/null; then
        cp "$ca_dir"/*.crt "$base.tmp/usr/local/share/ca-certificates/"
    fi
    chroot "$base.tmp" update-ca-certificates >/dev/null
    printf 'deb %s %s main\ndeb %s %s-updates main\n' "$mirror" "$suite" "$mirror" "$suite" >"$base.tmp/etc/apt/sources.list"
    cp /etc/resolv.conf "$base.tmp/etc/resolv.conf"
    chroot "$base.tmp" apt-get -qq update >/dev/null
    chroot "$base.tmp" apt-get clean
    for fs in proc sys; do  # debootstrap unmounts these itself; never archive them
        if mountpoint -q "$base.tmp/$fs"; then umount "$base.tmp/$fs"; fi
    done
    tar --zstd --numeric-owner -cpf "$tarball.tmp" -C "$base.tmp" .
    mv "$tarball.tmp" "$tarball"
    mv "$base.tmp" "$base"
    trap - EXIT
    state=built
fi

echo "path=$base"
echo "state=$state"
