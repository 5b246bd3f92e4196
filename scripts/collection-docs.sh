#!/usr/bin/env bash
# Checks the collection's documentation the way its users and Galaxy read it:
#   - ansible-doc renders every plugin (modules, filters, roles) of llmops.deploy from this checkout;
#   - antsibull-docs lint-collection-docs (pinned in requirements/test.txt): markup, references to other plugins and
#     options, role argument specs;
#   - meta/runtime.yml's requires_ansible admits the ansible-core version pinned (and tested) in requirements/.
# Usage: scripts/collection-docs.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export ANSIBLE_HOME="${ANSIBLE_HOME:-$PWD/.ansible}"

# render TYPE NAME...: ansible-doc renders them without an error or a warning (stderr must stay empty).
render() {
    local type=$1
    shift
    ansible-doc -t "$type" "$@" >/dev/null 2>"$ANSIBLE_HOME/ansible-doc.err" && [ ! -s "$ANSIBLE_HOME/ansible-doc.err" ]
}

status=0
for type in module filter test role; do
    names=$(ansible-doc -t "$type" -l llmops.deploy --json | python -c 'import json, sys; print("\n".join(sorted(json.load(sys.stdin))))')
    if [ -z "$names" ]; then
        echo "ansible-doc lists no $type plugin of llmops.deploy" >&2
        status=1
        continue
    fi
    mapfile -t plugins <<<"$names"
    # All of a type in one ansible-doc run (one start-up instead of one per plugin); when that run fails or warns,
    # each plugin again on its own, so the message names the plugin.
    if ! render "$type" "${plugins[@]}"; then
        cp "$ANSIBLE_HOME/ansible-doc.err" "$ANSIBLE_HOME/ansible-doc.all.err"
        named=0
        for name in "${plugins[@]}"; do
            if ! render "$type" "$name"; then
                echo "ansible-doc -t $type $name failed or warned:" >&2
                cat "$ANSIBLE_HOME/ansible-doc.err" >&2
                named=1
            fi
        done
        if [ "$named" -eq 0 ]; then  # only the run of all of them failed or warned: say what it said
            echo "ansible-doc -t $type (all of them at once) failed or warned:" >&2
            cat "$ANSIBLE_HOME/ansible-doc.all.err" >&2
        fi
        status=1
    fi
    echo "ansible-doc: ${#plugins[@]} $type plugin(s) checked"
done

(cd .collections/ansible_collections/llmops/deploy && antsibull-docs lint-collection-docs --plugin-docs --skip-rstcheck .) \
    || status=1

python - <<'PY' || status=1
import re
import yaml
from ansible.module_utils.compat.version import LooseVersion

required = yaml.safe_load(open("meta/runtime.yml"))["requires_ansible"]
pinned = re.search(r"^ansible-core==(\S+)", open("requirements/controller.txt").read(), re.M).group(1)
ok = True
for clause in required.split(","):
    op, version = re.match(r"\s*(>=|<=|==|<|>|!=)\s*(\S+)", clause).groups()
    ok &= {">=": LooseVersion(pinned) >= LooseVersion(version), ">": LooseVersion(pinned) > LooseVersion(version),
           "<": LooseVersion(pinned) < LooseVersion(version), "<=": LooseVersion(pinned) <= LooseVersion(version),
           "==": LooseVersion(pinned) == LooseVersion(version), "!=": LooseVersion(pinned) != LooseVersion(version)}[op]
lower = re.search(r">=\s*(\d+\.\d+)", required)
if not ok or not lower or not pinned.startswith(lower.group(1) + "."):
    raise SystemExit("meta/runtime.yml requires_ansible %r does not match the tested ansible-core %s "
                     "(requirements/controller.txt)" % (required, pinned))
print("requires_ansible %s matches the tested ansible-core %s" % (required, pinned))
PY
exit "$status"
