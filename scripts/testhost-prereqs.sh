#!/usr/bin/env bash
# Installs the host packages the molecule test hosts need (see extensions/molecule/shared/create.yml):
# debootstrap builds the Debian rootfs, zstd compresses its cached copy, debian-archive-keyring verifies
# what debootstrap downloads. Idempotent: installs only what is missing, and runs apt-get update at most once.
# Run as root on a Debian/Ubuntu host (CI runs it before the molecule tests).
set -euo pipefail

packages=(debootstrap zstd debian-archive-keyring)

if [ "$(id -u)" -ne 0 ]; then
    echo "testhost-prereqs: must run as root (it installs packages with apt-get)" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "testhost-prereqs: apt-get not found; the test hosts need a Debian-family host" >&2
    exit 1
fi

missing=()
for pkg in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    if [ "$status" != "installed" ]; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "testhost-prereqs: already installed: ${packages[*]}"
    exit 0
fi

echo "testhost-prereqs: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
