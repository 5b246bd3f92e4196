#!/usr/bin/env bash
# Makes LINK (.venv, .venv-sanity) a virtualenv with exactly the pinned requirements FILE, reusing one built before
# for the same pins. Usage: scripts/cached-venv.sh LINK FILE
#
# Where a shared cache can be written (${LLMOPS_VENV_CACHE:-/var/cache/llmops/venvs}; as root, or set the variable
# to a writable directory), the venv is built once per key, <cache>/<LINK without dots>-<key>, where <key> covers the
# requirements (the file and those it includes) and the base interpreter (its real path and `python -VV`), and LINK
# becomes a symbolic link to it: a clean clone gets its venv in a moment instead of minutes of pip. A venv is not
# relocatable, so it is built in place under flock and a completion marker is written last: a half-built venv (no
# marker) is deleted and built again. The cached venvs are only read by the checkouts that use them; a new pin makes
# a new key, and the venvs of this LINK that no checkout used for LLMOPS_CACHE_KEEP_DAYS (default 14) days are removed
# (scripts/prune-cache.sh).
# Otherwise (LLMOPS_VENV_CACHE set to "" or the cache not writable), and always when LINK is already a real
# directory (a venv of one's own is never replaced), LINK is a venv of this checkout, installed when the pins change.
set -euo pipefail
cd "$(dirname "$0")/.."

link=${1:?usage: scripts/cached-venv.sh LINK REQUIREMENTS-FILE}
requirements=${2:?usage: scripts/cached-venv.sh LINK REQUIREMENTS-FILE}
# The base interpreter, whatever venv is first on PATH (scripts/test.sh puts .venv/bin there): the same key from every
# checkout, and a venv made from the real interpreter.
python=$("${PYTHON:-python3}" -c \
    'import os, sys; print(os.path.realpath(getattr(sys, "_base_executable", "") or sys.executable))')
# The requirements file and those it names with -r/-c (relative to its directory), one level down.
pins() {
    local dir
    dir=$(dirname "$requirements")
    cat "$requirements"
    sed -n 's/^-[rc] *//p' "$requirements" | while read -r included; do cat "$dir/$included"; done
}
want=$({ echo "format=1 python=$python"; "$python" -VV; pins; } | sha256sum | cut -c1-16)
stamp=.requirements.sha256

# install DIR: DIR becomes a venv holding the pins (created if missing; pip only when the stamp differs).
install() {
    if [ ! -x "$1/bin/python" ]; then
        echo "creating $1 with $("$python" --version)"
        "$python" -m venv "$1"
    fi
    if [ "$(cat "$1/$stamp" 2>/dev/null)" != "$want" ]; then
        echo "installing the pins of $requirements into $1"
        "$1/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
        echo "$want" >"$1/$stamp"
    fi
}

cache=${LLMOPS_VENV_CACHE-/var/cache/llmops/venvs}
if [ -d "$link" ] && [ ! -L "$link" ]; then
    install "$link"
    echo "venv: $link (this checkout's own)"
    exit 0
fi
if [ -z "$cache" ] || ! mkdir -p "$cache" 2>/dev/null || [ ! -w "$cache" ]; then
    rm -f "$link"
    install "$link"
    echo "venv: $link (this checkout's own: no writable cache)"
    exit 0
fi

name=${link#.}-$want
venv=$cache/$name
marker=$venv/.llmops-venv-complete
exec 9>"$cache/$name.lock"
flock 9
state=reused
if [ ! -f "$marker" ]; then
    rm -rf --one-file-system "$venv"
    install "$venv"
    date -u +%Y-%m-%dT%H:%M:%SZ >"$marker.tmp"
    mv "$marker.tmp" "$marker"
    state=built
fi
if [ "$(readlink "$link" 2>/dev/null)" != "$venv" ]; then
    ln -sfn "$venv" "$link"
fi
echo "venv: $link -> $venv ($state)"
flock -u 9
scripts/prune-cache.sh "$cache" "^${link#.}-[0-9a-f]{16}\$" "$name"
