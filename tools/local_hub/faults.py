# Copyright: (c) 2026, llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fault injection rules of the local hub.

A fault specification is JSON (the body of ``POST /_admin/faults``, the file given to ``--faults``, or the argument of
``LocalHub.set_faults``)::

    {
      "files": [
        {"path": "model.safetensors", "corrupt": true},                 # flip 1 byte at size//2; Size/Sha256 unchanged
        {"path": "*.json", "model": "llmops-test/Qwen2-tiny-2M", "revision": "master", "status": 500},
        {"path": "model-00002-of-00003.safetensors", "drop_after": 1048576, "times": 1},
        {"path": "tokenizer.json", "slow": 65536},                        # bytes per second (>= 1024)
        {"path": "config.json", "corrupt": {"offset": 0, "length": 4}, "delay": 0.5}
      ],
      "listing": [
        {"model": "llmops-test/Qwen2-tiny-2M", "unsafe_paths": true},   # or a list of paths
        {"status": 500, "times": 2},
        {"omit_sha256": true}
      ]
    }

File rule keys: ``path`` (required; an fnmatch pattern matched against the repo-relative path, so an exact path
works), ``model`` and ``revision`` (optional filters), ``times`` (apply to the first N matching requests only; default:
every time) and at least one effect:

* ``corrupt``: ``true`` or ``{"offset": N, "length": L}``: XOR 0xFF over those bytes of the body (only the part a
  range request covers), while the listing keeps the true Size and Sha256;
* ``drop_after``: send N bytes of the body, then close the connection (Content-Length announced in full);
* ``status``: answer this HTTP status (400-599) with a hub error body instead of the file (``retry_after``: seconds,
  sent as ``Retry-After``);
* ``slow``: throttle the body to this many bytes per second; at least 1024, since the SDK cuts transfers slower than
  1024 B/s (protocol section 7);
* ``delay``: seconds to wait before answering;
* ``hold``: send this many bytes of the body (0: only the headers), then hold the transfer until the test releases it
  (``LocalHub.release()`` or ``POST /_admin/release``) or the hub stops; ``LocalHub.wait_held()`` returns once a
  transfer is held. A condition instead of a duration, so that tests do not race on a loaded machine;
* ``redirect``: answer ``302`` with ``Location: <redirect><the request's path and query>`` (``redirect`` is a base
  URL such as ``http://127.0.0.1:8081``), for example to another port of the same host.

Listing rule keys: ``model``, ``revision``, ``times`` and effects ``unsafe_paths`` (``true`` for
:data:`DEFAULT_UNSAFE_PATHS`, or a list of paths; the entries are added to the listing with real Size and Sha256 and
their content is served), ``omit_sha256`` (entries without Sha256: the SDK then checks nothing), ``status``,
``retry_after``, ``delay`` and ``redirect``.

The first rule (in order) that matches and still has ``times`` left applies; each application is counted in ``hits``.
"""

import fnmatch
import threading
from typing import List, Optional

#: Listing entries that a careless client would write outside (or oddly inside) its target directory. The absolute
#: entry points under /tmp on purpose, so that a demonstration with a vulnerable client stays harmless; tests pass
#: their own absolute path inside their tmp dir.
DEFAULT_UNSAFE_PATHS = (
    "../escaped.txt",
    "sub/../../escaped-nested.txt",
    "/tmp/llmops-local-hub-unsafe/absolute.txt",
    "dir\\backslash.txt",
    "C:/drive-letter.txt",
    "a//empty-segment.txt",
    "ctrl\x07char.txt",
    "newline\nname.txt",
)

MIN_SLOW_RATE = 1024

_FILE_EFFECTS = ("corrupt", "drop_after", "status", "slow", "delay", "hold", "redirect")
_FILE_KEYS = frozenset(("path", "model", "revision", "times", "retry_after") + _FILE_EFFECTS)
_LISTING_EFFECTS = ("unsafe_paths", "omit_sha256", "status", "delay", "redirect")
_LISTING_KEYS = frozenset(("model", "revision", "times", "retry_after") + _LISTING_EFFECTS)


class FaultError(ValueError):
    """An invalid fault specification (the message names the rule, the key and the accepted values)."""


def _int(rule, key, where, minimum=0, maximum=None):
    value = rule[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (maximum and value > maximum):
        raise FaultError("%s: %s must be an integer %s, got %r"
                         % (where, key, "in %d..%d" % (minimum, maximum) if maximum else ">= %d" % minimum, value))
    return value


def _number(rule, key, where):
    value = rule[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or value > 600:
        raise FaultError("%s: %s must be a number of seconds in 0..600, got %r" % (where, key, value))
    return float(value)


def _common(rule, where, keys, effects):
    if not isinstance(rule, dict):
        raise FaultError("%s: a rule must be a JSON object, got %r" % (where, rule))
    unknown = sorted(set(rule) - keys)
    if unknown:
        raise FaultError("%s: unknown key(s) %s; accepted keys: %s" % (where, ", ".join(unknown), ", ".join(sorted(keys))))
    if not any(k in rule for k in effects):
        raise FaultError("%s: no effect given; use at least one of %s" % (where, ", ".join(effects)))
    out = {"hits": 0}
    for key in ("model", "revision"):
        if key in rule and rule[key] is not None:
            if not isinstance(rule[key], str) or not rule[key]:
                raise FaultError("%s: %s must be a non-empty string, got %r" % (where, key, rule[key]))
            out[key] = rule[key]
    if rule.get("times") is not None:
        out["times"] = _int(rule, "times", where, minimum=1)
    if "status" in rule:
        out["status"] = _int(rule, "status", where, minimum=400, maximum=599)
    if "retry_after" in rule:
        out["retry_after"] = _int(rule, "retry_after", where, minimum=0)
    if "delay" in rule:
        out["delay"] = _number(rule, "delay", where)
    if "redirect" in rule:
        target = rule["redirect"]
        if not isinstance(target, str) or not target.startswith(("http://", "https://")) or "?" in target:
            raise FaultError("%s: redirect must be a base URL such as 'http://127.0.0.1:8081' (no query), got %r"
                             % (where, target))
        out["redirect"] = target.rstrip("/")
    return out


def validate_file_rule(rule, where="files[?]") -> dict:
    out = _common(rule, where, _FILE_KEYS, _FILE_EFFECTS)
    if not isinstance(rule.get("path"), str) or not rule["path"]:
        raise FaultError("%s: path (a repo-relative path or fnmatch pattern) is required, got %r"
                         % (where, rule.get("path")))
    out["path"] = rule["path"]
    if "corrupt" in rule:
        corrupt = rule["corrupt"]
        if corrupt is True:
            out["corrupt"] = {"offset": None, "length": 1}
        elif isinstance(corrupt, dict) and set(corrupt) <= {"offset", "length"}:
            offset = corrupt.get("offset")
            if offset is not None:
                _int(corrupt, "offset", where + ".corrupt")
            length = _int(corrupt, "length", where + ".corrupt", minimum=1) if "length" in corrupt else 1
            out["corrupt"] = {"offset": offset, "length": length}
        elif corrupt is not False:
            raise FaultError("%s: corrupt must be true or {\"offset\": N, \"length\": L}, got %r" % (where, corrupt))
    if "drop_after" in rule:
        out["drop_after"] = _int(rule, "drop_after", where, minimum=0)
    if "hold" in rule:
        out["hold"] = _int(rule, "hold", where, minimum=0)
    if "slow" in rule:
        value = rule["slow"]
        if isinstance(value, bool) or not isinstance(value, int) or value < MIN_SLOW_RATE:
            raise FaultError("%s: slow must be an integer number of bytes per second >= %d (the SDK aborts "
                             "transfers slower than 1024 B/s), got %r" % (where, MIN_SLOW_RATE, value))
        out["slow"] = value
    return out


def validate_listing_rule(rule, where="listing[?]") -> dict:
    out = _common(rule, where, _LISTING_KEYS, _LISTING_EFFECTS)
    if "unsafe_paths" in rule:
        paths = rule["unsafe_paths"]
        if paths is True:
            paths = list(DEFAULT_UNSAFE_PATHS)
        if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p for p in paths):
            raise FaultError("%s: unsafe_paths must be true or a non-empty list of strings, got %r" % (where, paths))
        out["unsafe_paths"] = list(paths)
    if "omit_sha256" in rule:
        if not isinstance(rule["omit_sha256"], bool):
            raise FaultError("%s: omit_sha256 must be true or false, got %r" % (where, rule["omit_sha256"]))
        out["omit_sha256"] = rule["omit_sha256"]
    return out


def validate(spec) -> dict:
    """Check a whole specification; return its normalised form (with ``hits`` counters at 0)."""
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        raise FaultError("a fault specification must be a JSON object with 'files' and/or 'listing', got %r" % (spec,))
    unknown = sorted(set(spec) - {"files", "listing"})
    if unknown:
        raise FaultError("unknown top-level key(s) %s; accepted: files, listing" % ", ".join(unknown))
    out = {"files": [], "listing": []}
    for key, check in (("files", validate_file_rule), ("listing", validate_listing_rule)):
        rules = spec.get(key) or []
        if not isinstance(rules, list):
            raise FaultError("%s must be a list of rules, got %r" % (key, rules))
        out[key] = [check(rule, "%s[%d]" % (key, i)) for i, rule in enumerate(rules)]
    return out


def _applies(rule, model_id, revision) -> bool:
    return rule.get("model") in (None, model_id) and rule.get("revision") in (None, revision)


class FaultSet:
    """The hub's live rules; thread-safe. ``match_*`` consume one application of the matching rule."""

    def __init__(self, spec=None):
        self._lock = threading.Lock()
        self._spec = validate(spec)

    def replace(self, spec) -> dict:
        checked = validate(spec)
        with self._lock:
            self._spec = checked
        return self.to_dict()

    def clear(self):
        self.replace(None)

    def add(self, kind: str, rule: dict) -> dict:
        checker = validate_file_rule if kind == "files" else validate_listing_rule
        with self._lock:
            checked = checker(rule, "%s[%d]" % (kind, len(self._spec[kind])))
            self._spec[kind].append(checked)
        return dict(checked)

    def to_dict(self) -> dict:
        with self._lock:
            return {kind: [dict(rule) for rule in rules] for kind, rules in self._spec.items()}

    def _consume(self, kind, predicate) -> Optional[dict]:
        with self._lock:
            for rule in self._spec[kind]:
                if predicate(rule) and ("times" not in rule or rule["hits"] < rule["times"]):
                    rule["hits"] += 1
                    return dict(rule)
        return None

    def match_file(self, model_id: str, revision: str, path: str) -> Optional[dict]:
        return self._consume("files", lambda r: _applies(r, model_id, revision) and fnmatch.fnmatchcase(path, r["path"]))

    def match_listing(self, model_id: str, revision: str) -> Optional[dict]:
        return self._consume("listing", lambda r: _applies(r, model_id, revision))

    def unsafe_paths(self, model_id: str, revision: str) -> List[str]:
        """Every unsafe path a listing rule adds for this model (whether or not its ``times`` are used up)."""
        with self._lock:
            out = []
            for rule in self._spec["listing"]:
                if _applies(rule, model_id, revision):
                    out.extend(p for p in rule.get("unsafe_paths", ()) if p not in out)
            return out
