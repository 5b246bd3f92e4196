#!/usr/bin/env bash
# Sets everything up and runs every test gate. Usage: scripts/test.sh [extra pytest args]
# All side by side (they share nothing):
#   pytest, slow tests (-m slow: playbook runs, local hub + real SDK, vLLM engine, molecule test hosts, browser)
#     in two worker processes: each test file is one unit (its engine or test host is started once, on one worker),
#     each molecule scenario is its own unit, and the longest units start first (tests/conftest.py). It is the
#     longest gate and spends much of its time waiting on subprocesses (playbooks, test hosts, the engine), so
#   the other gates run beside it at a lower CPU priority (nice), on what it leaves idle:
#     ansible-lint (production profile) | ansible-test sanity | collection build + install + run
#     | collection docs (ansible-doc of every plugin, antsibull-docs lint) | execution environment (ansible-builder)
#     | pytest, fast tests (-m "not slow"), in parallel processes (pytest-xdist)
# Each gate writes its own log (.ansible/test-logs/<gate-name>.log); a failed gate's log is printed. Prints each gate as
# "==> name: ok" / "FAILED" with pytest's summary, and ends with "all gates passed" or "FAILED gates: ...".
# Exits non-zero if any gate fails; pytest finding no test (exit 5) is a failure too.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
scripts/setup.sh || exit 1
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    scripts/apt-prereqs.sh testhosts browser lint || exit 1
fi
export PATH="$PWD/.venv/bin:$PATH"
export ANSIBLE_HOME="$PWD/.ansible" ANSIBLE_LOCAL_TEMP="$PWD/.ansible/tmp"
logs=${LLMOPS_TEST_LOGS:-$PWD/.ansible/test-logs}
rm -rf "$logs"
mkdir -p "$logs" "$ANSIBLE_LOCAL_TEMP"

# The vLLM engine venv the slow layer serves from is cached by its pins (scripts/engine-venv.sh); when it has to be
# built, that starts now, so it is ready by the time the slow layer needs it (the tests that need it call the script
# again, which waits on the same lock and reuses the venv: the slow layer does not wait for it as a whole).
engine_pid=
if [ -x scripts/engine-venv.sh ]; then
    scripts/engine-venv.sh >"$logs/engine-venv.log" 2>&1 &
    engine_pid=$!
fi

failed=()
names=()
pids=()

# Prints pytest's summary line of a gate's log, if there is one.
summary() {
    grep -E '^=+ .*(passed|failed|error|no tests ran).* =+$' "$1" | tail -n 1
}

# start NAME CMD...: runs a gate in the background, its output in its own log.
start() {
    local name=$1
    shift
    echo "==> $name (log: $logs/${name// /-}.log)"
    "$@" >"$logs/${name// /-}.log" 2>&1 &
    names+=("$name")
    pids+=("$!")
}

# finish NAME RC: reports a gate; a failed gate's log (its last 200 lines) is printed.
finish() {
    local name=$1 rc=$2 log="$logs/${1// /-}.log" line
    line=$(summary "$log")
    if [ "$rc" -eq 5 ] && [ -n "$line" ]; then
        echo "pytest collected no test: that is a failure"
    fi
    if [ "$rc" -eq 0 ]; then
        echo "==> $name: ok${line:+  $line}"
    else
        echo "---- $name: last lines of $log"
        tail -n 200 "$log"
        echo "==> $name: FAILED (exit $rc)${line:+  $line}"
        failed+=("$name")
    fi
}

# wait_all: waits for every started gate, in the order they were started.
wait_all() {
    local i rc
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}"
        rc=$?
        finish "${names[$i]}" "$rc"
    done
    names=()
    pids=()
}

# The short gates, niced: they take the CPU the slow layer leaves idle and never slow it down much. Their results are
# printed as they end (the gates are waited for in the order they were started, the slow layer last).
start "ansible-lint" nice -n 10 ansible-lint --profile production
start "ansible-test sanity" nice -n 10 scripts/sanity.sh
start "collection build + install" nice -n 10 scripts/build-install.sh
start "collection docs" nice -n 10 scripts/collection-docs.sh
start "execution environment" nice -n 10 scripts/ee-create.sh
start "pytest fast" nice -n 10 pytest -m "not slow" -n auto --dist loadfile "$@"
# Two workers (LLMOPS_SLOW_WORKERS) whatever the machine's cores: the slow tests spend much of their time waiting on
# subprocesses (playbook runs, test hosts, the engine); no test depends on the number. tests/conftest.py decides the
# units of work for --dist loadgroup (a file, or one molecule scenario) and starts the longest first.
start "pytest slow" pytest -m slow -n "${LLMOPS_SLOW_WORKERS:-2}" --dist loadgroup --no-loadscope-reorder "$@"
wait_all
if [ -n "$engine_pid" ]; then
    # Its outcome is the slow tests' to judge (they say what is missing); its log is kept.
    wait "$engine_pid" || echo "engine-venv: exit $? (log: $logs/engine-venv.log)"
fi

passed=0
failures=0
for log in "$logs/pytest-fast.log" "$logs/pytest-slow.log"; do
    line=$(summary "$log")
    while read -r n word; do
        case "$word" in
            passed*) passed=$((passed + n)) ;;
            failed* | error*) failures=$((failures + n)) ;;
        esac
    done < <(grep -oE '[0-9]+ (passed|failed|errors?)' <<<"$line")
done
echo "pytest: $passed passed, $failures failed"

if [ "${#failed[@]}" -ne 0 ]; then
    echo "FAILED gates: ${failed[*]}"
    exit 1
fi
echo "all gates passed"
