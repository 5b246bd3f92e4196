#!/usr/bin/env bash
# Sets everything up and runs every test gate. Usage: scripts/test.sh [extra pytest args]
#   1. ansible-lint (production profile)       3. build + install the collection, run it installed
#   2. ansible-test sanity on the collection    4. pytest: units, playbook runs, local hub + real SDK, molecule
# Exits non-zero if any gate fails; pytest finding no test (exit 5) is a failure too.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh || exit 1
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    scripts/apt-prereqs.sh testhosts browser lint || exit 1
fi
export PATH="$PWD/.venv/bin:$PATH"
export ANSIBLE_HOME="$PWD/.ansible" ANSIBLE_LOCAL_TEMP="$PWD/.ansible/tmp"

failed=()
gate() {
    local name=$1; shift
    echo "==> $name"
    if "$@"; then echo "==> $name: ok"; else echo "==> $name: FAILED"; failed+=("$name"); fi
}

gate "ansible-lint" ansible-lint --profile production
gate "ansible-test sanity" scripts/sanity.sh
gate "collection build + install" scripts/build-install.sh

echo "==> pytest"
pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
    echo "pytest collected no test: that is a failure"
fi
if [ "$rc" -ne 0 ]; then failed+=("pytest (exit $rc)"); fi

if [ "${#failed[@]}" -ne 0 ]; then
    echo "FAILED gates: ${failed[*]}"
    exit 1
fi
echo "all gates passed"
