#!/usr/bin/env bash
# Tear one test host down: kill what still runs inside it, unmount everything below INSTANCE_DIR
# (deepest first, lazily where a mount stays busy), then delete INSTANCE_DIR.
#
# Usage: instance-down.sh INSTANCE_DIR
# Idempotent: a missing INSTANCE_DIR is fine. Prints "changed=0" or "changed=1".
# Fails (exit 1) if something is still mounted below INSTANCE_DIR, and then deletes nothing.
set -euo pipefail

if [ "$#" -ne 1 ]; then
    echo "usage: $0 INSTANCE_DIR" >&2
    exit 2
fi
if [ ! -e "$1" ]; then
    echo "changed=0"
    exit 0
fi
dir=$(realpath "$1")

mounts_below() {
    # /proc/self/mounts escapes blanks in paths as octal (\040); decode those before comparing.
    awk -v p="$dir" '{ t = $2; gsub(/\\040/, " ", t); gsub(/\\011/, "\t", t)
                       if (t == p || index(t, p "/") == 1) print t }' /proc/self/mounts | sort -r
}

# A host booted by instance-boot.sh: power it off through systemd-nspawn (SIGTERM), then KILL after 30 s.
if [ -f "$dir/nspawn.pid" ]; then
    nspawn=$(cat "$dir/nspawn.pid")
    if [ "$(cat "/proc/$nspawn/comm" 2>/dev/null)" = systemd-nspawn ]; then
        kill -TERM "$nspawn" 2>/dev/null || true
        for _ in $(seq 1 300); do
            [ "$(cat "/proc/$nspawn/comm" 2>/dev/null)" = systemd-nspawn ] || break
            sleep 0.1
        done
        kill -KILL "$nspawn" 2>/dev/null || true
    fi
fi

# Processes whose root is inside this host (a daemon a package started despite policy-rc.d).
for proc in /proc/[0-9]*; do
    root=$(readlink "$proc/root" 2>/dev/null) || continue
    case "$root" in
        "$dir"/*)
            kill -KILL "${proc#/proc/}" 2>/dev/null || true
            ;;
    esac
done

for _ in 1 2 3; do
    targets=$(mounts_below)
    [ -n "$targets" ] || break
    while IFS= read -r target; do
        umount "$target" 2>/dev/null || umount -l "$target" 2>/dev/null || true
    done <<<"$targets"
done

if [ -n "$(mounts_below)" ]; then
    echo "instance-down: still mounted below $dir, not deleting it:" >&2
    mounts_below >&2
    exit 1
fi

rm -rf --one-file-system "$dir"
# nspawn leaves this behind because /run is not a tmpfs on these machines.
rm -rf "/run/systemd/nspawn/propagate/$(basename "$dir")"
echo "changed=1"
