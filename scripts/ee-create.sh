#!/usr/bin/env bash
# Writes the execution environment's build context (execution-environment.yml, ansible-builder pinned in
# requirements/test.txt) and checks it: the collection built from this checkout, the pinned ansible-core, the system
# packages of bindep.txt, no Python package beyond ansible-core and ansible-runner. An image cannot be built here (no
# container engine); the context is what `podman build` takes:
#   podman build -f .ansible/ee/context/Containerfile -t llmops-deploy-ee .ansible/ee/context
# Usage: scripts/ee-create.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
work=$PWD/.ansible/ee
rm -rf "$work"
mkdir -p "$work/dist"
ansible-galaxy collection build --output-path "$work/dist" --force >/dev/null
mv "$work"/dist/llmops-deploy-*.tar.gz "$work/dist/llmops-deploy.tar.gz"
ansible-builder create -f execution-environment.yml --context "$work/context" --output-filename Containerfile

context=$work/context
fail() {
    echo "ee-create: $*" >&2
    exit 1
}
[ -s "$context/Containerfile" ] || fail "no Containerfile in $context"
listing=$(tar -tzf "$context/_build/collections/llmops-deploy.tar.gz" 2>/dev/null || true)
grep -qx 'MANIFEST.json' <<<"$listing" || fail "the collection tarball is not in the build context"
grep -qx 'bindep.txt' <<<"$listing" || fail "the collection tarball has no bindep.txt (introspected in the image)"
grep -q 'collections/llmops-deploy.tar.gz' "$context/_build/requirements.yml" \
    || fail "_build/requirements.yml does not install the collection"
grep -q 'ansible-core==2.19.14' "$context/Containerfile" || fail "the Containerfile does not pin ansible-core==2.19.14"
pinned=$(sed -n 's/^ansible-core==//p' requirements/controller.txt)
[ "$pinned" = "2.19.14" ] || fail "requirements/controller.txt pins ansible-core $pinned, execution-environment.yml 2.19.14"
diff <(grep -v '^#' bindep.txt) <(grep -v '^#' "$context/_build/bindep.txt") >/dev/null \
    || fail "_build/bindep.txt is not the collection's bindep.txt"
if [ -s "$context/_build/requirements.txt" ] && grep -v '^#' "$context/_build/requirements.txt" | grep -q .; then
    fail "unexpected Python packages in the context: $(cat "$context/_build/requirements.txt")"
fi
echo "execution environment context: $context (Containerfile, collection $(tar -xzOf "$context/_build/collections/llmops-deploy.tar.gz" MANIFEST.json | python -c 'import json, sys; i = json.load(sys.stdin)["collection_info"]; print("%s.%s %s" % (i["namespace"], i["name"], i["version"]))'))"
