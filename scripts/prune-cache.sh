#!/usr/bin/env bash
# Removes the cached builds in DIR whose names match NAME-REGEX (an extended regex for the whole name, such as
# '^venv-[0-9a-f]{16}$') that no run has used for ${LLMOPS_CACHE_KEEP_DAYS:-14} days and that no run holds now, with
# their .lock and .log files; never KEEP (the build this run just made or reused).
# Usage: scripts/prune-cache.sh DIR NAME-REGEX KEEP
#
# Every run that uses a build opens its lock file for writing (cached-venv.sh, engine-venv.sh), which sets the lock's
# modification time: that is when the build was last used. A build is removed under its own lock (flock -n: one
# being built or checked right now is left alone). LLMOPS_CACHE_KEEP_DAYS=0 keeps everything.
set -euo pipefail

dir=${1:?usage: scripts/prune-cache.sh DIR NAME-REGEX KEEP}
pattern=${2:?usage: scripts/prune-cache.sh DIR NAME-REGEX KEEP}
keep=${3:?usage: scripts/prune-cache.sh DIR NAME-REGEX KEEP}
days=${LLMOPS_CACHE_KEEP_DAYS:-14}
case $days in
    '' | *[!0-9]*)
        echo "prune-cache: LLMOPS_CACHE_KEEP_DAYS must be a whole number of days (0: keep everything), got '$days'" >&2
        exit 2
        ;;
esac
if [ "$days" -eq 0 ] || [ ! -d "$dir" ]; then
    exit 0
fi

# Lock files not written for at least $days days (find -mtime +N: more than N whole days).
find "$dir" -maxdepth 1 -type f -name '*.lock' -mtime +"$((days - 1))" -print0 |
    while IFS= read -r -d '' lock; do
        name=$(basename "$lock" .lock)
        if [ "$name" = "$keep" ] || [[ ! $name =~ $pattern ]]; then
            continue
        fi
        # flock(1) opens the lock without truncating it, so a build still in use keeps its date.
        if flock -n "$lock" rm -rf --one-file-system -- "$dir/$name" "$dir/$name.log"; then
            rm -f -- "$lock"
            echo "prune-cache: removed $dir/$name (unused for $days days or more)"
        fi
    done
