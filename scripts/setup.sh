#!/usr/bin/env bash
# Sets up everything the collection needs to run and be tested from this checkout:
#   - .venv with the pinned controller and test tooling (requirements/test.txt), Python 3.11, reused from a
#     cache keyed by the pins when one can be written (scripts/cached-venv.sh)
#   - the .collections link that makes this checkout the collection llmops.deploy
# Idempotent: a second run only checks. Usage: scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned tooling: a venv built once per pins and interpreter in a shared cache when one can be written (as root:
# /var/cache/llmops/venvs; LLMOPS_VENV_CACHE chooses another, "" none), .venv being a link to it; otherwise this
# checkout's own .venv (see scripts/cached-venv.sh).
scripts/cached-venv.sh .venv requirements/test.txt | sed 's/^/setup: /'

mkdir -p .collections/ansible_collections/llmops
if [ "$(readlink .collections/ansible_collections/llmops/deploy)" != "../../.." ]; then
    ln -sfn ../../.. .collections/ansible_collections/llmops/deploy
fi
# The whole output is read (no `| head -1`: closing the pipe early makes Python print a Broken pipe traceback).
version=$(.venv/bin/ansible --version)
echo "setup: ready (${version%%$'\n'*})"
