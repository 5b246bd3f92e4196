#!/usr/bin/env bash
# The main job on this machine, with no internet needed: set everything up, start the project's local
# ModelScope-compatible hub on 127.0.0.1 (tools/local_hub, serving small generated models in real formats), then run
# playbooks/deploy-model.yml on this machine (inventories/local): preflight (sized from the hub's listing, config.json
# and safetensors headers) -> ModelScope SDK install
# (/opt/llmops/venv) -> verified download (/opt/llmops/models/<owner>/<name>) -> model check -> reports.
# Real use points llmops_endpoint at https://modelscope.cn or an internal mirror instead of the local hub.
# Extra arguments go to ansible-playbook, e.g. scripts/main.sh --check
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

state=$PWD/.work/demo
mkdir -p "$state"
rm -f "$state/hub.json"
python -m tools.local_hub --port 0 --ready-file "$state/hub.json" --log "$state/hub-requests.jsonl" \
    >"$state/hub.out" 2>&1 &
hub_pid=$!
trap 'kill "$hub_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do [ -s "$state/hub.json" ] && break; sleep 0.1; done
endpoint=$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["endpoint"])' "$state/hub.json")
echo "local hub: $endpoint (pid $hub_pid)"

# This machine has no GPU unless nvidia-smi or amd-smi is here: then the plan is CPU-only inference.
target=cpu
if command -v nvidia-smi >/dev/null 2>&1 || command -v amd-smi >/dev/null 2>&1; then target=gpu; fi
where=()
if [ "$(id -u)" -ne 0 ]; then
    where=(-e "llmops_venv=$PWD/.work/llmops/venv" -e "llmops_model_root=$PWD/.work/llmops/models")
fi
ansible-playbook playbooks/deploy-model.yml -i inventories/local \
    -e "llmops_endpoint=$endpoint" -e llmops_model=llmops-test/Qwen2-tiny-2M -e llmops_precision=bf16 \
    -e llmops_hub_metadata=true \
    -e "llmops_target=$target" "${where[@]}" "$@"
