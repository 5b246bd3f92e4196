#!/usr/bin/env bash
# Boot one systemd test host: a throw-away overlay of the cached systemd base rootfs, booted with
# systemd-nspawn --boot (systemd as PID 1 in its own PID/UTS/IPC/mount namespaces; the controller's network).
#
# Usage: instance-boot.sh BASE_ROOTFS INSTANCE_DIR NAME [READ_ONLY_DIR...]
# Each READ_ONLY_DIR (an absolute path on the controller) is bind-mounted read-only at the same path inside.
# Writes INSTANCE_DIR/nspawn.pid and INSTANCE_DIR/leader.pid (the host's PID 1, as the controller sees it), which
# nspawn-exec (the chroot connection's ansible_chroot_exe) enters. Console output: INSTANCE_DIR/console.log.
# Idempotent: a host that is already booted is left alone. Prints "changed=0" or "changed=1".
# Needs root and systemd-container (scripts/apt-prereqs.sh testhosts).
set -euo pipefail

if [ "$#" -lt 3 ]; then
    echo "usage: $0 BASE_ROOTFS INSTANCE_DIR NAME [READ_ONLY_DIR...]" >&2
    exit 2
fi
base=$1
dir=$2
name=$3
shift 3
if [ ! -x "$base/usr/bin/python3" ] || [ ! -e "$base/lib/systemd/systemd" ]; then
    echo "instance-boot: $base is not a finished systemd base rootfs (no usr/bin/python3 or lib/systemd/systemd)" >&2
    exit 1
fi
binds=()
for ro in "$@"; do
    case "$ro" in
        /*) ;;
        *) echo "instance-boot: bind '$ro' is not an absolute path" >&2; exit 2 ;;
    esac
    if [ ! -d "$ro" ]; then
        echo "instance-boot: bind '$ro' is not a directory on the controller" >&2
        exit 1
    fi
    binds+=("--bind-ro=$ro")
done

mkdir -p "$dir/upper" "$dir/work" "$dir/merged"
dir=$(realpath "$dir")
merged=$dir/merged
changed=0

if ! mountpoint -q "$merged"; then
    mount -t overlay overlay -o "lowerdir=$base,upperdir=$dir/upper,workdir=$dir/work" "$merged"
    changed=1
fi

running() {
    local pid
    pid=$(cat "$dir/nspawn.pid" 2>/dev/null) || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = systemd-nspawn ]
}

if ! running; then
    rm -f "$dir/leader.pid"
    setsid systemd-nspawn --quiet --register=no --keep-unit --machine="$name" --directory="$merged" \
        "${binds[@]}" --boot </dev/null >"$dir/console.log" 2>&1 &
    echo "$!" >"$dir/nspawn.pid"
    changed=1
fi
nspawn=$(cat "$dir/nspawn.pid")

# nspawn first forks a short-lived outer child; the host's PID 1 is the child whose comm is systemd.
leader=""
for _ in $(seq 1 600); do
    for child in $(pgrep -P "$nspawn" || true); do
        if [ "$(cat "/proc/$child/comm" 2>/dev/null)" = systemd ]; then
            leader=$child
        fi
    done
    [ -n "$leader" ] && break
    running || { echo "instance-boot: systemd-nspawn exited; $dir/console.log:" >&2; tail -n 20 "$dir/console.log" >&2; exit 1; }
    sleep 0.1
done
if [ -z "$leader" ]; then
    echo "instance-boot: no systemd inside $name after 60 s; $dir/console.log:" >&2
    tail -n 20 "$dir/console.log" >&2
    exit 1
fi
echo "$leader" >"$dir/leader.pid"

# Until the bus is up, is-system-running prints nothing ("Failed to connect to bus"): poll until it names a state.
state=""
for _ in $(seq 1 120); do
    state=$(nsenter --target "$leader" --all -- systemctl is-system-running --wait 2>/dev/null || true)
    case "$state" in
        running|degraded) break ;;
    esac
    sleep 0.5
done
case "$state" in
    running|degraded) ;;
    *) echo "instance-boot: $name did not finish booting (state '$state')" >&2; exit 1 ;;
esac
echo "changed=$changed"
