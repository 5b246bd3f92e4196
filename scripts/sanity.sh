#!/usr/bin/env bash
# ansible-test sanity on the collection. ansible-test needs the tree at .../ansible_collections/llmops/deploy,
# so the tracked files (and new, not ignored ones) are copied to such a place first. The sanity tests run --local
# from their own venv (.venv-sanity, requirements/sanity.txt = ansible-core's own pins for them): ansible-test's
# --venv mode downloads a pip bootstrap script from a host that is not reachable here.
# Usage: scripts/sanity.sh [extra ansible-test args, e.g. --test validate-modules]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/cached-venv.sh .venv-sanity requirements/sanity.txt
export PATH="$PWD/.venv-sanity/bin:$PATH"
# ansible-test skips its shellcheck test, with a warning only, when shellcheck is missing: then no shell script is
# linted and the gate would still say ok. Missing shellcheck is a failure here (scripts/apt-prereqs.sh lint).
if ! command -v shellcheck >/dev/null 2>&1; then
    echo "sanity: shellcheck is not installed, so the shell scripts would not be linted; install it with" \
        "scripts/apt-prereqs.sh lint (as root)" >&2
    exit 1
fi
# ansible-test bootstraps pip in each sanity venv with a script it downloads; give it ours (see the script).
pip_version=$(python - <<'PY'
import os, re, ansible_test
path = os.path.join(os.path.dirname(ansible_test.__file__), "_internal", "python_requirements.py")
print(re.search(r"pip='([0-9.]+)'", open(path).read()).group(1))
PY
)
mkdir -p ~/.ansible/test/cache
cp scripts/ansible-test-get-pip.py ~/.ansible/test/cache/"get_pip_${pip_version//./_}.py"
work=${SANITY_WORKDIR:-$PWD/.ansible/sanity}
dest="$work/ansible_collections/llmops/deploy"
rm -rf "$dest"
mkdir -p "$dest"
git ls-files -z --cached --others --exclude-standard | grep -zv '^\.collections/' \
    | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
    | tar --null --files-from=- -cf - | tar -xf - -C "$dest"
cd "$dest"
git init -q && git add -A >/dev/null  # ansible-test lists a collection's files through git when it is a repo
exec ansible-test sanity --local --python 3.11 --color no "$@"
