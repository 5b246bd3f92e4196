# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The calibration file: what trials measured, so the next plan for the same engine version and GPU uses it.

Controller side only. A calibration document is JSON::

    {"format": 1, "entries": [ENTRY, ...]}   (newest last, at most MAX_ENTRIES)

Each entry is one trial: ``engine``, ``engine_version``, ``gpu_class`` (GPU name and nvidia-smi MiB),
``memory_total_mib``, ``model``, ``tensor_parallel_size``, ``arguments`` (max_model_len, gpu_memory_utilization,
max_num_batched_tokens, ...), ``measured`` (bytes: weights, kv_cache, torch_total, activation, non_torch,
cuda_graph; ``kv_tokens``), ``modelled`` (the plan's figures for the same trial), ``host``, ``date`` (ISO 8601).

``measured_from_log`` turns the engine's start-up log into a trial's ``measured`` figures; ``record`` returns a new
document (pure); ``lookup`` returns the constants for the next plan with warnings for every
entry it ignored (another engine version, another GPU, malformed, too old) - nothing is applied silently.
``load`` / ``write_atomic`` read and write the file for callers outside Ansible (a playbook writes it with
``ansible.builtin.copy``).
"""

import datetime
import json
import os
import re
import tempfile

from ansible_collections.llmops.deploy.plugins.module_utils import engine_log, engine_memory, gpu_catalog

GIB = 1024 ** 3

FORMAT = 1
MAX_ENTRIES = 200
DEFAULT_MAX_AGE_DAYS = 365
MEASURED_BYTES = ("weights_bytes", "kv_cache_bytes", "torch_total_bytes", "activation_bytes", "non_torch_bytes",
                  "cuda_graph_bytes")


class CalibrationError(ValueError):
    """A trial or document that cannot be recorded; names the field."""

    def __init__(self, field, value, expected):
        self.field, self.value, self.expected = field, value, expected
        super(CalibrationError, self).__init__("calibration %s: invalid value %r; expected %s" % (field, value,
                                                                                                  expected))


def empty():
    return {"format": FORMAT, "entries": []}


def gpu_class(name, memory_total_mib):
    """'NVIDIA H100 80GB HBM3', 81559 -> 'nvidia-h100-80gb-hbm3/81559MiB': one key per GPU model and memory.

    The name is the catalog's (gpu_catalog.canonical_name), so 'RTX 4090' and 'NVIDIA GeForce RTX 4090' at 24564 MiB are one class,
    'nvidia-geforce-rtx-4090/24564MiB'. Entries stored with another class string (older files) are keyed again from
    their ``gpu`` and ``memory_total_mib`` when read.
    """
    if not isinstance(name, str) or not name.strip():
        raise CalibrationError("gpu", name, "the GPU's name as nvidia-smi prints it")
    mib = _int("memory_total_mib", memory_total_mib)
    slug = re.sub(r"[^a-z0-9]+", "-", gpu_catalog.canonical_name(name).lower()).strip("-")
    return "%s/%dMiB" % (slug, mib)


def gpu_class_of(gpu):
    """The class of a host's GPU (a dict with ``name`` and ``memory_total_mib``, as capacity_check reports it);
    None when either is missing."""
    if not isinstance(gpu, dict):
        return None
    try:
        return gpu_class(gpu.get("name"), gpu.get("memory_total_mib"))
    except CalibrationError:
        return None


def constants_class(constants):
    """The class of the GPU a set of constants (lookup_all) was measured on: from its ``gpu`` and
    ``memory_total_mib``, else the class it carries."""
    return gpu_class_of({"name": constants.get("gpu"), "memory_total_mib": constants.get("memory_total_mib")}) or (
        constants.get("gpu_class"))


def _int(field, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise CalibrationError(field, value, "an integer of at least %d" % minimum)
    return value


def _date(value):
    if value is None:
        return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
    try:
        datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise CalibrationError("date", value, "an ISO 8601 date or date-time")
    return str(value)


def check_document(document):
    """A document as read (None or {} is an empty one); raises CalibrationError when it is not one."""
    if document in (None, {}, ""):
        return empty()
    if not isinstance(document, dict) or not isinstance(document.get("entries"), list):
        raise CalibrationError("document", document if not isinstance(document, dict) else sorted(document),
                               "a dict with 'format' %d and an 'entries' list" % FORMAT)
    if document.get("format") != FORMAT:
        raise CalibrationError("format", document.get("format"), FORMAT)
    return document


def make_entry(trial):
    """Validate one trial's figures and return the entry to store."""
    if not isinstance(trial, dict):
        raise CalibrationError("trial", trial, "a dict")
    engine = trial.get("engine", "vllm")
    version = trial.get("engine_version")
    if not isinstance(version, str) or not re.match(r"^\d+\.\d+", version):
        raise CalibrationError("engine_version", version, "the engine's version, such as 0.32.0")
    mib = _int("memory_total_mib", trial.get("memory_total_mib"))
    measured = trial.get("measured")
    if not isinstance(measured, dict) or not measured:
        raise CalibrationError("measured", measured, "a dict of measured figures (%s, kv_tokens)" %
                               ", ".join(MEASURED_BYTES))
    clean = {}
    for key, value in measured.items():
        if key not in MEASURED_BYTES + ("kv_tokens",):
            raise CalibrationError("measured.%s" % key, value, "one of %s, kv_tokens" % ", ".join(MEASURED_BYTES))
        if value is not None:
            clean[key] = _int("measured.%s" % key, value, minimum=0)
    modelled = trial.get("modelled") or {}
    if not isinstance(modelled, dict):
        raise CalibrationError("modelled", modelled, "a dict of the plan's figures for this trial")
    return {
        "engine": engine,
        "engine_version": version,
        "gpu_class": gpu_class(trial.get("gpu"), mib),
        "gpu": trial.get("gpu"),
        "memory_total_mib": mib,
        "model": trial.get("model"),
        "tensor_parallel_size": _int("tensor_parallel_size", trial.get("tensor_parallel_size", 1)),
        "arguments": dict(trial.get("arguments") or {}),
        "measured": clean,
        "modelled": dict((k, v) for k, v in modelled.items() if isinstance(v, int) and not isinstance(v, bool)),
        "host": trial.get("host"),
        "date": _date(trial.get("date")),
    }


def record(document, trial, max_entries=MAX_ENTRIES):
    """A new document with ``trial`` appended (newest last); the oldest entries drop beyond ``max_entries``."""
    doc = check_document(document)
    entry = make_entry(trial)
    entries = list(doc["entries"]) + [entry]
    _int("max_entries", max_entries)
    return {"format": FORMAT, "entries": entries[-max_entries:]}


def lookup(document, engine_version, gpu, memory_total_mib, engine="vllm", today=None,
           max_age_days=DEFAULT_MAX_AGE_DAYS):
    """The measured constants for a plan of ``engine`` ``engine_version`` on this GPU, newest trial first.

    Returns ``{'constants': {...} or None, 'entry': the trial used or None, 'warnings': [...]}``. ``constants``
    (for detailed_sizing's ``calibration`` option) holds ``torch_total_bytes``, ``non_torch_bytes``,
    ``cuda_graph_bytes`` as measured and ``activation_ratio`` = measured / modelled activation when the trial had
    both, with ``engine_version``, ``gpu_class``, ``memory_total_mib``, ``host``, ``date``, ``model`` and
    ``tensor_parallel_size`` (the plan carries what depends on the number of GPUs over to its own).
    """
    warnings = []
    try:
        doc = check_document(document)
    except CalibrationError as exc:
        return {"constants": None, "entry": None, "warnings": ["calibration file ignored: %s" % exc]}
    wanted = gpu_class(gpu, memory_total_mib)
    now = today or datetime.datetime.now(datetime.timezone.utc)
    chosen = None
    for index in range(len(doc["entries"]) - 1, -1, -1):
        raw = doc["entries"][index]
        try:
            entry = make_entry(raw)
        except CalibrationError as exc:
            warnings.append("calibration entry %d ignored: malformed (%s)" % (index, exc))
            continue
        if entry["engine"] != engine or entry["gpu_class"] != wanted:
            continue
        if entry["engine_version"] != engine_version:
            warnings.append("calibration entry %d ignored: measured with %s %s on %s, %s; this plan is for %s %s" % (
                index, entry["engine"], entry["engine_version"], entry["host"] or "an unnamed host", entry["date"],
                engine, engine_version))
            continue
        age = _age_days(entry["date"], now)
        if max_age_days is not None and age is not None and age > max_age_days:
            warnings.append("calibration entry %d ignored: stale (%s, %d days old; at most %d)" % (
                index, entry["date"], age, max_age_days))
            continue
        if chosen is None:
            chosen = entry
    if chosen is None:
        return {"constants": None, "entry": None, "warnings": warnings}
    measured, modelled = chosen["measured"], chosen["modelled"]
    keys = ("engine", "engine_version", "gpu_class", "gpu", "memory_total_mib", "host", "date", "model",
            "tensor_parallel_size")
    constants = dict((k, chosen[k]) for k in keys)
    for key in ("torch_total_bytes", "non_torch_bytes", "cuda_graph_bytes"):
        if key in measured:
            constants[key] = measured[key]
    if measured.get("activation_bytes") and modelled.get("activation_bytes"):
        constants["activation_ratio"] = round(float(measured["activation_bytes"]) / modelled["activation_bytes"], 4)
    return {"constants": constants, "entry": chosen, "warnings": warnings}


def lookup_all(document, engine_version=None, engine="vllm", today=None, max_age_days=DEFAULT_MAX_AGE_DAYS):
    """The constants for every GPU the document has trials of, for plans of ``engine`` ``engine_version``.

    For a fleet whose GPUs are only known once each host is probed: the list goes to capacity_check
    (``calibrations``), which applies the one measured on the host's GPU (the same class: catalog model and MiB,
    however the GPU is spelt). Returns
    ``{'calibrations': [constants, ...], 'warnings': [...]}``; every entry left out is named in a warning.
    ``engine_version`` None is the pinned one (the version the plans follow by default).
    """
    engine_version = engine_version or engine_memory.PINNED_VERSION
    try:
        doc = check_document(document)
    except CalibrationError as exc:
        return {"calibrations": [], "warnings": ["calibration file ignored: %s" % exc]}
    seen, gpus = set(), []
    for raw in doc["entries"]:
        gpu, mib = (raw.get("gpu"), raw.get("memory_total_mib")) if isinstance(raw, dict) else (None, None)
        try:
            key = gpu_class(gpu, mib)
        except CalibrationError:
            continue  # malformed: named below
        if key not in seen:  # one class, however nvidia-smi or an inventory spells the GPU
            seen.add(key)
            gpus.append((gpu, mib))
    calibrations, warnings = [], []
    for index, raw in enumerate(doc["entries"]):
        try:
            make_entry(raw)
        except CalibrationError as exc:
            warnings.append("calibration entry %d ignored: malformed (%s)" % (index, exc))
    for gpu, mib in gpus:
        found = lookup(doc, engine_version, gpu, mib, engine=engine, today=today, max_age_days=max_age_days)
        warnings.extend(w for w in found["warnings"] if w not in warnings and "malformed" not in w)
        if found["constants"]:
            calibrations.append(found["constants"])
    return {"calibrations": calibrations, "warnings": warnings}


def unmatched_warnings(calibrations, host_gpus):
    """Why constants that lookup_all returned were used by no host: one warning per GPU class no host has.

    ``host_gpus`` maps each host to its GPUs (a list of dicts with ``name`` and ``memory_total_mib``, or None when the
    host did not report them); a host plans on its first GPU. Returns ``[warning, ...]``, in the order of
    ``calibrations``.
    """
    classes = set(gpu_class_of((gpus or [None])[0]) for gpus in (host_gpus or {}).values())
    warnings = []
    for constants in calibrations or []:
        if not isinstance(constants, dict):
            continue
        key = constants_class(constants)
        if key in classes:
            continue
        warnings.append("calibration for %s (%s MiB, measured on %s, %s, vLLM %s) not used: no host of this run "
                        "plans on that GPU (%s)" % (
                            constants.get("gpu"), constants.get("memory_total_mib"),
                            constants.get("host") or "an unnamed host", constants.get("date") or "date unknown",
                            constants.get("engine_version"), key))
    return warnings


def measured_from_engine(engine):
    """The ``measured`` figures of a trial from what the engine said (inference_check's ``engine`` result, or
    engine_log.parse_engine_log of the start-up log): bytes, and ``kv_tokens``."""
    figures = (engine or {}).get("figures") or {}
    measured = {}
    for ours, theirs in (("weights_bytes", "weights_bytes"), ("kv_cache_bytes", "kv_cache_memory_bytes"),
                         ("kv_tokens", "kv_cache_tokens")):
        if theirs in figures and figures[theirs]["value"] >= 0:
            measured[ours] = int(figures[theirs]["value"])
    breakdown = (engine or {}).get("memory_breakdown") or {}
    for key in ("torch_total_bytes", "activation_bytes", "cuda_graph_bytes", "non_torch_bytes"):
        if key in breakdown:
            measured[key] = breakdown[key]
    if "non_torch_bytes" not in measured and "consumed_bytes" in breakdown and "weights_bytes" in measured:
        measured["non_torch_bytes"] = max(breakdown["consumed_bytes"] - measured["weights_bytes"], 0)
    return measured


def trial_from_deployment(host, check, plan, serve, date=None):
    """One host's trial as a calibration entry to record, from what the deployment measured.

    ``check`` is inference_check's result, ``plan`` the host's preflight result (capacity_check), ``serve`` the
    serving role's ``model_serve_info``. Returns ``{'trial': {...} or None, 'skipped': reason or None}``: only a
    GPU trial whose engine printed its figures is recorded (CPU engines have no GPU class to learn for).
    """
    check, plan, serve = check or {}, plan or {}, serve or {}
    engine = check.get("engine") or {}
    if not engine.get("figures"):
        return {"trial": None, "skipped": "the trial did not read the engine's start-up log"}
    if (serve.get("target") or engine.get("platform")) != "gpu" or engine.get("platform") not in (None, "gpu"):
        return {"trial": None, "skipped": "a CPU engine: the calibration file learns GPU constants"}
    gpus = (plan.get("hardware") or {}).get("gpus") or []
    if not gpus:
        return {"trial": None, "skipped": "the preflight named no GPU for this host"}
    measured = measured_from_engine(engine)
    if not measured:
        return {"trial": None, "skipped": "the engine's log has none of the figures the calibration keeps"}
    args = dict((a["name"], a["value"]) for a in serve.get("args") or [] if isinstance(a, dict) and "name" in a)
    # capacity_check's result holds the GPU plan of the model, or of the chosen candidate.
    memory = (plan.get("gpu_plan") or {}).get("engine_memory") or {}
    modelled = dict((key.replace("_gib", "_bytes"), int(round(value * GIB)))
                    for key, value in (memory.get("modelled_gib") or {}).items()
                    if isinstance(value, (int, float)) and not isinstance(value, bool))
    arguments = dict((key, args[name]) for key, name in (
        ("max_model_len", "max_model_len"), ("gpu_memory_utilization", "gpu_memory_utilization"),
        ("max_num_batched_tokens", "max_num_batched_tokens"), ("max_num_seqs", "max_num_seqs"),
        ("kv_cache_dtype", "kv_cache_dtype"), ("quantization", "quantization")) if args.get(name) is not None)
    trial = {
        "engine": "vllm",
        "engine_version": engine.get("version") or (serve.get("engine") or {}).get("version"),
        "gpu": gpus[0].get("name"),
        "memory_total_mib": gpus[0].get("memory_total_mib"),
        "model": serve.get("served_model_name") or engine.get("model"),
        "tensor_parallel_size": int(args.get("tensor_parallel_size") or 1),
        "arguments": arguments,
        "measured": measured,
        "modelled": modelled,
        "host": host,
        "date": date,
    }
    try:
        make_entry(trial)
    except CalibrationError as exc:
        return {"trial": None, "skipped": str(exc)}
    return {"trial": trial, "skipped": None}


def measured_from_log(text):
    """The ``measured`` figures of a trial from the engine's start-up log (bytes, and ``kv_tokens``).

    Weights, KV cache memory and tokens come from plugins/module_utils/engine_log.py; the device total, activation
    peak, non-torch and CUDA graph memory from the engine's own budget line (engine_memory.parse_memory_breakdown),
    when the log has one. Also returns the engine version the log names (``None`` when it names none).
    """
    parsed = engine_log.parse_engine_log(text)
    return {"measured": measured_from_engine(parsed), "engine_version": parsed["version"]}


def _age_days(date, now):
    try:
        when = datetime.datetime.fromisoformat(str(date).replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return (now - when).days


def load(path):
    """The document at ``path`` (an empty one when the file does not exist). Raises CalibrationError when unreadable."""
    if not os.path.exists(path):
        return empty()
    try:
        with open(path) as handle:
            return check_document(json.load(handle))
    except ValueError as exc:
        if isinstance(exc, CalibrationError):
            raise
        raise CalibrationError("file", path, "a JSON calibration document (%s)" % exc)


def write_atomic(path, document):
    """Write ``document`` to ``path`` through a temporary file in the same directory and a rename."""
    doc = check_document(document)
    directory = os.path.dirname(os.path.abspath(path))
    handle, tmp = tempfile.mkstemp(prefix=".calibration-", dir=directory)
    try:
        with os.fdopen(handle, "w") as out:
            json.dump(doc, out, indent=2, sort_keys=True)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
