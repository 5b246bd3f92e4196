# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``detailed`` sizing method: what a model needs on each GPU when an engine such as vLLM serves it.

Pure functions, standard library only (runs on targets with Python >= 3.8). Inputs are a model's architecture
(plugins/module_utils/architecture.py, from its config.json), optionally the summary of its safetensors headers
(plugins/module_utils/safetensors_header.py), and the serving options. Per GPU::

    weights / (TP x PP)  (+ parts every rank holds: norms, routers, MLA down-projections; K/V projections once TP
                          exceeds the KV heads)
  + KV cache            = KV bytes per token (on this GPU) x context length x concurrent sequences
  + activation peak     (the engine's profiling run: plugins/module_utils/engine_memory.py)
  + non-torch overhead  (CUDA runtime, NCCL buffers, persistent buffers, CUDA graphs where the engine counts them)
  <= the GPU's memory as the engine sees it (less than nvidia-smi's total) x gpu_memory_utilization

This is how vLLM budgets a GPU: it reserves ``gpu_memory_utilization`` of the device, subtracts the weights, the peak
activation memory of a profiling run and the non-torch memory, and gives the rest to the KV cache
(https://docs.vllm.ai/en/latest/configuration/conserving_memory.html; the llm-d capacity planner models it the same
way: https://github.com/llm-d/llm-d-benchmark/blob/main/config_explorer/src/config_explorer/capacity_planner.py).
The activation peak depends on the profiling batch (``max_num_batched_tokens``), whose default depends on the GPU's
memory class and the entry point, so the per-GPU plan recomputes it for the GPU it plans on (engine_memory.py has
the rules of the pinned vLLM, with file references). Measured constants from a calibration file replace the modelled
ones when given (option ``calibration``), with the modelled value kept beside.

Every figure carries a ``source``: ``read: ...`` when it comes from the headers or the config, ``estimated: ...``
when it rests on a constant or an assumption.
"""

import math
from fractions import Fraction

from ansible_collections.llmops.deploy.plugins.module_utils import architecture, engine_memory, sizing
from ansible_collections.llmops.deploy.plugins.module_utils.sizing_errors import SizingInputError

GIB = 2 ** 30

DEFAULT_GPU_MEMORY_UTILIZATION = 0.9  # vLLM's --gpu-memory-utilization default
DEFAULT_CONCURRENCY = 1
# Default context to plan for: the model's max_position_embeddings, capped here. vLLM's own default max_model_len is
# the full max_position_embeddings (131072 for Llama 3.1), which most single GPUs cannot hold next to the weights;
# 8192 is a common serving length. Plan for more by passing context_length (and the same --max-model-len to vLLM).
DEFAULT_CONTEXT_CAP = 8192
KV_CACHE_DTYPES = sizing.KV_CACHE_DTYPE_CHOICES

# Engine options of the detailed method (vLLM's own names); engine_memory.py holds their defaults and rules.
ENGINE_OPTION_KEYS = ("max_num_batched_tokens", "max_num_seqs", "engine_entry_point", "engine_version", "calibration")
# Without a GPU to plan on, the requirement is stated for the GPU memory class it lands in: first for a GPU under
# 70 GiB, then, if the total does not fit one, for the larger class (larger profiling batch).
NOMINAL_SMALL_GPU_MIB = 49140    # 48 GB class (RTX 6000 Ada / A6000): the profiling batch of GPUs under 70 GiB
NOMINAL_LARGE_GPU_MIB = 81559    # H100 80GB: the profiling batch of GPUs of 70 GiB and more

# ---------------------------------------------------------------------------------------------------------------
# Effective bits per quantised weight, scales and zero points included.
# ---------------------------------------------------------------------------------------------------------------
# GPTQ and AWQ (and compressed-tensors int4 'pack-quantized'): b-bit weights, one fp16 scale and one b-bit zero point
# (packed in int32 qzeros) per group of g input channels: b + (16 + b) / g. int4, group 128: 4.156 bits. The
# act-order g_idx (one int32 per input channel) adds 32 / out_features, under 0.01 bit, not counted.
# FP8 (DeepSeek/Qwen 'fp8' with 128x128 blocks, compressed-tensors per-channel or per-tensor): 8 bits and one fp32
# scale per block/channel/tensor: 8 + 32 / 16384 bits at most for blocks; counted as 8 (under 0.03 %).
# bitsandbytes NF4: 4 bits + one absmax per 64 weights: fp32 (32/64 = 0.5 bit) or, with double quantisation, 8-bit
# absmax plus one fp32 per 256 absmax (8/64 + 32/16384 = 0.127 bit) in the files; in GPU memory always 4.5 bits, as
# vLLM dequantizes the double-quantised absmax to fp32 when it loads them (precision.RESIDENT_BITS; the format's
# ``stored_bits`` size the disk). bitsandbytes int8: 8 bits + one fp32 per row.
# MXFP4 (gpt-oss): 4-bit values with one 8-bit shared exponent per 32: 4.25 bits (OpenAI's gpt-oss model card).
# GGUF (llama.cpp, embeddings quantised too): ggml block formats are exact (Q8_0 34 bytes / 32 weights = 8.5 bits,
# Q4_0 18/32 = 4.5, Q4_K 144/256 = 4.5, Q5_K 176/256 = 5.5, Q6_K 210/256 = 6.5625, Q2_K 84/256 = 2.625,
# Q3_K 110/256 = 3.4375); the _S/_M/_L mixes keep some tensors at a higher type, so they are taken from the file
# sizes of the Llama-3-8B-Instruct GGUF files (bits = file bytes x 8 / 8.03e9 parameters): Q2_K 3.17, Q3_K_M 4.0,
# Q4_K_S 4.67, Q4_K_M 4.9, Q5_K_S 5.58, Q5_K_M 5.71, Q6_K 6.58, Q8_0 8.51.
GGUF_BITS = {
    "F32": Fraction(32), "F16": Fraction(16), "BF16": Fraction(16),
    "Q8_0": Fraction("8.51"), "Q6_K": Fraction("6.58"),
    "Q5_0": Fraction("5.5"), "Q5_1": Fraction(6), "Q5_K_S": Fraction("5.58"), "Q5_K_M": Fraction("5.71"),
    "Q4_0": Fraction("4.5"), "Q4_1": Fraction(5), "Q4_K_S": Fraction("4.67"), "Q4_K_M": Fraction("4.9"),
    "Q3_K_S": Fraction("3.5"), "Q3_K_M": Fraction("4.0"), "Q3_K_L": Fraction("4.3"),
    "Q2_K": Fraction("3.17"),
}
FLOAT_BITS = {"fp32": Fraction(32), "fp16": Fraction(16), "bf16": Fraction(16)}
GROUPED_INT_DEFAULT_GROUP = 128


def _group_bits(bits, group):
    if not group:
        return Fraction(bits)
    return Fraction(bits) + Fraction(16 + bits, group)


def resolve_format(facts, precision, model_info=None, explicit_precision=False):
    """How the weights are stored: ``{'name', 'precision', 'bits', 'all_quantized', 'group_size', 'source'}``.

    ``bits`` is the effective bits per parameter of the quantised (linear-layer) weights; the rest (embeddings,
    lm_head, norms, routers) stays at 16 bits, except in GGUF files where everything is quantised.
    """
    quant = facts.get("quantization")
    info = model_info or {}
    result = {"precision": precision, "all_quantized": False, "group_size": None}
    if quant and quant["bits"] is not None and (not explicit_precision or _quant_precision(quant) == precision):
        fmt = quant["format"]
        source = "read: config.json quantization_config (%s)" % quant["method"]
        if fmt in ("awq", "gptq"):
            group = quant["group_size"]
            result.update(name="%s int%d%s" % (fmt.upper(), quant["bits"], " g%d" % group if group else ""),
                          bits=_group_bits(quant["bits"], group), group_size=group)
        elif fmt == "fp8":
            result.update(name="FP8", bits=Fraction(8))
        elif fmt == "int8":
            result.update(name="INT8 (W8A8)", bits=Fraction(8))
        elif fmt == "bnb-4bit":
            extra = Fraction(8, 64) + Fraction(32, 64 * 256) if quant["double_quant"] else Fraction(32, 64)
            result.update(name="bitsandbytes NF4%s" % (" (double quant)" if quant["double_quant"] else ""),
                          bits=sizing.precisions.RESIDENT_BITS["bnb-4bit"], stored_bits=4 + extra)
        elif fmt == "bnb-8bit":
            result.update(name="bitsandbytes int8", bits=Fraction(8))
        else:  # mxfp4
            result.update(name="MXFP4", bits=Fraction("4.25"))
        result["source"] = source
        return result
    name_quant = info.get("quantization")
    if name_quant == "gguf" and info.get("gguf_type") and (not explicit_precision or precision == info.get(
            "precision")):
        gguf = str(info["gguf_type"]).upper()
        bits = GGUF_BITS.get(gguf)
        if bits is None:
            bits = GGUF_BITS.get(gguf.rsplit("_", 1)[0]) or Fraction(8 * sizing.precisions.BYTES_PER_PARAM[precision])
        result.update(name="GGUF %s" % gguf, bits=bits, all_quantized=True,
                      source="estimated: GGUF %s, %s bits per weight (ggml block sizes / file sizes)" % (
                          gguf, _fmt_bits(bits)))
        return result
    if precision in FLOAT_BITS:
        result.update(name=precision.upper(), bits=FLOAT_BITS[precision], source="read: %s" % (
            "config.json torch_dtype" if facts.get("precision") == precision and not explicit_precision else
            "the precision asked for"))
        return result
    if precision == "int4":
        if name_quant == "nf4" or (name_quant or "").startswith("bnb"):
            result.update(name="bitsandbytes NF4", bits=sizing.precisions.RESIDENT_BITS["bnb-4bit"],
                          stored_bits=4 + Fraction(8, 64) + Fraction(32, 64 * 256),
                          source="estimated: bitsandbytes NF4 with double quantisation (from the model name)")
        else:
            group = GROUPED_INT_DEFAULT_GROUP
            result.update(name="INT4 g%d" % group, bits=_group_bits(4, group), group_size=group,
                          source="estimated: 4-bit weights with fp16 scales and zero points per %d (as AWQ/GPTQ)" %
                          group)
        return result
    if precision == "fp8":
        result.update(name="FP8", bits=Fraction(8), source="estimated: FP8 weights with per-channel scales")
        return result
    result.update(name="INT8", bits=Fraction(8), source="estimated: INT8 weights with per-channel scales")
    return result


def _quant_precision(quant):
    if quant["format"] == "fp8":
        return "fp8"
    return "int%d" % quant["bits"] if quant["bits"] in (4, 8) else "int4"


def _fmt_bits(bits):
    return ("%.3f" % float(bits)).rstrip("0").rstrip(".")


def weights_from_config(facts, fmt, params=None):
    """Weight bytes from the config's shapes: ``{'bytes', 'split', 'replicated', 'kv_proj'}`` (exact ints).

    ``params`` (e.g. the safetensors header count) rescales the computed shapes to that total.
    """
    p = facts["params"]
    unq_split = p["embedding"] + p["lm_head"]
    unq_repl = p["unquantized"] - unq_split
    q_bits = fmt["bits"]
    # Unquantised parts: 16-bit, or 32-bit when the whole model runs in fp32.
    u_bits = FLOAT_BITS.get(fmt["precision"], Fraction(16))
    if fmt["all_quantized"]:
        u_bits = q_bits
    if fmt["name"] in ("FP16", "BF16", "FP32"):
        u_bits = q_bits
    scale = Fraction(params, p["total"]) if params else Fraction(1)
    split = (unq_split * u_bits + (p["split"] - unq_split) * q_bits) * scale / 8
    repl = (unq_repl * u_bits + (p["replicated"] - unq_repl) * q_bits) * scale / 8
    kvp = p["kv_proj"] * q_bits * scale / 8
    parts = {"split": int(math.ceil(split)), "replicated": int(math.ceil(repl)), "kv_proj": int(math.ceil(kvp))}
    parts["bytes"] = parts["split"] + parts["replicated"] + parts["kv_proj"]
    return parts


def check_weights_summary(weights):
    """Validate the safetensors summary shape (safetensors_header.summarize_headers / modelscope_info)."""
    if not isinstance(weights, dict):
        raise SizingInputError("weights", weights, "a dict as safetensors_header.summarize_headers returns "
                               "(params_total, params_by_dtype, data_bytes, precision)")
    for key in ("params_total", "data_bytes"):
        value = weights.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise SizingInputError("weights.%s" % key, value, "a positive integer")
    return weights


def weights_requirement(facts, fmt, summary=None):
    """Resident weight bytes: exact from the safetensors headers when they match the precision, else estimated."""
    estimate = weights_from_config(facts, fmt)
    mtp = facts.get("mtp_layers")
    if summary is None:
        src = "estimated: %s parameters computed from config.json x %s (%s)" % (
            "{:,}".format(facts["params"]["total"]), _bits_text(fmt), fmt["name"])
        return dict(estimate, source=src, params=facts["params"]["total"], params_source="computed from config.json")
    summary = check_weights_summary(summary)
    have = summary.get("precision")
    want = fmt["precision"]
    same = have == want or set((have, want)) == set(("fp16", "bf16"))
    note = ""
    if mtp:
        note = " (includes %d multi-token-prediction layer(s) the engine loads only for speculative decoding)" % mtp
    if same:
        exact = summary["data_bytes"]
        src = "read: safetensors headers (%s bytes of %s tensors)%s" % (
            "{:,}".format(exact), ", ".join(sorted(summary.get("params_by_dtype") or {})) or "all", note)
    elif have == "fp32" and want in ("fp16", "bf16"):
        exact = summary["data_bytes"] // 2
        src = "read: safetensors headers (fp32 checkpoint served at 16 bits: half its %s bytes)%s" % (
            "{:,}".format(summary["data_bytes"]), note)
    else:
        scaled = weights_from_config(facts, fmt, summary["params_total"])
        src = "estimated: %s parameters read from the safetensors headers x %s (%s); the checkpoint is %s" % (
            "{:,}".format(summary["params_total"]), _bits_text(fmt), fmt["name"], have or "of mixed dtypes")
        return dict(scaled, source=src, params=summary["params_total"], params_source="read: safetensors headers")
    if fmt.get("stored_bits", fmt["bits"]) != fmt["bits"]:
        # The headers count the stored bytes; the engine holds more of this format (fp32 absmax).
        exact += estimate["bytes"] - weights_from_config(facts, dict(fmt, bits=fmt["stored_bits"]))["bytes"]
        src += "; in GPU memory %s bits per quantised weight (%s)" % (_fmt_bits(fmt["bits"]), fmt["name"])
    ratio = Fraction(exact, estimate["bytes"])
    parts = {"split": int(estimate["split"] * ratio), "replicated": int(estimate["replicated"] * ratio)}
    parts["kv_proj"] = exact - parts["split"] - parts["replicated"]
    parts.update(bytes=exact, source=src, params=summary["params_total"], params_source="read: safetensors headers")
    return parts


def _bits_text(fmt):
    if fmt["all_quantized"] or fmt["name"] in ("FP16", "BF16", "FP32"):
        return "%s bits" % _fmt_bits(fmt["bits"])
    return "%s bits for linear layers, 16 for embeddings/lm_head/norms" % _fmt_bits(fmt["bits"])


def kv_element_bytes(kv_cache_dtype, precision):
    """Bytes per cached K/V element. ``auto`` follows the model's activation dtype (vLLM's default)."""
    if kv_cache_dtype is None:
        kv_cache_dtype = "auto"
    if not isinstance(kv_cache_dtype, str) or kv_cache_dtype.lower() not in KV_CACHE_DTYPES:
        raise SizingInputError("kv_cache_dtype", kv_cache_dtype, "one of %s" % ", ".join(KV_CACHE_DTYPES))
    kind = kv_cache_dtype.lower()
    if kind.startswith("fp8"):
        return 1, kind
    if kind in ("fp16", "bf16"):
        return 2, kind
    return (4, "fp32") if precision == "fp32" else (2, "bf16/fp16 (auto: the model's activation dtype)")


def engine_options(spec):
    """The engine options of one spec, validated (``max_num_batched_tokens``, ``max_num_seqs``, ``entry_point``,
    ``version``, ``calibration``)."""
    opts = {}
    for key in ("max_num_batched_tokens", "max_num_seqs"):
        value = _as_int(spec.get(key))
        what = "tokens" if "tokens" in key else "sequences"
        opts[key] = None if value is None else sizing.check_positive_int(key, value, what)
    opts["entry_point"] = engine_memory.check_entry_point(spec.get("engine_entry_point"))
    version = spec.get("engine_version")
    opts["version"] = engine_memory.PINNED_VERSION if version is None else str(version)
    engine_memory.parse_version(opts["version"])
    calibration = spec.get("calibration")
    if calibration is not None and not isinstance(calibration, dict):
        raise SizingInputError("calibration", calibration, "the constants llmops.deploy.calibration_lookup returns "
                               "(a dict), or nothing")
    opts["calibration"] = calibration or None
    return opts


def engine_parts(inputs, tp, pp, gpu_mib, gpu_name=None, context_length=None, max_num_seqs=None):
    """Activation peak, overhead (non-torch + CUDA graphs inside the budget) and budget on one GPU (engine_memory).

    ``max_num_seqs``: the value the engine is really started with when it differs from the plan's option (the trial's
    expectation passes the ``--max-num-seqs`` it derived); None keeps the plan's.
    """
    eng = inputs["engine"]
    calibration, ignored = eng.get("calibration"), None
    if calibration and (calibration.get("engine_version") != eng["version"] or
                        (calibration.get("memory_total_mib") not in (None, gpu_mib))):
        ignored = "calibration ignored: measured with vLLM %s on a %s MiB GPU; this plan is vLLM %s on %d MiB" % (
            calibration.get("engine_version"), calibration.get("memory_total_mib"), eng["version"], gpu_mib)
        calibration = None
    room = engine_memory.kv_room(
        eng["profile"], 0, gpu_mib, inputs["gpu_memory_utilization"], tp=tp, pp=pp, gpu_name=gpu_name,
        max_model_len=context_length or inputs["context_length"], entry_point=eng["entry_point"],
        version=eng["version"], max_num_batched_tokens=eng["max_num_batched_tokens"],
        max_num_seqs=eng["max_num_seqs"] if max_num_seqs is None else max_num_seqs, calibration=calibration)
    room["calibration_ignored"] = ignored
    overhead = room["non_torch_bytes"] + room["cuda_graph_in_budget_bytes"]
    return {"activations": room["activation_bytes"], "overhead": overhead, "budget": room["requested_bytes"],
            "room": room}


def _nominal_room(profile, opts, util, context, weights_and_kv):
    """The engine parts for the GPU class the requirement lands in (no GPU given)."""
    room = None
    for mib in (NOMINAL_SMALL_GPU_MIB, NOMINAL_LARGE_GPU_MIB):
        room = engine_memory.kv_room(profile, 0, mib, util, max_model_len=context, entry_point=opts["entry_point"],
                                     version=opts["version"], max_num_batched_tokens=opts["max_num_batched_tokens"],
                                     max_num_seqs=opts["max_num_seqs"])
        total = weights_and_kv + room["activation_bytes"] + room["non_torch_bytes"] + room["cuda_graph_in_budget_bytes"]
        if total <= room["requested_bytes"]:
            break
    return room


def check_options(facts, context_length=None, concurrency=None, gpu_memory_utilization=None):
    """Validate and default the serving options; returns (context_length, context_source, concurrency, util)."""
    max_pos = facts.get("max_position_embeddings")
    if context_length is None:
        context = min(max_pos, DEFAULT_CONTEXT_CAP) if max_pos else DEFAULT_CONTEXT_CAP
        ctx_source = "default: max_position_embeddings %s capped at %d" % (max_pos, DEFAULT_CONTEXT_CAP) if (
            max_pos and max_pos > DEFAULT_CONTEXT_CAP) else "default: %s" % (
            "max_position_embeddings" if max_pos else "%d (no max_position_embeddings)" % DEFAULT_CONTEXT_CAP)
    else:
        context = sizing.check_positive_int("context_length", _as_int(context_length), "tokens per sequence")
        if max_pos and context > max_pos:
            raise SizingInputError("context_length", context_length, "at most the model's max_position_embeddings "
                                   "(%d)" % max_pos)
        ctx_source = "asked for"
    conc = DEFAULT_CONCURRENCY if concurrency is None else sizing.check_positive_int(
        "concurrency", _as_int(concurrency), "sequences served at once")
    util = DEFAULT_GPU_MEMORY_UTILIZATION if gpu_memory_utilization is None else gpu_memory_utilization
    if isinstance(util, bool) or not isinstance(util, (int, float)) or not 0 < util <= 1 or not math.isfinite(util):
        raise SizingInputError("gpu_memory_utilization", gpu_memory_utilization,
                               "a fraction above 0 and at most 1 (vLLM's default is 0.9)")
    return context, ctx_source, conc, float(util)


def _as_int(value):
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def resolve_precision(facts, summary, info, explicit):
    """Serving precision: asked for > quantization_config / headers > model name > config torch_dtype."""
    if explicit is not None:
        return sizing.precisions.normalize_precision(explicit), "asked for"
    quant = facts.get("quantization")
    if quant and quant["bits"] is not None:
        return _quant_precision(quant), "read: config.json quantization_config"
    if summary and summary.get("precision"):
        have = summary["precision"]
        if have == "fp32":
            return "bf16", "read: safetensors headers are fp32; served at 16 bits as vLLM's dtype auto does"
        return have, "read: safetensors headers"
    if info and info.get("precision"):
        return info["precision"], "model name"
    if facts.get("precision"):
        if facts["precision"] == "fp32":
            return "bf16", "read: config.json torch_dtype float32; served at 16 bits as vLLM's dtype auto does"
        return facts["precision"], "read: config.json torch_dtype"
    raise SizingInputError("precision", None, "one of %s (neither the config nor the name says)" % ", ".join(
        sizing.precisions.BYTES_PER_PARAM))


def kv_layout(facts, element_bytes):
    """The KV facts planning needs (JSON-friendly)."""
    return {
        "attention": facts["attention"],
        "layers": facts["num_hidden_layers"],
        "num_attention_heads": facts["num_attention_heads"],
        "num_key_value_heads": facts["num_key_value_heads"],
        "head_dim": facts["head_dim"],
        "mla": facts["mla"],
        "full_layers": facts["full_layers"],
        "sliding_layers": facts["sliding_layers"],
        "sliding_window": facts["sliding_window"],
        "element_bytes": element_bytes,
        "max_position_embeddings": facts.get("max_position_embeddings"),
    }


def kv_heads_per_gpu(layout, tp):
    """KV heads one GPU holds: kv_heads / TP, or 1 (replicated) when TP exceeds them; MLA keeps the whole latent."""
    if layout["attention"] == "mla":
        return None
    kv = layout["num_key_value_heads"]
    return kv // tp if tp <= kv else 1


def kv_bytes(layout, context_length, tp=1, pp=1):
    """KV bytes of one sequence on one GPU of a TP x PP group."""
    return architecture.kv_bytes_for_context(layout, layout["element_bytes"], context_length,
                                             kv_heads=kv_heads_per_gpu(layout, tp), layers_share=Fraction(1, pp))


def requirements(spec):
    """The detailed method over one spec dict (see sizing.size_model). Returns the requirements dict."""
    config = spec.get("config")
    if config is None:
        raise SizingInputError("config", None, "the model's config.json (a dict, or config_path) for method "
                               "detailed; method auto falls back to seed without it")
    facts = architecture.parse_config(config)
    summary = spec.get("weights")
    if summary is not None:
        check_weights_summary(summary)
    info = spec.get("model_info")
    warnings = []
    precision, precision_source = resolve_precision(facts, summary, info, spec.get("precision"))
    quant = facts.get("quantization")
    if spec.get("precision") is not None and quant and quant["bits"] is not None and \
            _quant_precision(quant) != precision:
        warnings.append("config.json says the weights are %s (%s) but %s was asked for; sized at %s" % (
            quant["method"], _quant_precision(quant), precision, precision))
    fmt = resolve_format(facts, precision, info, explicit_precision=spec.get("precision") is not None)
    weights = weights_requirement(facts, fmt, summary)
    params = weights["params"]
    claimed = spec.get("params")
    if claimed is not None:
        claimed = sizing.parameter_count.parse_params(claimed)
        if abs(float(claimed) / params - 1) > 0.25:
            warnings.append("params %s differs from the %s parameters %s; the latter is used" % (
                sizing.parameter_count.format_params(claimed), sizing.parameter_count.format_params(params),
                weights["params_source"]))
    context, ctx_source, concurrency, util = check_options(
        facts, spec.get("context_length"), spec.get("concurrency"), spec.get("gpu_memory_utilization"))
    element, kv_dtype = kv_element_bytes(spec.get("kv_cache_dtype"), precision)
    layout = kv_layout(facts, element)
    per_token = architecture.kv_bytes_per_token(facts, element)
    kv_total = kv_bytes(layout, context) * concurrency
    opts = engine_options(spec)
    rules = engine_memory.engine_rules(opts["version"])
    if not rules["modelled"]:
        warnings.append("engine_version %s is vLLM's V0 engine, whose memory rules are not modelled; sized with the "
                        "V1 engine's rules" % opts["version"])
    profile = engine_memory.profile_from_facts(facts, 4 if precision == "fp32" else 2)
    room = _nominal_room(profile, opts, util, context, weights["bytes"] + kv_total)
    act, act_source = room["activation_bytes"], room["activation_source"] + (
        "; for a GPU of the %s class (no GPU given: the per-GPU plan recomputes it for the GPU it plans on)" % (
            "80 GB" if room["torch_total_bytes"] >= engine_memory.LARGE_GPU_BYTES else "48 GB"))
    over = room["non_torch_bytes"] + room["cuda_graph_in_budget_bytes"]
    over_source = room["non_torch_source"] + (
        "; %s" % room["cuda_graph_source"] if room["cuda_graph_in_budget_bytes"] else "")
    used = weights["bytes"] + kv_total + act + over
    # The engine applies gpu_memory_utilization to the memory torch sees, less than nvidia-smi's total.
    gpu_total = int(math.ceil(Fraction(used) / Fraction(str(util)) / (1 - engine_memory.DRIVER_RESERVED_FRACTION)))
    kv_source = "read: config.json (%s, %s); %s tokens x %d sequence(s) at %d byte(s) per element%s" % (
        _kv_formula(facts, element), "{:,} bytes per token".format(per_token), "{:,}".format(context), concurrency,
        element, "; %d of %d layers keep only their %d-token window" % (
            facts["sliding_layers"], facts["num_hidden_layers"], facts["sliding_window"]) if facts[
            "sliding_layers"] else "")
    breakdown = {
        "weights": _part(weights["bytes"], weights["source"]),
        "kv_cache": _part(kv_total, kv_source),
        "activations": _part(act, act_source),
        "overhead": _part(over, over_source),
        "utilization_headroom": _part(gpu_total - used, "estimated: the %d%% of the GPU the engine leaves free "
                                      "(gpu_memory_utilization %s, the CUDA context lives there) and the %s%% of "
                                      "nvidia-smi's total torch does not see" % (
                                          round((1 - util) * 100), util,
                                          float(engine_memory.DRIVER_RESERVED_FRACTION * 100))),
    }
    disk = summary["data_bytes"] if summary else weights["bytes"]
    disk_source = "read: safetensors headers" if summary else weights["source"]
    if not summary and fmt.get("stored_bits", fmt["bits"]) != fmt["bits"]:
        disk = weights_from_config(facts, dict(fmt, bits=fmt["stored_bits"]))["bytes"]
        disk_source = "estimated: %s parameters computed from config.json x %s (%s, as stored)" % (
            "{:,}".format(facts["params"]["total"]), _bits_text(dict(fmt, bits=fmt["stored_bits"])), fmt["name"])
    return {
        "method": "detailed",
        "params": params,
        "precision": precision,
        "precision_source": precision_source,
        "model_info": info,
        "param_memory_bytes": weights["bytes"],
        "gpu_memory_bytes": gpu_total,
        "cpu_memory_bytes": weights["bytes"] * 2,
        "disk_bytes": disk,
        "basis": {
            "param_memory": weights["source"],
            "gpu_memory": "weights + KV cache + activations + overhead on one GPU, divided by "
                          "gpu_memory_utilization %s and by the share of nvidia-smi's total the engine sees "
                          "(see breakdown)" % util,
            "cpu_memory": "weights x 2 (guide 2.1: loading and scheduling), on the %s weights" % (
                "exact" if weights["source"].startswith("read") else "estimated"),
            "disk": disk_source,
        },
        "breakdown": breakdown,
        "weight_format": fmt["name"],
        "weight_format_source": fmt["source"],
        "effective_bits_per_param": round(float(Fraction(weights["bytes"] * 8, params)), 3),
        "kv_cache_per_token_bytes": per_token,
        "kv_cache_dtype": kv_dtype,
        "context_length": context,
        "context_length_source": ctx_source,
        "concurrency": concurrency,
        "gpu_memory_utilization": util,
        "architecture": _architecture_summary(facts),
        "sizing_warnings": warnings,
        "engine_memory": {
            "engine": engine_memory.ENGINE,
            "engine_version": opts["version"],
            "entry_point": opts["entry_point"],
            "max_num_batched_tokens": room["max_num_batched_tokens"],
            "max_num_seqs": room["max_num_seqs"],
            "batch_source": room["batch_source"],
            "rules_source": room["engine_rules"]["source"],
            "calibration": opts["calibration"],
        },
        "plan_inputs": {
            "weights_split": weights["split"],
            "weights_replicated": weights["replicated"],
            "weights_kv_proj": weights["kv_proj"],
            "activation": act,
            "overhead": over,
            "engine": {
                "profile": profile,
                "version": opts["version"],
                "entry_point": opts["entry_point"],
                "max_num_batched_tokens": opts["max_num_batched_tokens"],
                "max_num_seqs": opts["max_num_seqs"],
                "calibration": opts["calibration"],
            },
            "kv": layout,
            "context_length": context,
            "concurrency": concurrency,
            "gpu_memory_utilization": util,
            "group_size": fmt["group_size"],
            "intermediate_sizes": sorted(set(x for x in (
                facts["intermediate_size"] if not facts["moe"] or facts["moe"]["dense_layers"] else None,
                facts["moe"]["expert_intermediate_size"] if facts["moe"] else None) if x)),
        },
    }


def _kv_formula(facts, element):
    if facts["attention"] == "mla":
        m = facts["mla"]
        return "MLA: %d layers x (kv_lora_rank %d + qk_rope_head_dim %d) x %d" % (
            facts["num_hidden_layers"], m["kv_lora_rank"], m["qk_rope_head_dim"], element)
    return "%s: 2 x %d layers x %d KV heads x head_dim %d x %d" % (
        facts["attention"].upper(), facts["num_hidden_layers"], facts["num_key_value_heads"], facts["head_dim"], element)


def _part(num_bytes, source):
    return {"bytes": int(num_bytes), "gb": sizing.gb(num_bytes), "gib": sizing.gib(num_bytes), "source": source}


def _architecture_summary(facts):
    keys = ("model_type", "architecture", "attention", "num_hidden_layers", "hidden_size", "num_attention_heads",
            "num_key_value_heads", "head_dim", "head_dim_source", "vocab_size", "intermediate_size",
            "tie_word_embeddings", "torch_dtype", "max_position_embeddings", "sliding_window", "sliding_layers",
            "sliding_window_rule", "mla", "moe", "quantization", "mtp_layers")
    result = dict((k, facts[k]) for k in keys)
    result["params_total"] = facts["params"]["total"]
    result["params_active"] = facts["params"]["active"]
    result["source"] = "read: config.json"
    return result


# ---------------------------------------------------------------------------------------------------------------
# Planning: which tensor/pipeline-parallel configuration holds the model on a given GPU.
# ---------------------------------------------------------------------------------------------------------------
def tp_sizes(inputs, gpus_per_node):
    """Valid tensor-parallel sizes (powers of two up to ``gpus_per_node``) and the excluded ones with reasons.

    vLLM needs TP to divide the attention heads, the KV heads to divide TP or TP to divide them, and, for
    group-quantised weights (AWQ/GPTQ), every MLP width / TP to be a multiple of the group size.
    """
    layout = inputs["kv"]
    heads, kv = layout["num_attention_heads"], layout["num_key_value_heads"]
    valid, excluded = [], []
    tp = 1
    while tp <= gpus_per_node:
        reason = None
        if heads % tp:
            reason = "%d attention heads do not divide by %d" % (heads, tp)
        elif layout["attention"] != "mla" and tp % kv and kv % tp:
            reason = "%d KV heads and TP %d do not divide each other" % (kv, tp)
        elif inputs.get("group_size"):
            for width in inputs.get("intermediate_sizes") or []:
                if width % tp or (width // tp) % inputs["group_size"]:
                    reason = "MLP width %d / TP %d is not a multiple of the quantisation group %d" % (
                        width, tp, inputs["group_size"])
                    break
        if reason:
            excluded.append({"tensor_parallel_size": tp, "reason": reason})
        else:
            valid.append(tp)
        tp *= 2
    return valid, excluded


def per_gpu_requirement(inputs, tp, pp, context_length=None, concurrency=None, gpu_mib=None, gpu_name=None):
    """Bytes one GPU of a TP x PP group needs, by part.

    With ``gpu_mib`` (nvidia-smi's MiB of the GPU planned on) the activation peak and overhead are the engine's for
    that GPU (its profiling batch, TP, CUDA graphs); without it, the figures of the GPU-less requirement.
    """
    layout = inputs["kv"]
    context = inputs["context_length"] if context_length is None else context_length
    conc = inputs["concurrency"] if concurrency is None else concurrency
    heads = kv_heads_per_gpu(layout, tp)
    kv_share = Fraction(1) if heads is None else Fraction(heads, layout["num_key_value_heads"])
    weights = (Fraction(inputs["weights_split"], tp * pp) + Fraction(inputs["weights_replicated"], pp)
               + inputs["weights_kv_proj"] * kv_share / pp)
    kv = kv_bytes(layout, context, tp, pp) * conc
    if gpu_mib is not None and inputs.get("engine"):
        eng = engine_parts(inputs, tp, pp, gpu_mib, gpu_name)
        act, over = eng["activations"], eng["overhead"]
    else:
        act = inputs["activation"]
        over = inputs.get("overhead", engine_memory.NON_TORCH_BASE_BYTES) + (
            engine_memory.NON_TORCH_PARALLEL_BYTES if tp * pp > 1 else 0)
    parts = {"weights": int(math.ceil(weights)), "kv_cache": int(math.ceil(kv)), "activations": act, "overhead": over}
    parts["total"] = sum(parts.values())
    return parts


def _fits(parts, budget, reserve):
    return sizing.with_reserve(parts["total"], reserve) <= budget if reserve else parts["total"] <= budget


def max_context_length(inputs, tp, pp, budget, concurrency=None, gpu_mib=None, gpu_name=None):
    """Largest context (tokens per sequence) whose KV cache fits next to the rest on one GPU; None if none does."""
    layout = inputs["kv"]
    conc = inputs["concurrency"] if concurrency is None else concurrency
    fixed = per_gpu_requirement(inputs, tp, pp, 1, conc, gpu_mib, gpu_name)
    room = budget - (fixed["total"] - fixed["kv_cache"])
    if room <= 0:
        return 0
    limit = layout["max_position_embeddings"] or 10 ** 7
    if kv_bytes(layout, limit, tp, pp) * conc <= room:
        return limit
    low, high = 0, limit
    while low < high:
        mid = (low + high + 1) // 2
        if kv_bytes(layout, mid, tp, pp) * conc <= room:
            low = mid
        else:
            high = mid - 1
    return low


def max_concurrency(inputs, tp, pp, budget, context_length=None, gpu_mib=None, gpu_name=None):
    """Sequences of ``context_length`` tokens whose KV cache fits on one GPU at once."""
    context = inputs["context_length"] if context_length is None else context_length
    fixed = per_gpu_requirement(inputs, tp, pp, context, 1, gpu_mib, gpu_name)
    room = budget - (fixed["total"] - fixed["kv_cache"])
    if room <= 0 or not fixed["kv_cache"]:
        return 0
    return int(room // fixed["kv_cache"])


def plan(sizing_result, per_gpu_mib, reserve=sizing.DEFAULT_RESERVE, gpus_per_node=sizing.DEFAULT_GPUS_PER_NODE,
         available_gpus=None, gpu_name=None):
    """GPUs of ``per_gpu_mib`` each for a detailed sizing result, checked per GPU.

    Tries every valid TP size inside a node (smallest first), then pipeline stages (doubling) at the largest TP.
    ``gpus`` is the smallest configuration whose per-GPU requirement times (1 + reserve) fits in the GPU's
    memory as the engine sees it x gpu_memory_utilization (activation peak and overhead recomputed for this GPU:
    its profiling batch depends on its memory class and, for 70 GiB and more, on ``gpu_name``: an A100 keeps the
    smaller batch); ``gpus_minimum`` fits without the reserve. ``max_context_length`` and
    ``max_concurrency`` are for the configuration that would be deployed (on ``available_gpus`` when given).
    Keys are those of sizing.gpu_plan plus the per-GPU figures.
    """
    reserve = sizing.check_reserve(reserve)
    sizing.check_positive_int("gpus_per_node", gpus_per_node, "GPUs in one node")
    sizing.check_positive_int("memory_total_mib", per_gpu_mib, "MiB of one GPU, as nvidia-smi reports")
    inputs = sizing_result["plan_inputs"]
    per_gpu = sizing.mib_to_bytes(per_gpu_mib)
    engine = inputs.get("engine") and engine_parts(inputs, 1, 1, per_gpu_mib, gpu_name)
    if engine:
        budget = engine["budget"]
    else:
        budget = int(per_gpu * Fraction(str(inputs["gpu_memory_utilization"])))
    mib = per_gpu_mib if engine else None
    valid, excluded = tp_sizes(inputs, gpus_per_node)
    candidates = [(tp, 1) for tp in valid]
    if valid:
        pp = 2
        while valid[-1] * pp <= sizing.MAX_GPUS and pp <= inputs["kv"]["layers"]:
            candidates.append((valid[-1], pp))
            pp *= 2
    with_reserve = minimum = None
    for tp, pp in candidates:
        parts = per_gpu_requirement(inputs, tp, pp, gpu_mib=mib, gpu_name=gpu_name)
        if minimum is None and _fits(parts, budget, 0):
            minimum = (tp, pp, parts)
        if _fits(parts, budget, reserve):
            with_reserve = (tp, pp, parts)
            break
    result = {
        "method": "detailed",
        "gpus": None if with_reserve is None else with_reserve[0] * with_reserve[1],
        "gpus_minimum": None if minimum is None else minimum[0] * minimum[1],
        "per_gpu_memory_mib": per_gpu_mib,
        "per_gpu_memory_gb": sizing.gb(per_gpu),
        "per_gpu_memory_gib": sizing.gib(per_gpu),
        "per_gpu_budget_gb": sizing.gb(budget),
        "gpu_memory_utilization": inputs["gpu_memory_utilization"],
        "gpus_per_node": gpus_per_node,
        "nodes": None,
        "tensor_parallel_size": None,
        "pipeline_parallel_size": None,
        "per_gpu_requirement_gb": None,
        "per_gpu_breakdown_gb": None,
        "total_gpu_memory_gb": None,
        "valid_tensor_parallel_sizes": valid,
        "excluded_tensor_parallel_sizes": excluded,
        "kv_heads_per_gpu": None,
        "kv_heads_replicated": False,
        "context_length": inputs["context_length"],
        "concurrency": inputs["concurrency"],
        "max_context_length": None,
        "max_concurrency": None,
        "fit_configuration": None,
        "start_refused": None,
        "engine_memory": None if not engine else _engine_summary(engine["room"]),
    }
    if not valid:
        return result
    if engine and not engine["room"]["starts"]:
        # vLLM refuses to start when utilization x total leaves no room for the CUDA context.
        result.update(gpus=None, gpus_minimum=None, start_refused=engine["room"]["start_check"])
        return result
    chosen = with_reserve or minimum
    if available_gpus is not None:
        if with_reserve and with_reserve[0] * with_reserve[1] <= available_gpus:
            chosen = with_reserve
        elif minimum and minimum[0] * minimum[1] <= available_gpus:
            chosen = minimum
    if chosen is None:
        return result
    tp, pp, parts = chosen
    count = tp * pp
    heads = kv_heads_per_gpu(inputs["kv"], tp)
    result.update({
        "nodes": int(math.ceil(float(count) / gpus_per_node)),
        "tensor_parallel_size": tp,
        "pipeline_parallel_size": pp,
        "per_gpu_requirement_gb": sizing.gb(parts["total"]),
        "per_gpu_breakdown_gb": dict((k, sizing.gb(v)) for k, v in parts.items()),
        "total_gpu_memory_gb": sizing.gb(count * per_gpu),
        "kv_heads_per_gpu": heads,
        "kv_heads_replicated": heads is not None and tp > inputs["kv"]["num_key_value_heads"],
        "max_context_length": max_context_length(inputs, tp, pp, budget, gpu_mib=mib, gpu_name=gpu_name),
        "max_concurrency": max_concurrency(inputs, tp, pp, budget, gpu_mib=mib, gpu_name=gpu_name),
        "fit_configuration": "with the reserve" if chosen is with_reserve else "without the reserve",
    })
    if engine:
        result["engine_memory"] = _engine_summary(engine_parts(inputs, tp, pp, per_gpu_mib, gpu_name)["room"])
    if with_reserve is not None and chosen is not with_reserve:
        # Keep 'gpus' the count to deploy; the figures describe the configuration the host can run.
        result["fit_configuration"] = "without the reserve (the host has fewer GPUs than the planned %d)" % (
            result["gpus"])
    return result


def _engine_summary(room):
    """What the plan took from the engine's rules (or a calibration) for the GPU it planned on."""
    summary = {
        "engine": room["engine"],
        "engine_version": room["engine_version"],
        "torch_total_gib": sizing.gib(room["torch_total_bytes"]),
        "torch_total_source": room["torch_total_source"],
        "budget_gib": sizing.gib(room["requested_bytes"]),
        "max_num_batched_tokens": room["max_num_batched_tokens"],
        "max_num_seqs": room["max_num_seqs"],
        "batch_source": room["batch_source"],
        "activation_gib": sizing.gib(room["activation_bytes"]),
        "activation_source": room["activation_source"],
        "non_torch_gib": sizing.gib(room["non_torch_bytes"]),
        "non_torch_source": room["non_torch_source"],
        "cuda_graph_gib": sizing.gib(room["cuda_graph_bytes"]),
        "cuda_graph_in_budget": bool(room["cuda_graph_in_budget_bytes"]),
        "cuda_graph_source": room["cuda_graph_source"],
        "starts": room["starts"],
        "start_check": room["start_check"],
        "modelled_gib": dict((k.replace("_bytes", "_gib"), sizing.gib(v)) for k, v in room["modelled"].items()),
        "calibration": room["calibration"],
        "calibration_ignored": room.get("calibration_ignored"),
    }
    if room["calibration"]:
        summary["calibration_parts"] = calibration_parts(room)
        summary["calibration_note"] = calibration_note(room["calibration"], summary["calibration_parts"])
    return summary


# The engine constants a calibration can replace, in the order the note names them: (key, words).
CALIBRATED_PARTS = (("activation", "activation"), ("non_torch", "non-torch"), ("cuda_graph", "CUDA graphs"),
                    ("torch_total", "device total"))


def calibration_parts(room):
    """Each constant the plan took from a calibration: ``{'part', 'label', 'gib', 'modelled_gib'}`` (GiB), the
    measured figure the plan used and the modelled one it replaced. The activation is the modelled peak of this
    plan scaled by the trial's measured/modelled ratio."""
    parts = []
    for key, label in CALIBRATED_PARTS:
        if key + "_bytes" in (room.get("measured") or {}):
            parts.append({"part": key, "label": label, "gib": sizing.gib(room[key + "_bytes"]),
                          "modelled_gib": sizing.gib(room["modelled"][key + "_bytes"])})
    return parts


def calibration_note(calibration, parts):
    """'measured on a100-node-01, 2026-11-30 (vLLM 0.32.0, nvidia-a100-sxm4-80gb/81920MiB): activation 0.44 GiB
    measured (modelled 0.22), non-torch 0.31 GiB measured (modelled 0.13)': where and when the constants were
    measured, and each one the plan used with the modelled value beside it."""
    where = "measured on %s, %s (vLLM %s, %s)" % (
        calibration.get("host") or "an earlier trial", calibration.get("date") or "date unknown",
        calibration.get("engine_version"), calibration.get("gpu_class"))
    if not parts:
        return where + ": no constant it measured applies to this plan (modelled values kept)"
    return where + ": " + ", ".join("%s %.2f GiB measured (modelled %.2f)" % (p["label"], p["gib"], p["modelled_gib"])
                                    for p in parts)


def describe_plan(plan_result, gpu_name="GPU"):
    """'2 x H100 (75.96 GiB each), tensor parallel 2; up to 65,536 tokens of context, 12 sequences of 8,192'."""
    if plan_result["tensor_parallel_size"] is None:
        if plan_result.get("start_refused"):
            return "vLLM would refuse to start on %s: %s" % (gpu_name, plan_result["start_refused"])
        if not plan_result["valid_tensor_parallel_sizes"]:
            return "no valid tensor-parallel size: %s" % "; ".join(
                e["reason"] for e in plan_result["excluded_tensor_parallel_sizes"])
        return "more than %d x %s: the model does not fit this GPU" % (sizing.MAX_GPUS, gpu_name)
    tp, pp = plan_result["tensor_parallel_size"], plan_result["pipeline_parallel_size"]
    count = tp * pp
    text = "%d x %s (%s GiB each)" % (count, gpu_name, plan_result["per_gpu_memory_gib"])
    if pp > 1:
        text += " %s(tensor parallel %d x pipeline parallel %d)" % (
            "across %d nodes " % plan_result["nodes"] if plan_result["nodes"] > 1 else "", tp, pp)
    elif tp > 1:
        text += ", tensor parallel %d" % tp
    text += "; %s GB per GPU of %s usable" % (plan_result["per_gpu_requirement_gb"], plan_result["per_gpu_budget_gb"])
    text += "; up to {:,} tokens of context at {} sequence(s), {:,} sequence(s) of {:,} tokens".format(
        plan_result["max_context_length"], plan_result["concurrency"], plan_result["max_concurrency"],
        plan_result["context_length"])
    return text
