#!/usr/bin/env bash
# Sets up everything the collection needs to run and be tested from this checkout:
#   - .venv with the pinned controller and test tooling (requirements/test.txt), Python 3.11
#   - the .collections link that makes this checkout the collection llmops.deploy
# Idempotent: a second run only checks. Usage: scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
stamp=.venv/.requirements.sha256
want=$(cat requirements/*.txt | sha256sum | cut -d' ' -f1)

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setup: installing pinned requirements (requirements/test.txt)"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements/test.txt
    echo "$want" > "$stamp"
fi

mkdir -p .collections/ansible_collections/llmops
if [ "$(readlink .collections/ansible_collections/llmops/deploy)" != "../../.." ]; then
    ln -sfn ../../.. .collections/ansible_collections/llmops/deploy
fi
# The whole output is read (no `| head -1`: closing the pipe early makes Python print a Broken pipe traceback).
version=$(.venv/bin/ansible --version)
echo "setup: ready (${version%%$'\n'*})"
