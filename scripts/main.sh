#!/usr/bin/env bash
# The main job on this machine: set everything up, then run the fleet preflight of this machine
# (inventories/local) against its default model. Prints the verdict and where the report is.
# Extra arguments go to ansible-playbook, e.g. scripts/main.sh -e llmops_model=Qwen/Qwen2.5-7B-Instruct
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
exec ansible-playbook playbooks/preflight.yml -i inventories/local "$@"
