# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How much of a GPU vLLM keeps for activations, runtime and CUDA graphs, and how much it gives the KV cache.

Pure functions, standard library only (runs on targets with Python >= 3.8). The rules are read in the source of the
pinned engine, vLLM 0.32.0 (CUDA wheel ``vllm-0.32.0-cp38-abi3-manylinux_2_28_x86_64.whl``, commit g5df63a720):

* Budget (``vllm/v1/worker/utils.py`` ``request_memory``; ``vllm/v1/worker/gpu_worker.py``
  ``determine_available_memory``): ``requested = ceil(total x gpu_memory_utilization)`` where ``total`` is what
  ``torch.accelerator.get_memory_info`` reports (``vllm/utils/mem_utils.py`` ``MemorySnapshot``), less than
  ``nvidia-smi``'s total; the CUDA context lives outside ``requested`` (the start-up check wants
  ``free >= requested``). ``KV cache = requested - (weights + non-torch memory) - activation peak
  - CUDA graph estimate``; the graph estimate is inside the budget since vLLM 0.21.0
  (``VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS`` defaults to 1; vLLM's own start-up line says "default since v0.21.0").
* Profiling batch (``vllm/engine/arg_utils.py`` ``EngineArgs.get_batch_defaults`` and
  ``_set_default_max_num_seqs_and_batched_tokens_args``): ``max_num_batched_tokens`` / ``max_num_seqs`` default by
  the device's total memory and the entry point (``vllm serve`` = OPENAI_API_SERVER, ``LLM()`` = LLM_CLASS):
  >= 160 GiB: 16384 / 16384 tokens, 1024 sequences; >= 70 GiB and the name does not contain "a100": 16384 (LLM) /
  8192 (server) tokens, 1024 sequences; otherwise 8192 (LLM) / 2048 (server) tokens, 256 sequences. Then
  ``max_num_batched_tokens = min(max_num_seqs x max_model_len, it)`` and ``max_num_seqs = min(max_num_seqs, it)``.
* Profiling run (``vllm/v1/worker/gpu/model_runner.py`` ``profile_run``, the model runner V2 that 0.32.0 uses for
  dense models): one forward pass of ``max_num_batched_tokens`` tokens spread over ``min(max_num_seqs, tokens)``
  requests (attention skipped), then the sampler on one row of logits per request. The peak is the larger of the
  forward pass (per token: the MLP's gate/up output of 2 x intermediate / TP and its activated half, plus six
  hidden-size buffers: residual, input, attention output, MLP output and an fp32 RMSNorm intermediate counted twice)
  and the sampler (logits in the model dtype plus their fp32 copy, with the hidden states still held).
  The older model runner (before 0.27; ``vllm/v1/worker/gpu_model_runner.py`` ``profile_run`` then
  ``_dummy_sampler_run``, top-k and top-p on every request) profiles the sampler too. Up to 0.16.x its top-k/top-p
  is PyTorch's sort (``vllm/v1/sample/ops/topk_topp_sampler.py`` ``apply_top_k_top_p``: sorted values, int64
  indices, softmax, cumsum, masks, scatter) and it holds about 9.6 vocabulary-sized fp32 buffers per request at its
  peak (fitted on two published H100 logs, checked on three others and on 0.11.2 and 0.15.1 logs: see
  tests/fixtures/vllm_logs/published). From vLLM 0.17.0 ``apply_top_k_top_p`` sends batches of 8 requests or more to
  a Triton kernel (``vllm/v1/sample/ops/topk_topp_triton.py`` ``apply_top_k_top_p_triton``, PR #33538 "Triton-based
  Top-k and Top-p sampler kernels"; absent from the 0.16.0 source, present in 0.17.0 and 0.17.1) that masks the fp32
  logits in place with one cached scratch row per Triton program (``min(compute units, requests)`` rows, rounded up
  to a power of two and capped at the compute units). ``profile_run`` and ``_dummy_sampler_run`` themselves are the
  same in 0.16.0 and 0.17.1; what is left at the sampler's peak per request is the logits in the model dtype (still
  held by ``_dummy_sampler_run``), their fp32 copy (``Sampler.forward``), the softmax probabilities and the
  exponential noise of ``random_sample``: model dtype + 3 x fp32, plus the scratch rows.
* Non-torch and persistent memory: CUDA runtime, cuBLAS workspaces, NCCL buffers with several GPUs, and vLLM's
  custom all-reduce buffers where it enables them (``vllm/distributed/device_communicators/custom_all_reduce.py``,
  read in 0.32.0: off when ``world_size > 2 and not fully_connected`` - "Custom allreduce is disabled because it's
  not supported on more than two PCIe-only GPUs" - and where the P2P test fails). Measured: 0.13 GiB at TP 1 and 0.55 GiB at TP 2 with custom
  all-reduce (llm-d's H100 logs), 0.21 GiB at TP 8 on PCIe-only L40S without it (vLLM 0.10.2). In the V2 runner also
  the sampler's per-request output token counts, ``max_num_seqs x vocab`` int32
  (``vllm/v1/worker/gpu/sample/penalties.py``).
* CUDA graph estimate (``profile_cudagraph_memory``): the first capture of the largest batch (512 tokens) dominates;
  estimated as the forward-pass buffers of 512 tokens. The model runner V2 of 0.27.x reserves none (its 0.27.1
  budget line: KV cache = budget - consumed - peak activation, the captured graphs outside); the reservation came to
  V2 with vLLM PR #53306 (after August 2026) and is in the pinned 0.32.0 (``vllm/v1/worker/gpu/model_runner.py``
  ``profile_cudagraph_memory``, subtracted in ``gpu_worker.py``); versions between are taken as 0.27's.

Every figure comes back with its source. Measured constants from a calibration file
(plugins/plugin_utils/calibration.py) replace the modelled ones when given, with the modelled value kept beside.
"""

import math
import re
from fractions import Fraction

from ansible_collections.llmops.deploy.plugins.module_utils import gpu_catalog, model_spec
from ansible_collections.llmops.deploy.plugins.module_utils.sizing_errors import SizingInputError

GIB = 2 ** 30
MIB = 2 ** 20

ENGINE = "vllm"
PINNED_VERSION = model_spec.ENGINE_PINNED_VERSION
PINNED_SOURCE = "vLLM 0.32.0 source (CUDA wheel, commit g5df63a720)"
ENTRY_POINTS = model_spec.ENGINE_ENTRY_POINTS
DEFAULT_ENTRY_POINT = model_spec.ENGINE_DEFAULT_ENTRY_POINT

# Versions at which a rule changed (vLLM's own messages and release notes).
CUDA_GRAPHS_IN_BUDGET_SINCE = (0, 21, 0)   # "CUDA graph memory profiling is enabled (default since v0.21.0)"
MODEL_RUNNER_V2_SINCE = (0, 27, 0)         # V2 default for dense models (PR #44443); seen in 0.27.1 start-up logs
TRITON_TOP_K_TOP_P_SINCE = (0, 17, 0)      # V1 sampler's top-k/top-p in Triton from 8 requests (PR #33538)
V2_CUDA_GRAPHS_IN_BUDGET_SINCE = (0, 32, 0)  # V2 runner reserves its graphs (PR #53306); 0.27.1 logs show it did not
LARGEST_BATCH_CLASS_SINCE = (0, 32, 0)     # the >= 160 GiB row of get_batch_defaults, read in 0.32.0
V1_ENGINE_SINCE = (0, 8, 0)                # V1 engine default (older logs are another generation)

LARGE_GPU_BYTES = 70 * GIB
LARGEST_GPU_BYTES = 160 * GIB
BATCH_DEFAULTS = {
    # class: ({entry point: max_num_batched_tokens}, {entry point: max_num_seqs})
    "largest": ({"llm_class": 16384, "openai_api_server": 16384}, {"llm_class": 1024, "openai_api_server": 1024}),
    "large": ({"llm_class": 16384, "openai_api_server": 8192}, {"llm_class": 1024, "openai_api_server": 1024}),
    "other": ({"llm_class": 8192, "openai_api_server": 2048}, {"llm_class": 256, "openai_api_server": 256}),
}

# Forward pass of the profiling run, per token: 3 x MLP width / TP (gate/up output and its activated half) plus this
# many hidden-size buffers (residual, input, attention output, MLP output, fp32 RMSNorm intermediate = 2).
FORWARD_HIDDEN_BUFFERS = 6
# Model runner V1 (vLLM < 0.27): vocabulary-sized fp32 buffers per request alive at the sampler's warm-up peak.
# Fitted on llm-d's Llama-3.1-8B and Qwen3-0.6B H100 logs (9.60 and 9.57); checked on Qwen3-32B, Llama-3.3-70B-FP8
# TP 2 and gpt-oss-20b (within 1 %).
V1_SAMPLER_FP32_BUFFERS = Fraction("9.6")
# Model runner V1 from 0.17.0 (Triton top-k/top-p): fp32 vocabulary-sized buffers per request at the sampler's peak
# besides the logits in the model dtype: their fp32 copy, the softmax probabilities, the exponential noise.
V1_TRITON_SAMPLER_FP32_BUFFERS = 3
TRITON_TOP_K_TOP_P_MIN_REQUESTS = 8        # smaller batches keep PyTorch's sort (apply_top_k_top_p)
# Non-torch memory: CUDA runtime and cuBLAS workspaces on one GPU (llm-d's H100 logs: 0.13 GiB at TP 1); NCCL with
# several GPUs (0.21 GiB at TP 8 on L40S, vLLM 0.10.2, custom all-reduce off); custom all-reduce buffers where vLLM
# enables them (0.55 GiB at TP 2 on H100 with it: the rest).
NON_TORCH_BASE_BYTES = int(Fraction("0.13") * GIB)
NON_TORCH_NCCL_BYTES = int(Fraction("0.08") * GIB)
NON_TORCH_CUSTOM_ALL_REDUCE_BYTES = int(Fraction("0.34") * GIB)
NON_TORCH_PARALLEL_BYTES = NON_TORCH_NCCL_BYTES + NON_TORCH_CUSTOM_ALL_REDUCE_BYTES  # the most several GPUs add
# GPUs whose nodes NVLink/NVSwitch fully connects (SXM/HGX/OAM parts): custom all-reduce on any TP size. Other GPUs
# (PCIe cards; NVLink bridges join pairs only) get it on two GPUs at most. nvidia-smi names the H100 SXM
# "H100 80GB HBM3". A name that says PCIe ("NVIDIA A100 80GB PCIe", "NVIDIA H800 PCIe") is a PCIe card whatever
# else it contains.
FULLY_CONNECTED_NAME_PARTS = ("sxm", "hbm3", "h200", "h20", "h800", "b200", "b300", "gb200", "gh200", "mi300", "mi250",
                              "mi325", "mi355")
# CUDA context created before vLLM measures free memory: outside the requested budget, it must fit in the rest.
CUDA_CONTEXT_BYTES = int(Fraction("0.5") * GIB)
CUDA_GRAPH_CAPTURE_TOKENS = 512

# What torch reports as the device total (bytes) for GPUs whose figure is published, by nvidia-smi MiB total.
# H100 80GB HBM3: 79.18 GiB (llm-d's logs); RTX 4090: 23.99 GiB (vLLM 0.27.1 log); RTX 3090: 23.58 GiB (vLLM issue
# #10517); L40S: 44.42 GiB (vLLM 0.10.2 log, "Free memory on device (43.93/44.42 GiB)"); H200: 139.81 GiB (vLLM
# logs, "Free memory on device (139.21/139.81 GiB)"). Other GPUs: nvidia-smi's total less DRIVER_RESERVED_FRACTION
# (the published ones keep 0 to 1.8 %).
TORCH_TOTAL_BY_SMI_MIB = {
    81559: int(Fraction("79.18") * GIB),
    24564: int(Fraction("23.99") * GIB),
    24576: int(Fraction("23.58") * GIB),
    46068: int(Fraction("44.42") * GIB),
    143771: int(Fraction("139.81") * GIB),
}
DRIVER_RESERVED_FRACTION = Fraction(1, 100)
# The V100s, whatever their form factor and driver: torch's "total capacity" in published out-of-memory messages is
# 15.78 GiB for the 16 GB cards (Shift-GCN issue #34) and 31.74 GiB for the 32 GB ones (ChatGLM-Finetuning issue #73).
# Driver 470 prints 16160 / 32510 MiB (the catalog's figures), driver 535 the whole 16384 / 32768 MiB; the 1 % rule
# would put a 16 GB card on 535 at 16220 MiB, 60 MiB more than a process can have. Keyed by the catalog's memory of
# the GPU the name designates; used when nvidia-smi printed either figure for it.
TORCH_TOTAL_BY_CATALOG_MIB = {
    16160: (16384, int(Fraction("15.78") * GIB)),
    32510: (32768, int(Fraction("31.74") * GIB)),
}


def parse_version(version):
    """'0.32.0' / 'v0.10.1.1' / '0.27.1rc1' -> (0, 32, 0)."""
    match = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", str(version or "").strip())
    if not match:
        raise SizingInputError("engine_version", version, "a vLLM version such as %s" % PINNED_VERSION)
    return tuple(int(x or 0) for x in match.groups())


def engine_rules(version=None):
    """The memory rules of one vLLM version (the pinned one by default)."""
    text = PINNED_VERSION if version is None else str(version)
    ver = parse_version(text)
    return {
        "engine": ENGINE,
        "version": text,
        "generation": "V1 engine" if ver >= V1_ENGINE_SINCE else "V0 engine (not modelled)",
        "modelled": ver >= V1_ENGINE_SINCE,
        "cuda_graphs_in_budget": ver >= CUDA_GRAPHS_IN_BUDGET_SINCE and (
            ver < MODEL_RUNNER_V2_SINCE or ver >= V2_CUDA_GRAPHS_IN_BUDGET_SINCE),
        "model_runner": "v2" if ver >= MODEL_RUNNER_V2_SINCE else "v1",
        "triton_top_k_top_p": ver >= TRITON_TOP_K_TOP_P_SINCE,
        "largest_batch_class": ver >= LARGEST_BATCH_CLASS_SINCE,
        "source": PINNED_SOURCE if text == PINNED_VERSION else (
            "vLLM %s: the pinned %s rules with the changes of 0.17.0 (Triton top-k/top-p in the V1 sampler), 0.21.0 "
            "(graphs in budget) and 0.27.0 (model runner V2, its graphs outside the budget before %s) applied by "
            "version" % (text, PINNED_VERSION, ".".join(str(x) for x in V2_CUDA_GRAPHS_IN_BUDGET_SINCE))),
    }


def check_entry_point(entry_point):
    value = DEFAULT_ENTRY_POINT if entry_point is None else entry_point
    if value not in ENTRY_POINTS:
        raise SizingInputError("engine_entry_point", entry_point, "one of %s (vllm serve / LLM())" %
                               ", ".join(ENTRY_POINTS))
    return value


def torch_total_bytes(memory_total_mib, gpu_name=None):
    """What the engine sees as the device's total memory, from nvidia-smi's MiB (and the GPU's name, where the MiB
    alone does not tell): ``(bytes, source)``."""
    mib = int(memory_total_mib)
    if mib in TORCH_TOTAL_BY_SMI_MIB:
        value = TORCH_TOTAL_BY_SMI_MIB[mib]
        return value, "read: published vLLM logs report %.2f GiB for a %d MiB GPU" % (value / float(GIB), mib)
    catalog_mib = gpu_catalog.memory_total_mib(gpu_name)   # None for a GPU the catalog does not know
    if catalog_mib in TORCH_TOTAL_BY_CATALOG_MIB:
        whole, value = TORCH_TOTAL_BY_CATALOG_MIB[catalog_mib]
        if mib in (catalog_mib, whole):
            return value, "read: published torch out-of-memory messages report %.2f GiB for a %s (%d MiB)" % (
                value / float(GIB), gpu_catalog.canonical_name(gpu_name), mib)
    value = int(mib * MIB * (1 - DRIVER_RESERVED_FRACTION))
    return value, "estimated: nvidia-smi's %d MiB less %s %% the driver keeps (torch reports less than nvidia-smi)" % (
        mib, float(DRIVER_RESERVED_FRACTION * 100))


def batch_defaults(total_bytes, gpu_name=None, entry_point=None, rules=None, max_model_len=None,
                   max_num_batched_tokens=None, max_num_seqs=None):
    """``(max_num_batched_tokens, max_num_seqs, source)`` as the engine sets them for this device.

    Explicit values win. Without ``gpu_name`` a GPU of 70 GiB or more is taken as not an A100 (the larger profiling
    batch: the safer assumption for the KV room).
    """
    rules = rules or engine_rules()
    entry = check_entry_point(entry_point)
    name = (gpu_name or "").lower()
    if rules["largest_batch_class"] and total_bytes >= LARGEST_GPU_BYTES:
        cls, why = "largest", ">= 160 GiB"
    elif total_bytes >= LARGE_GPU_BYTES and "a100" not in name:
        cls, why = "large", ">= 70 GiB, not an A100%s" % ("" if gpu_name else " (GPU name unknown)")
    else:
        cls, why = "other", "under 70 GiB" if total_bytes < LARGE_GPU_BYTES else "an A100"
    tokens, seqs = BATCH_DEFAULTS[cls][0][entry], BATCH_DEFAULTS[cls][1][entry]
    if max_num_seqs is not None:
        seqs = _positive("max_num_seqs", max_num_seqs)
    if max_num_batched_tokens is not None:
        tokens = _positive("max_num_batched_tokens", max_num_batched_tokens)
        src = "asked for"
    else:
        if max_model_len:
            tokens = min(seqs * int(max_model_len), tokens)
        src = "default: vLLM %s %s for a GPU %s (vllm/engine/arg_utils.py get_batch_defaults)" % (
            rules["version"], entry, why)
    if max_num_seqs is None:
        seqs = min(seqs, tokens)
    return tokens, seqs, src


def _positive(field, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        if isinstance(value, str) and value.strip().isdigit() and int(value) > 0:
            return int(value)
        raise SizingInputError(field, value, "a positive integer")
    return value


def profile_from_facts(facts, activation_bytes_per_element=2):
    """The architecture facts the profiling run depends on (JSON-friendly)."""
    moe = facts.get("moe")
    profile = {
        "hidden_size": facts["hidden_size"],
        "mlp_width": facts.get("intermediate_size") or 4 * facts["hidden_size"],
        "experts_per_token": 0,
        "expert_width": 0,
        "vocab_size": facts["vocab_size"],
        "num_hidden_layers": facts["num_hidden_layers"],
        "element_bytes": activation_bytes_per_element,
    }
    if moe:
        # Routed experts: each token visits experts_per_token experts (fused-MoE caches per routed copy); the shared
        # expert, when there is one, is a dense MLP of its own width.
        profile.update(experts_per_token=moe["experts_per_token"], expert_width=moe["expert_intermediate_size"],
                       mlp_width=moe.get("shared_intermediate_size") or 0)
        if moe.get("dense_layers") and facts.get("intermediate_size"):
            profile["mlp_width"] = max(profile["mlp_width"], facts["intermediate_size"])
    return profile


def forward_bytes(profile, tokens, tp=1):
    """Buffers of one forward pass over ``tokens`` tokens on one GPU of a TP group.

    Dense MLP: 3 x width / TP per token (gate/up output, activated half). Routed experts: per routed copy of a token,
    3 x expert width / TP plus one hidden-size output (the fused-MoE caches).
    """
    per_token = Fraction(3 * profile["mlp_width"], tp) + FORWARD_HIDDEN_BUFFERS * profile["hidden_size"]
    if profile.get("experts_per_token"):
        per_token += profile["experts_per_token"] * (Fraction(3 * profile["expert_width"], tp) + profile["hidden_size"])
    return int(math.ceil(tokens * profile["element_bytes"] * per_token))


def triton_top_k_top_p_rows(requests, gpu_name=None):
    """Rows of the Triton top-k/top-p scratch buffer: one per program, ``min(compute units, requests)`` programs,
    rounded up to a power of two and capped at the compute units (``apply_top_k_top_p_triton``)."""
    units = gpu_catalog.compute_units(gpu_name)
    programs = max(min(units, requests), 1)
    return min(1 << (programs - 1).bit_length(), units)


def sampler_bytes(profile, tokens, requests, rules, gpu_name=None):
    """The sampler's peak during profiling: vocabulary-sized logits per request, hidden states still held."""
    vocab = profile["vocab_size"]
    held = tokens * profile["hidden_size"] * profile["element_bytes"]
    if rules["model_runner"] == "v1":
        if rules.get("triton_top_k_top_p") and requests >= TRITON_TOP_K_TOP_P_MIN_REQUESTS:
            per_request = profile["element_bytes"] + V1_TRITON_SAMPLER_FP32_BUFFERS * 4
            return requests * vocab * per_request + triton_top_k_top_p_rows(requests, gpu_name) * vocab * 4 + held
        return int(math.ceil(V1_SAMPLER_FP32_BUFFERS * requests * vocab * 4)) + held
    return requests * vocab * (profile["element_bytes"] + 4) + held


def activation_peak(profile, tp, tokens, requests, rules, gpu_name=None):
    """Peak activation memory of the profiling run: ``(bytes, parts)``."""
    fwd = forward_bytes(profile, tokens, tp)
    smp = sampler_bytes(profile, tokens, requests, rules, gpu_name)
    return max(fwd, smp), {"forward": fwd, "sampler": smp}


def custom_all_reduce(gpus, gpu_name=None):
    """Whether vLLM allocates its custom all-reduce buffers on a TP group of ``gpus`` GPUs named ``gpu_name``.

    vLLM disables it on more than two GPUs that NVLink does not fully connect. An unknown name counts as connected
    (the buffers are then planned: the safer assumption for the KV room).
    """
    if gpus < 2:
        return False
    if gpus == 2 or not gpu_name:
        return True
    return fully_connected(gpu_name)


def fully_connected(gpu_name):
    """Whether NVLink/NVSwitch fully connects GPUs named ``gpu_name`` (``FULLY_CONNECTED_NAME_PARTS``), decided on the
    name as given (nvidia-smi's or the inventory's), never on another card's: a PCIe card never is."""
    name = gpu_name.lower()
    if "pcie" in re.sub(r"[\s_\-]", "", name):
        return False
    return any(part in name for part in FULLY_CONNECTED_NAME_PARTS)


def non_torch_bytes(profile, gpus, requests, rules, gpu_name=None):
    """Memory the engine consumes besides weights before the KV cache: runtime, communication, persistent buffers."""
    value = NON_TORCH_BASE_BYTES
    if gpus > 1:
        value += NON_TORCH_NCCL_BYTES + (NON_TORCH_CUSTOM_ALL_REDUCE_BYTES if custom_all_reduce(gpus, gpu_name) else 0)
    if rules["model_runner"] == "v2":
        vocab = profile["vocab_size"]
        value += requests * vocab * 4 + requests * ((vocab + 31) // 32) * 4
    return value


def cuda_graph_bytes(profile, tp):
    """CUDA graph memory: the first capture of the largest batch; counted against the budget only when the engine
    does (>= 0.21.0)."""
    return forward_bytes(profile, CUDA_GRAPH_CAPTURE_TOKENS, tp)


def kv_room(profile, weights_bytes, memory_total_mib, gpu_memory_utilization, tp=1, pp=1, gpu_name=None,
            max_model_len=None, entry_point=None, version=None, max_num_batched_tokens=None, max_num_seqs=None,
            calibration=None):
    """The engine's budget on one GPU of a TP x PP group, part by part (bytes), each with its source.

    ``calibration`` (plugins/plugin_utils/calibration.py lookup result, ``constants``) replaces modelled parts with
    measured ones: ``torch_total_bytes``, ``non_torch_bytes``, ``cuda_graph_bytes`` as measured, and
    ``activation_ratio`` (measured / modelled peak activation) scaling the modelled activation. Constants measured
    with another number of GPUs (their ``tensor_parallel_size``) are carried over to this plan's by the model: the
    non-torch memory by the modelled difference (NCCL and all-reduce buffers come with several GPUs), the CUDA graph
    memory by the modelled ratio (each GPU captures its share of the model).
    """
    rules = engine_rules(version)
    util = Fraction(str(gpu_memory_utilization))
    total, total_src = torch_total_bytes(memory_total_mib, gpu_name)
    tokens, requests, batch_src = batch_defaults(total, gpu_name, entry_point, rules, max_model_len,
                                                 max_num_batched_tokens, max_num_seqs)
    act, act_parts = activation_peak(profile, tp, tokens, requests, rules, gpu_name)
    act_src = "estimated: vLLM %s profiling run of %d tokens / %d requests (%s); forward %.2f GiB, sampler %.2f GiB" % (
        rules["version"], tokens, requests, batch_src, act_parts["forward"] / float(GIB),
        act_parts["sampler"] / float(GIB))
    nontorch = non_torch_bytes(profile, tp * pp, requests, rules, gpu_name)
    if tp * pp == 1:
        comm = "(one GPU)"
    elif custom_all_reduce(tp * pp, gpu_name):
        comm = "and NCCL and custom all-reduce buffers (%d GPUs)" % (tp * pp)
    else:
        comm = ("and NCCL buffers (%d GPUs; no custom all-reduce: vLLM disables it on more than two GPUs NVLink does "
                "not fully connect)" % (tp * pp))
    nontorch_src = "estimated: CUDA runtime %s%s" % (
        comm,
        "; V2 sampler's per-request token counts" if rules["model_runner"] == "v2" else "")
    graphs = cuda_graph_bytes(profile, tp)
    graphs_src = "estimated: first CUDA graph capture of %d tokens; %s" % (
        CUDA_GRAPH_CAPTURE_TOKENS, "inside the budget (vLLM >= 0.21.0%s)" % (
            "; model runner V2 >= %s" % ".".join(str(x) for x in V2_CUDA_GRAPHS_IN_BUDGET_SINCE)
            if rules["model_runner"] == "v2" else "") if rules["cuda_graphs_in_budget"] else
        "outside the budget in vLLM %s (in the 1 - gpu_memory_utilization headroom)" % rules["version"])
    modelled = {"torch_total_bytes": total, "activation_bytes": act, "non_torch_bytes": nontorch,
                "cuda_graph_bytes": graphs}
    measured = {}
    if calibration:
        measured = _apply_calibration(calibration, modelled)
        measured_gpus = calibration.get("tensor_parallel_size")
        other_gpus = (isinstance(measured_gpus, int) and not isinstance(measured_gpus, bool) and measured_gpus >= 1
                      and measured_gpus != tp * pp)
        if other_gpus and "non_torch_bytes" in measured:
            at_trial = non_torch_bytes(profile, measured_gpus, requests, rules, gpu_name)
            measured["non_torch_bytes"] = max(measured["non_torch_bytes"] + nontorch - at_trial, 0)
        if other_gpus and "cuda_graph_bytes" in measured:
            at_trial = cuda_graph_bytes(profile, measured_gpus)
            measured["cuda_graph_bytes"] = int(measured["cuda_graph_bytes"] * Fraction(graphs, at_trial)) \
                if at_trial > 0 else graphs
        carried = "; measured on %d GPU(s), carried over to %d by the model" % (measured_gpus, tp * pp) \
            if other_gpus else ""
        if "torch_total_bytes" in measured:
            total, total_src = measured["torch_total_bytes"], _measured_src(calibration, "device total")
        if "activation_bytes" in measured:
            act, act_src = measured["activation_bytes"], _measured_src(
                calibration, "activation peak (measured/modelled %.3f x the modelled %.2f GiB)" % (
                    calibration["activation_ratio"], modelled["activation_bytes"] / float(GIB)))
        if "non_torch_bytes" in measured:
            nontorch, nontorch_src = measured["non_torch_bytes"], _measured_src(calibration, "non-torch memory") + carried
        if "cuda_graph_bytes" in measured:
            graphs, graphs_src = measured["cuda_graph_bytes"], _measured_src(calibration, "CUDA graph memory") + carried
    requested = int(math.ceil(total * util))
    in_budget = graphs if rules["cuda_graphs_in_budget"] else 0
    kv = requested - weights_bytes - act - nontorch - in_budget
    return {
        "engine": ENGINE,
        "engine_version": rules["version"],
        "engine_rules": rules,
        "torch_total_bytes": total,
        "torch_total_source": total_src,
        "requested_bytes": requested,
        "gpu_memory_utilization": float(util),
        "max_num_batched_tokens": tokens,
        "max_num_seqs": requests,
        "batch_source": batch_src,
        "weights_bytes": weights_bytes,
        "activation_bytes": act,
        "activation_source": act_src,
        "non_torch_bytes": nontorch,
        "non_torch_source": nontorch_src,
        "cuda_graph_bytes": graphs,
        "cuda_graph_in_budget_bytes": in_budget,
        "cuda_graph_source": graphs_src,
        "kv_cache_bytes": kv,
        "starts": requested + CUDA_CONTEXT_BYTES <= total,
        "start_check": "gpu_memory_utilization %s leaves %.2f GiB for the CUDA context (about %.1f GiB needed)" % (
            float(util), (total - requested) / float(GIB), CUDA_CONTEXT_BYTES / float(GIB)),
        "modelled": modelled,
        "measured": measured,
        "calibration": None if not calibration else dict(
            (k, calibration.get(k)) for k in ("host", "date", "engine_version", "gpu_class", "model",
                                              "tensor_parallel_size")),
    }


def _apply_calibration(calibration, modelled):
    out = {}
    for key in ("torch_total_bytes", "non_torch_bytes", "cuda_graph_bytes"):
        value = calibration.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            out[key] = value
    ratio = calibration.get("activation_ratio")
    if isinstance(ratio, (int, float)) and not isinstance(ratio, bool) and ratio > 0:
        out["activation_bytes"] = int(modelled["activation_bytes"] * Fraction(str(ratio)))
    return out


def _measured_src(calibration, what):
    return "measured: %s on %s, %s (vLLM %s, %s)" % (
        what, calibration.get("host") or "an earlier trial", calibration.get("date") or "date unknown",
        calibration.get("engine_version"), calibration.get("gpu_class"))


def kv_tokens(kv_bytes, bytes_per_token, block_size=16):
    """Tokens the engine reports for a KV pool: whole blocks of ``block_size`` tokens."""
    if kv_bytes <= 0 or bytes_per_token <= 0:
        return 0
    blocks = int(kv_bytes // (bytes_per_token * block_size))
    return blocks * block_size


# ----------------------------------------------------------------------------------------------------------------------
# The engine's own account of its budget (the start-up line since vLLM 0.10.1), for calibration.
# ----------------------------------------------------------------------------------------------------------------------
_GIB_NUM = r"(-?[0-9]+(?:\.[0-9]+)?)\s*GiB"
_FREE_RE = re.compile(r"Free memory on device \(\s*" + r"(-?[0-9]+(?:\.[0-9]+)?)\s*/\s*" + _GIB_NUM + r"\)")
_DESIRED_RE = re.compile(r"Desired GPU memory utilization is \(\s*([0-9.]+)\s*,\s*" + _GIB_NUM + r"\)")
_CONSUMED_RE = re.compile(_GIB_NUM + r" for consumed memory \(weights \+ non-torch\)")
_WEIGHT_RE = re.compile(_GIB_NUM + r" for weights?\b")
_PEAK_RE = re.compile(_GIB_NUM + r" for peak activation")
_NON_TORCH_RE = re.compile(_GIB_NUM + r" for non-torch memory")
_GRAPH_RE = re.compile(_GIB_NUM + r" for CUDAGraph memory")
_GRAPH_ESTIMATE_RE = re.compile(r"Estimated CUDA graph memory:\s*" + _GIB_NUM + r" total")


def _gib(text):
    return int(round(float(text) * GIB))


def parse_memory_breakdown(text):
    """The engine's own budget line(s) in a start-up log -> bytes, or {} when the log has none.

    Reads ``Free memory on device (F/T GiB) on startup. Desired GPU memory utilization is (U, R GiB). Actual usage
    is ...`` in both wordings (0.10-0.11: ``W GiB for weight, P GiB for peak activation, N GiB for non-torch memory,
    and G GiB for CUDAGraph memory``; later: ``C GiB for consumed memory (weights + non-torch), P GiB for peak
    activation, and G GiB for CUDAGraph memory``) and ``Estimated CUDA graph memory: X GiB total``. Keys:
    ``torch_total_bytes``, ``requested_bytes``, ``gpu_memory_utilization``, ``weights_bytes`` (old wording),
    ``consumed_bytes`` (new wording: weights + non-torch), ``non_torch_bytes`` (old wording), ``activation_bytes``,
    ``cuda_graph_bytes`` (the captured pool, else the estimate). The first such line wins (every rank prints one).
    """
    out = {}
    for line in str(text or "").splitlines():
        if "Free memory on device" in line and "Actual usage" in line and "torch_total_bytes" not in out:
            free = _FREE_RE.search(line)
            if free:
                out["torch_total_bytes"] = _gib(free.group(2))
            desired = _DESIRED_RE.search(line)
            if desired:
                out["gpu_memory_utilization"] = float(desired.group(1))
                out["requested_bytes"] = _gib(desired.group(2))
            for key, rx in (("consumed_bytes", _CONSUMED_RE), ("weights_bytes", _WEIGHT_RE),
                            ("activation_bytes", _PEAK_RE), ("non_torch_bytes", _NON_TORCH_RE),
                            ("cuda_graph_bytes", _GRAPH_RE)):
                match = rx.search(line)
                if match:
                    out[key] = max(_gib(match.group(1)), 0)
        estimate = _GRAPH_ESTIMATE_RE.search(line)
        if estimate and "cuda_graph_estimate_bytes" not in out:
            out["cuda_graph_estimate_bytes"] = _gib(estimate.group(1))
    if "cuda_graph_bytes" not in out and "cuda_graph_estimate_bytes" in out:
        out["cuda_graph_bytes"] = out["cuda_graph_estimate_bytes"]
    return out
