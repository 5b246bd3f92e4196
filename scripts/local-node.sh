#!/usr/bin/env bash
# A persistent local systemd host on this machine, for the main job (scripts/main.sh): a Debian bookworm overlay
# booted with systemd-nspawn --boot, made with the same shared scripts as the molecule test hosts
# (extensions/molecule/shared), sharing this machine's network (its 127.0.0.1 is the node's).
#
# Usage: scripts/local-node.sh up|down|status
#   up      boot the node, or reuse it when it already runs (idempotent); prints its inventory facts
#   down    power it off, unmount and delete it (idempotent)
#   status  prints state=running|stopped and, when running, the inventory facts
# Inventory facts (one per line, key=value): inventory_hostname, ansible_host, ansible_connection,
# ansible_chroot_exe, ansible_python_interpreter, then state and changed.
# Environment: LLMOPS_NODE_NAME (default llmops-node), LLMOPS_NODE_DIR (default <checkout>/.work/node),
# LLMOPS_NODE_BINDS (colon-separated controller directories bind-mounted read-only at the same path, e.g. the
# engine cache /var/cache/llmops/engines), MOLECULE_ROOTFS_CACHE (default /var/cache/llmops-molecule),
# MOLECULE_DEBIAN_MIRROR. Needs root, debootstrap, zstd and systemd-container (scripts/apt-prereqs.sh testhosts).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
shared=$root/extensions/molecule/shared
name=${LLMOPS_NODE_NAME:-llmops-node}
state_dir=${LLMOPS_NODE_DIR:-$root/.work/node}
cache=${MOLECULE_ROOTFS_CACHE:-/var/cache/llmops-molecule}
dir=$state_dir/$name

usage() {
    echo "usage: $0 up|down|status" >&2
    exit 2
}
[ "$#" -eq 1 ] || usage
case "$name" in
    ''|*[!A-Za-z0-9._-]*) echo "local-node: bad LLMOPS_NODE_NAME '$name'" >&2; exit 2 ;;
esac

running() {
    local pid
    pid=$(cat "$dir/nspawn.pid" 2>/dev/null) || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = systemd-nspawn ] && [ -s "$dir/leader.pid" ]
}

facts() {
    echo "inventory_hostname=$name"
    echo "ansible_host=$dir/merged"
    echo "ansible_connection=community.general.chroot"
    echo "ansible_chroot_exe=$shared/nspawn-exec"
    echo "ansible_python_interpreter=/usr/bin/python3"
}

case "$1" in
    up)
        if [ "$(id -u)" -ne 0 ]; then
            echo "local-node: needs root (mount, systemd-nspawn)" >&2
            exit 1
        fi
        mkdir -p "$state_dir"
        exec 9>"$state_dir/$name.lock"
        flock 9
        changed=0
        if ! running; then
            base=$("$shared/rootfs-base.sh" bookworm "$cache" systemd | sed -n 's/^path=//p')
            binds=()
            if [ -n "${LLMOPS_NODE_BINDS:-}" ]; then
                IFS=: read -r -a binds <<<"$LLMOPS_NODE_BINDS"
            fi
            # 9>&-: the booted nspawn must not inherit (and hold) this script's lock.
            "$shared/instance-boot.sh" "$base" "$dir" "$name" "${binds[@]}" >/dev/null 9>&-
            cp /etc/resolv.conf "$dir/merged/etc/resolv.conf"
            echo "$name" >"$dir/merged/etc/hostname"
            changed=1
        fi
        facts
        echo "state=running"
        echo "changed=$changed"
        ;;
    down)
        if [ -e "$dir" ]; then
            "$shared/instance-down.sh" "$dir" >/dev/null
            echo "state=stopped"
            echo "changed=1"
        else
            echo "state=stopped"
            echo "changed=0"
        fi
        ;;
    status)
        if running; then
            facts
            echo "state=running"
        else
            echo "state=stopped"
        fi
        echo "changed=0"
        ;;
    *)
        usage
        ;;
esac
