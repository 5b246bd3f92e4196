#!/usr/bin/env bash
# Builds the collection tarball, installs it into an empty collections path, and runs the installed collection's
# FQCN playbook (llmops.deploy.preflight) from outside the checkout, so nothing comes from the git tree.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
work=$PWD/.ansible/build
rm -rf "$work"
mkdir -p "$work/collections" "$work/run"
ansible-galaxy collection build --output-path "$work" --force
tarball=$(ls "$work"/llmops-deploy-*.tar.gz)
echo "built $(basename "$tarball") ($(du -h "$tarball" | cut -f1)); files: $(tar -tzf "$tarball" | wc -l)"
if tar -tzf "$tarball" | grep -E '(^|/)(\.venv|\.collections|\.git|tools)/' >/dev/null; then
    echo "the tarball holds files that build_ignore should leave out" >&2
    exit 1
fi
ansible-galaxy collection install "$tarball" -p "$work/collections" --force
cat > "$work/run/ansible.cfg" <<CFG
[defaults]
collections_path = $work/collections
CFG
cd "$work/run"
export ANSIBLE_CONFIG="$work/run/ansible.cfg"
ansible-galaxy collection list llmops.deploy | grep -F "$work/collections"
ansible-playbook llmops.deploy.preflight -i localhost, -c local \
    -e ansible_python_interpreter="$(command -v python)" \
    -e llmops_model=Qwen/Qwen2.5-0.5B-Instruct -e llmops_precision=bf16 -e llmops_target=cpu \
    -e preflight_report_dir="$work/run/reports" | tee "$work/run/output.txt"
test -s "$work/run/reports/preflight.json"
grep -q '"verdict"' "$work/run/reports/preflight.json"
echo "installed collection ran: report at $work/run/reports/preflight.md"
