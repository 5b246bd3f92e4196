#!/usr/bin/env bash
# Give one test host its throw-away root: an overlay of the cached base, plus the pseudo file systems a
# chroot needs (proc, read-only sysfs, a private devpts, tmpfs on /dev/shm, /run and /tmp).
#
# Usage: instance-up.sh BASE_ROOTFS INSTANCE_DIR
# Creates INSTANCE_DIR/{upper,work,merged}; the host's root is INSTANCE_DIR/merged.
# Idempotent: mounts only what is not mounted yet. Prints "changed=0" or "changed=1".
set -euo pipefail

if [ "$#" -ne 2 ]; then
    echo "usage: $0 BASE_ROOTFS INSTANCE_DIR" >&2
    exit 2
fi
base=$1
dir=$2
if [ ! -x "$base/usr/bin/python3" ]; then
    echo "instance-up: $base is not a finished base rootfs (no usr/bin/python3)" >&2
    exit 1
fi

mkdir -p "$dir/upper" "$dir/work" "$dir/merged"
merged=$(realpath "$dir/merged")
changed=0

mount_once() {
    local target=$1 fstype=$2 source=$3 options=$4
    if ! mountpoint -q "$target"; then
        mkdir -p "$target"
        mount -t "$fstype" -o "$options" "$source" "$target"
        changed=1
    fi
}

mount_once "$merged" overlay overlay "lowerdir=$base,upperdir=$dir/upper,workdir=$dir/work"
mount_once "$merged/proc" proc proc nosuid,nodev,noexec
mount_once "$merged/sys" sysfs sysfs ro,nosuid,nodev,noexec
mount_once "$merged/dev/pts" devpts devpts newinstance,ptmxmode=0666,mode=0620,gid=5
mount_once "$merged/dev/shm" tmpfs tmpfs nosuid,nodev,mode=1777
mount_once "$merged/run" tmpfs tmpfs nosuid,nodev,mode=0755
mount_once "$merged/tmp" tmpfs tmpfs nosuid,nodev,mode=1777

echo "changed=$changed"
