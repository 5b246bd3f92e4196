#!/usr/bin/env bash
# Installs the named Debian packages that are missing, for the tests that need host tools:
#   scripts/apt-prereqs.sh testhosts   debootstrap, zstd, debian-archive-keyring, systemd-container (molecule test
#                                      hosts, extensions/molecule/shared/create.yml; systemd-nspawn boots the hosts
#                                      that run services)
#   scripts/apt-prereqs.sh browser     chromium, fonts-dejavu-core (headless browser tests, tests/browser/)
#   scripts/apt-prereqs.sh lint        shellcheck (ansible-test sanity lints the shell scripts with it)
#   scripts/apt-prereqs.sh all         all of them
# Idempotent: installs only what is missing, and runs apt-get update at most once. Run as root on a Debian host.
set -euo pipefail

packages=()
for set in "$@"; do
    case "$set" in
        testhosts) packages+=(debootstrap zstd debian-archive-keyring systemd-container) ;;
        browser) packages+=(chromium fonts-dejavu-core) ;;
        lint) packages+=(shellcheck) ;;
        all) packages+=(debootstrap zstd debian-archive-keyring systemd-container chromium fonts-dejavu-core shellcheck) ;;
        *) echo "apt-prereqs: unknown set '$set'; expected testhosts, browser, lint or all" >&2; exit 2 ;;
    esac
done
if [ "${#packages[@]}" -eq 0 ]; then
    echo "usage: scripts/apt-prereqs.sh testhosts|browser|lint|all ..." >&2
    exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "apt-prereqs: must run as root (it installs packages with apt-get)" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "apt-prereqs: apt-get not found; these tests need a Debian-family host" >&2
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
    echo "apt-prereqs: already installed: ${packages[*]}"
    exit 0
fi

echo "apt-prereqs: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
