# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Our detailed estimate next to published vLLM memory figures for the same model, context, GPU and TP size.

Run from the repository root: ``.venv/bin/python benchmarks/compare_published.py`` (add ``--markdown`` for a table).

Published figures (vLLM's own startup log lines, as reported):

* llm-d's measurements of vLLM on one H100 (79.18 GiB as torch reports it), gpu_memory_utilization 0.9,
  max_model_len 16000: https://github.com/llm-d/llm-d-benchmark/blob/main/config_explorer/empirical-vllm-memory-results.md
  ("Model loading took ... GiB", peak activation, non-torch memory, "Available KV cache memory").
* vLLM issue #21348, Qwen3-235B-A22B-FP8 with --tensor-parallel-size 4 on H100s, default settings
  ("Available KV cache memory: 8.11 GiB", "GPU KV cache size: 178,880 tokens"):
  https://github.com/vllm-project/vllm/issues/21348

The activation constants of the detailed method come from the first source, so its Llama/Qwen3-32B rows check the
weights and KV arithmetic rather than the activation figure; the Qwen3-235B MoE row is independent of it.
"""

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, ".collections"))

from ansible_collections.llmops.deploy.plugins.module_utils import detailed_sizing, sizing  # noqa: E402

GIB = 2 ** 30
H100_TORCH_MIB = 81080  # 79.18 GiB, the total vLLM sees on an H100 80GB HBM3 (nvidia-smi: 81559 MiB)
LLM_D = ("llm-d empirical vLLM results (H100, max_model_len 16000)",
         "https://github.com/llm-d/llm-d-benchmark/blob/main/config_explorer/empirical-vllm-memory-results.md")
VLLM_21348 = ("vLLM issue #21348 (4 x H100, TP 4)", "https://github.com/vllm-project/vllm/issues/21348")

# config fixture, label, TP, context, published {weights_gib, kv_gib, kv_tokens}, source
CASES = (
    ("llama-3.1-8b", "Llama-3.1-8B-Instruct (BF16)", 1, 16000,
     {"weights_gib": 14.99, "kv_gib": 51.38, "kv_tokens": None}, LLM_D),
    ("llama-3.3-70b-instruct-fp8-dynamic", "Llama-3.3-70B-Instruct-FP8-dynamic", 2, 16000,
     {"weights_gib": 33.88, "kv_gib": 32.0, "kv_tokens": None}, LLM_D),
    ("qwen3-32b", "Qwen3-32B (BF16)", 1, 16000,
     {"weights_gib": 61.03, "kv_gib": 4.45, "kv_tokens": None}, LLM_D),
    ("qwen3-235b-a22b-fp8", "Qwen3-235B-A22B-FP8 (MoE)", 4, 40960,
     {"weights_gib": None, "kv_gib": 8.11, "kv_tokens": 178880}, VLLM_21348),
)


def estimate(name, tp, context):
    with open(os.path.join(ROOT, "tests", "fixtures", "configs", name + ".json")) as handle:
        config = json.load(handle)
    sized = sizing.size_model(method="detailed", config=config, context_length=context)
    inputs = sized["plan_inputs"]
    parts = detailed_sizing.per_gpu_requirement(inputs, tp, 1, context, 1)
    budget = int(H100_TORCH_MIB * 2 ** 20 * 0.9)
    kv_room = budget - (parts["total"] - parts["kv_cache"])
    per_token_gpu = detailed_sizing.kv_bytes(inputs["kv"], 1, tp, 1)
    return {
        "weights_gib": parts["weights"] / float(GIB),
        "kv_gib": kv_room / float(GIB),
        "kv_tokens": int(kv_room // per_token_gpu) if kv_room > 0 else 0,
        "max_context": detailed_sizing.max_context_length(inputs, tp, 1, budget, 1),
        "seed_gpu_gb": sized["seed"]["gpu_memory_gb"],
    }


def _fmt(value, digits=2):
    if value is None:
        return "-"
    return "{:,}".format(value) if isinstance(value, int) else ("%.*f" % (digits, value))


def rows():
    for name, label, tp, context, published, source in CASES:
        ours = estimate(name, tp, context)
        yield label, tp, context, ours, published, source


def main(argv):
    markdown = "--markdown" in argv
    header = ("model", "TP", "context", "weights/GPU GiB ours | vLLM", "KV cache GiB ours | vLLM",
              "KV tokens ours | vLLM", "seed GPU GB", "source")
    if markdown:
        print("| " + " | ".join(h.replace("|", "\\|") for h in header) + " |")
        print("|" + "---|" * len(header))
    for label, tp, context, ours, pub, source in rows():
        cells = (label, str(tp), "{:,}".format(context),
                 "%s \\| %s" % (_fmt(ours["weights_gib"]), _fmt(pub["weights_gib"])),
                 "%s \\| %s" % (_fmt(ours["kv_gib"]), _fmt(pub["kv_gib"])),
                 "%s \\| %s" % (_fmt(ours["kv_tokens"]), _fmt(pub["kv_tokens"])),
                 _fmt(ours["seed_gpu_gb"], 1), "[%s](%s)" % source)
        if markdown:
            print("| " + " | ".join(cells) + " |")
        else:
            print("  ".join(c.replace("\\|", "|") for c in cells[:-1]) + "  " + source[0])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
