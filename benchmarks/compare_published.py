# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Our detailed estimate next to published vLLM start-up logs: weights, KV cache, KV tokens, the engine's verdict.

Run from the repository root: ``.venv/bin/python benchmarks/compare_published.py`` (``--markdown`` for a table,
``--parts`` adds the engine's own budget parts where the log prints them: peak activation, non-torch memory).

Every fixture is ``tests/fixtures/vllm_logs/published/<name>.log`` (the published excerpt, verbatim) and
``<name>.json`` (source, vLLM version, model, GPU, utilisation, context, TP and the figures the log shows). Our side
is plugins/module_utils/engine_memory.py under the rules of the fixture's vLLM version (``rules_version``), with
the weights computed from the model's config.json by the detailed method (no safetensors headers). Fixtures of the
V0 engine (older generation) are shown but not judged, and so are V1 fixtures whose sidecar says
``excluded_from_targets`` (with the reason: another generation's profiling, non-default engine arguments).
A fixture whose sidecar names a ``known_miss`` (``kv``, ``verdict``: a published log the model does not reproduce yet,
with the reason) is judged and marked so in the table; its tests are strict expected failures.

The tests (tests/unit/plugins/module_utils/test_engine_memory.py) hold the targets: KV cache within +-15 % and
weights within +-3 % on every V1 fixture, and the verdict (starts / refused) the engine's.
"""

import glob
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, ".collections"))

from ansible_collections.llmops.deploy.plugins.module_utils import (  # noqa: E402
    architecture, detailed_sizing, engine_memory)

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "vllm_logs", "published")
GIB = float(2 ** 30)
KV_TOLERANCE = 0.15
WEIGHTS_TOLERANCE = 0.03


def load_fixtures(directory=FIXTURES):
    """Every fixture's metadata, sorted by name, with its log excerpt's text under ``log``."""
    fixtures = []
    for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
        with open(path) as handle:
            meta = json.load(handle)
        with open(path[:-5] + ".log") as handle:
            meta["log"] = handle.read()
        fixtures.append(meta)
    return fixtures


def _config(meta):
    with open(os.path.join(ROOT, meta["config"])) as handle:
        return json.load(handle)


def evaluate(meta, max_model_len=None):
    """Our figures for one fixture (per GPU): weights, KV bytes and tokens, parts, and the verdict."""
    config = _config(meta)
    sized = detailed_sizing.requirements({"config": config, "context_length": None})
    inputs = sized["plan_inputs"]
    tp = meta["tensor_parallel_size"]
    context = max_model_len or meta["max_model_len"]
    weights = detailed_sizing.per_gpu_requirement(inputs, tp, 1, context, 1)["weights"]
    facts = architecture.parse_config(config)
    profile = engine_memory.profile_from_facts(facts)
    room = engine_memory.kv_room(profile, weights, meta["gpu_memory_mib"], meta["gpu_memory_utilization"], tp=tp,
                                 gpu_name=meta.get("gpu"), max_model_len=context, entry_point=meta.get("entry_point"),
                                 version=meta.get("rules_version"))
    per_token = detailed_sizing.kv_bytes(inputs["kv"], 1, tp, 1)
    tokens = engine_memory.kv_tokens(room["kv_cache_bytes"], per_token)
    one_sequence = detailed_sizing.kv_bytes(inputs["kv"], context, tp, 1)
    starts = room["starts"] and room["kv_cache_bytes"] >= one_sequence
    return {
        "weights_gib": weights / GIB,
        "kv_cache_gib": room["kv_cache_bytes"] / GIB,
        "kv_tokens": tokens,
        "kv_bytes_per_token": per_token,
        "activation_gib": room["activation_bytes"] / GIB,
        "non_torch_gib": room["non_torch_bytes"] / GIB,
        "cuda_graph_gib": room["cuda_graph_in_budget_bytes"] / GIB,
        "max_num_batched_tokens": room["max_num_batched_tokens"],
        "max_num_seqs": room["max_num_seqs"],
        "outcome": "started" if starts else "refused",
        "room": room,
    }


def published_kv_tokens(meta):
    """The log's KV tokens, or (where the source prints only GiB) the tokens that many GiB hold."""
    pub = meta["published"]
    if pub.get("kv_tokens"):
        return pub["kv_tokens"], "log"
    if pub.get("kv_cache_gib") is not None and pub["kv_cache_gib"] > 0:
        ours = evaluate(meta)
        return engine_memory.kv_tokens(int(pub["kv_cache_gib"] * GIB), ours["kv_bytes_per_token"]), "from GiB"
    return None, None


def rows():
    for meta in load_fixtures():
        if meta["generation"] != "V1":
            yield meta, None
            continue
        yield meta, evaluate(meta)


def _ratio(ours, theirs):
    if ours is None or theirs in (None, 0):
        return "-"
    return "%.2f" % (float(ours) / theirs)


def _num(value, digits=2):
    if value is None:
        return "-"
    if isinstance(value, int):
        return "{:,}".format(value)
    return "%.*f" % (digits, value)


def table():
    header = ("fixture", "GPU x TP", "vLLM", "util", "context", "weights/GPU GiB ours / log (ratio)",
              "KV GiB ours / log (ratio)", "KV tokens ours / log (ratio)", "verdict ours / engine")
    lines = [header]
    for meta, ours in rows():
        pub = meta["published"]
        gpu = "%s x %d" % (meta["gpu"].replace("NVIDIA ", "").replace("GeForce ", ""), meta["tensor_parallel_size"])
        version = meta.get("vllm_version") or "~%s" % meta.get("rules_version")
        if ours is None:
            lines.append((meta["name"] + " (V0, not judged)", gpu, version, str(meta["gpu_memory_utilization"]),
                          "{:,}".format(meta["max_model_len"]), "- / %s" % _num(pub.get("weights_gib")),
                          "- / %s" % _num(pub.get("kv_cache_gib")), "- / %s" % _num(pub.get("kv_tokens")),
                          "- / %s" % meta["engine_outcome"]))
            continue
        log_tokens, how = published_kv_tokens(meta)
        lines.append((
            meta["name"] + (" (not judged)" if meta.get("excluded_from_targets") else "") +
            (" (known miss: %s)" % ", ".join(sorted(meta["known_miss"])) if meta.get("known_miss") else ""), gpu, version,
            str(meta["gpu_memory_utilization"]), "{:,}".format(meta["max_model_len"]),
            "%s / %s (%s)" % (_num(ours["weights_gib"]), _num(pub.get("weights_gib")),
                              _ratio(ours["weights_gib"], pub.get("weights_gib"))),
            "%s / %s (%s)" % (_num(ours["kv_cache_gib"]), _num(pub.get("kv_cache_gib")),
                              _ratio(ours["kv_cache_gib"], pub.get("kv_cache_gib"))),
            "%s / %s%s (%s)" % (_num(ours["kv_tokens"]), _num(log_tokens), "*" if how == "from GiB" else "",
                                _ratio(ours["kv_tokens"], log_tokens)),
            "%s / %s" % (ours["outcome"], meta["engine_outcome"])))
    return lines


def parts_table():
    """Ours next to the engine's own budget parts (GiB per GPU), for the fixtures whose log prints them."""
    lines = [("fixture", "budget ours / log", "peak activation ours / log", "non-torch ours / log",
              "profiling batch (tokens / sequences)")]
    for meta, ours in rows():
        pub = meta["published"]
        if ours is None or pub.get("activation_gib") is None:
            continue
        budget_log = pub["torch_total_gib"] * meta["gpu_memory_utilization"] if pub.get("torch_total_gib") else None
        lines.append((meta["name"], "%s / %s" % (_num(ours["room"]["requested_bytes"] / GIB), _num(budget_log)),
                      "%s / %s" % (_num(ours["activation_gib"]), _num(pub["activation_gib"])),
                      "%s / %s" % (_num(ours["non_torch_gib"]), _num(pub.get("non_torch_gib"))),
                      "{:,} / {:,}".format(ours["max_num_batched_tokens"], ours["max_num_seqs"])))
    return lines


def _print(lines, markdown):
    if markdown:
        print("| " + " | ".join(lines[0]) + " |")
        print("|" + "---|" * len(lines[0]))
        for line in lines[1:]:
            print("| " + " | ".join(line) + " |")
    else:
        for line in lines:
            print("  ".join(line))


def main(argv):
    markdown = "--markdown" in argv
    _print(table(), markdown)
    if markdown:
        print("\n\\* the source prints KV GiB only; tokens are the whole 16-token blocks that many GiB hold.")
    if "--parts" in argv:
        print("")
        _print(parts_table(), markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
