#!/usr/bin/env bash
# Installs Debian's Chromium (and a font for it to draw text with) for the headless browser tests in tests/browser/,
# which open the HTML fleet report and screenshot it. Idempotent: installs only what is missing, and runs
# apt-get update at most once. Run as root on a Debian/Ubuntu host (CI runs it before pytest).
set -euo pipefail

packages=(chromium fonts-dejavu-core)

if [ "$(id -u)" -ne 0 ]; then
    echo "browser-prereqs: must run as root (it installs packages with apt-get)" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "browser-prereqs: apt-get not found; the browser tests need a Debian-family host" >&2
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
    echo "browser-prereqs: already installed: ${packages[*]}"
    exit 0
fi

echo "browser-prereqs: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
