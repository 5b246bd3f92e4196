"""scripts/prune-cache.sh: cached builds (tooling and engine venvs) that no run used for N days are removed, nothing
else is."""
import fcntl
import os
import subprocess
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, "scripts", "prune-cache.sh")
PATTERN = "^venv-[0-9a-f]{16}$"
DAY = 86400


def build(cache, name, age_days):
    """A cached build ``name`` whose lock was last written ``age_days`` ago."""
    os.makedirs(os.path.join(cache, name, "bin"))
    with open(os.path.join(cache, name, "bin", "python"), "w") as handle:
        handle.write("#!/bin/sh\n")
    with open(os.path.join(cache, name + ".log"), "w") as handle:
        handle.write("built\n")
    lock = os.path.join(cache, name + ".lock")
    open(lock, "w").close()
    when = time.time() - age_days * DAY
    os.utime(lock, (when, when))
    return lock


def prune(cache, keep, days=None):
    env = dict(os.environ)
    env.pop("LLMOPS_CACHE_KEEP_DAYS", None)
    if days is not None:
        env["LLMOPS_CACHE_KEEP_DAYS"] = days
    return subprocess.run([SCRIPT, str(cache), PATTERN, keep], env=env, capture_output=True, text=True, check=False)


def test_removes_only_unused_builds_of_the_pattern(tmp_path):
    cache = str(tmp_path)
    old, recent, current = "venv-" + "a" * 16, "venv-" + "b" * 16, "venv-" + "c" * 16
    other_kind, held = "venv-sanity-" + "d" * 16, "venv-" + "e" * 16
    build(cache, old, 20)
    build(cache, recent, 3)
    build(cache, current, 30)  # the one this run uses: never removed, however old its lock looks
    build(cache, other_kind, 40)  # another LINK's venvs: another pattern
    held_lock = build(cache, held, 25)
    with open(held_lock) as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # a run is building or checking it right now
        proc = prune(cache, current)
    assert proc.returncode == 0, proc.stderr
    left = sorted(os.listdir(cache))
    for name in (recent, current, other_kind, held):
        assert {name, name + ".lock", name + ".log"} <= set(left), name
    assert not [entry for entry in left if entry.startswith(old)]
    assert "removed %s/%s" % (cache, old) in proc.stdout


@pytest.mark.parametrize("days, removed", [("0", False), ("30", False), ("10", True)])
def test_keep_days_setting(tmp_path, days, removed):
    cache = str(tmp_path)
    name = "venv-" + "a" * 16
    build(cache, name, 20)
    proc = prune(cache, "venv-" + "f" * 16, days)
    assert proc.returncode == 0, proc.stderr
    assert os.path.exists(os.path.join(cache, name)) is not removed


def test_a_bad_keep_days_is_refused_naming_the_variable(tmp_path):
    name = "venv-" + "a" * 16
    build(str(tmp_path), name, 20)
    proc = prune(str(tmp_path), "venv-" + "f" * 16, "two weeks")
    assert proc.returncode == 2
    assert "LLMOPS_CACHE_KEEP_DAYS must be a whole number of days" in proc.stderr
    assert os.path.exists(os.path.join(str(tmp_path), name))
