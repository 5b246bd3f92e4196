# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A model's ``config.json`` -> the architecture facts that decide its memory: layers, heads, KV heads, head size,
attention kind (MHA/GQA/MQA/MLA), sliding-window layers, mixture of experts, quantisation, and a parameter count
computed from the shapes.

Pure functions, standard library only (runs on targets with Python >= 3.8). The one I/O function,
``read_local_model``, reads ``config.json`` and the safetensors headers of a local model directory.

Key names follow Hugging Face ``transformers`` configurations (the format ModelScope repositories ship):

* dense decoders: ``num_hidden_layers``, ``hidden_size``, ``num_attention_heads``, ``num_key_value_heads`` (absent =
  as many as attention heads), ``head_dim`` (absent = hidden_size / num_attention_heads), ``intermediate_size``,
  ``vocab_size``, ``tie_word_embeddings``, ``torch_dtype``, ``max_position_embeddings``;
* DeepSeek V2/V3 multi-head latent attention: ``kv_lora_rank``, ``q_lora_rank``, ``qk_rope_head_dim``,
  ``qk_nope_head_dim``, ``v_head_dim``;
* sliding windows: Mistral ``sliding_window`` (every layer), Qwen2 ``use_sliding_window`` with ``max_window_layers``
  (layers from that index on slide), Gemma 2 (every other layer, even ones slide), Gemma 3 ``sliding_window_pattern``
  (every n-th layer is global), or an explicit ``layer_types`` list;
* mixture of experts: ``num_local_experts`` (Mixtral), ``n_routed_experts`` + ``n_shared_experts`` +
  ``first_k_dense_replace`` (DeepSeek), ``num_experts`` + ``shared_expert_intermediate_size`` (Qwen MoE),
  ``moe_intermediate_size``, ``num_experts_per_tok``;
* ``quantization_config`` (awq, gptq, fp8, bitsandbytes, compressed-tensors, mxfp4);
* vision-language models nest the language model in ``text_config`` (read from there).
"""

import json
import os

from ansible_collections.llmops.deploy.plugins.module_utils.sizing_errors import SizingInputError

ATTENTION_KINDS = ("mha", "gqa", "mqa", "mla")

# Decoder families whose MLP has two matrices (up, down) instead of the gated three (gate, up, down).
NON_GATED_MLP = ("gpt2", "gpt_neox", "gptj", "gpt_bigcode", "falcon", "phi", "opt", "bloom", "starcoder2", "mpt")
# Families with four RMSNorms per layer (pre/post attention, pre/post feed-forward).
FOUR_NORM_LAYERS = ("gemma2", "gemma3", "gemma3_text")
# Families with per-head RMSNorm on queries and keys (q_norm, k_norm of head_dim each).
QK_NORM = ("qwen3", "qwen3_moe", "gemma3", "gemma3_text", "olmo2")
# Families with biases on the q/k/v projections even though their config has no ``attention_bias`` key.
QKV_BIAS = ("qwen2", "qwen2_moe", "qwen2_vl", "qwen2_5_vl")
# Families whose embeddings are tied unless the config says otherwise (transformers' class defaults).
TIED_BY_DEFAULT = ("gemma", "gemma2", "gemma3", "gemma3_text")

# torch_dtype spellings -> canonical precision (plugins/module_utils/precision.py names).
TORCH_DTYPES = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float32": "fp32", "float": "fp32"}

# quant_method -> canonical format name used by detailed_sizing.
QUANT_METHODS = ("awq", "gptq", "fp8", "bitsandbytes", "compressed-tensors", "mxfp4", "gguf")


def _field(key):
    return "config.%s" % key


def _get_int(cfg, key, required=True, minimum=1, default=None):
    value = cfg.get(key, default)
    if value is None:
        if required:
            raise SizingInputError(_field(key), None, "an integer >= %d (the config.json has no %s)" % (minimum, key))
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise SizingInputError(_field(key), value, "an integer >= %d" % minimum)
    if value < minimum:
        raise SizingInputError(_field(key), value, "an integer >= %d" % minimum)
    return value


def text_config(config):
    """The language-model part of a config: ``text_config`` for vision-language models, else the config itself."""
    if not isinstance(config, dict):
        raise SizingInputError("config", config, "a dict: the content of the model's config.json")
    nested = config.get("text_config")
    if isinstance(nested, dict) and nested:
        merged = dict(nested)
        # Top-level facts a nested text_config often leaves out.
        for key in ("torch_dtype", "quantization_config", "tie_word_embeddings"):
            if key not in merged and key in config:
                merged[key] = config[key]
        if "architectures" not in merged and config.get("architectures"):
            merged["architectures"] = config["architectures"]
        return merged, True
    return config, False


def _layer_types(cfg, layers, model_type):
    """Per layer 'full' or 'sliding', and the window; (types, window, how)."""
    window = cfg.get("sliding_window")
    if window is not None:
        window = _get_int(cfg, "sliding_window", required=False)
    explicit = cfg.get("layer_types")
    if isinstance(explicit, list) and explicit:
        if len(explicit) != layers:
            raise SizingInputError(_field("layer_types"), explicit, "a list of %d entries, one per layer" % layers)
        types = []
        for entry in explicit:
            if entry in ("sliding_attention", "sliding", "local"):
                types.append("sliding")
            elif entry in ("full_attention", "full", "global", "chunked_attention"):
                types.append("full")
            else:
                raise SizingInputError(_field("layer_types"), entry, "'full_attention' or 'sliding_attention'")
        if "sliding" in types and not window:
            raise SizingInputError(_field("sliding_window"), window, "a window size for the sliding layers")
        return types, (window if "sliding" in types else None), "config layer_types"
    if not window:
        return ["full"] * layers, None, "no sliding window"
    if model_type in ("qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "qwen2_vl", "qwen2_5_vl"):
        if not cfg.get("use_sliding_window"):
            return ["full"] * layers, None, "use_sliding_window is false"
        first = cfg.get("max_window_layers")
        first = layers if first is None else _get_int(cfg, "max_window_layers", minimum=0)
        # transformers' Qwen2: layers with index >= max_window_layers use the sliding window.
        return ["sliding" if i >= first else "full" for i in range(layers)], window, (
            "use_sliding_window with max_window_layers %d" % first)
    if model_type == "gemma2":
        # transformers' Gemma2: even layers (0, 2, ...) slide, odd ones attend globally.
        return ["sliding" if i % 2 == 0 else "full" for i in range(layers)], window, "Gemma 2 alternating layers"
    if model_type in ("gemma3", "gemma3_text"):
        pattern = _get_int(cfg, "sliding_window_pattern", required=False, default=6)
        return ["full" if (i + 1) % pattern == 0 else "sliding" for i in range(layers)], window, (
            "Gemma 3 pattern: every %d-th layer global" % pattern)
    if window >= (cfg.get("max_position_embeddings") or 0) > 0:
        # A window as long as the context (Mistral v0.2+ configs, Qwen2 'sliding_window': 131072) changes nothing.
        return ["full"] * layers, None, "window not shorter than the context"
    return ["sliding"] * layers, window, "sliding_window on every layer"


def _quantization(cfg):
    """quantization_config -> {'method', 'bits', 'group_size', 'format', ...} or None."""
    qcfg = cfg.get("quantization_config")
    if qcfg is None:
        return None
    if not isinstance(qcfg, dict):
        raise SizingInputError(_field("quantization_config"), qcfg, "a dict with quant_method")
    method = str(qcfg.get("quant_method") or "").lower().replace("_", "-")
    if not method and (qcfg.get("load_in_4bit") or qcfg.get("load_in_8bit")):
        method = "bitsandbytes"
    result = {"method": method or None, "bits": None, "group_size": None, "format": None, "double_quant": None,
              "ignore": list(qcfg.get("ignore") or qcfg.get("modules_to_not_convert") or [])}
    if method in ("awq", "gptq"):
        bits = qcfg.get("bits", qcfg.get("w_bit", 4))
        group = qcfg.get("group_size", qcfg.get("q_group_size", 128))
        if isinstance(bits, bool) or bits not in (2, 3, 4, 8):
            raise SizingInputError(_field("quantization_config.bits"), bits, "2, 3, 4 or 8")
        if isinstance(group, bool) or not isinstance(group, int) or (group <= 0 and group != -1):
            raise SizingInputError(_field("quantization_config.group_size"), group, "a positive integer or -1")
        result.update(bits=bits, group_size=None if group == -1 else group, format=method)
    elif method == "fp8":
        result.update(bits=8, format="fp8", group_size=None)
        block = qcfg.get("weight_block_size")
        if isinstance(block, list) and len(block) == 2:
            result["block"] = list(block)
    elif method == "bitsandbytes":
        if qcfg.get("load_in_4bit") or str(qcfg.get("bnb_4bit_quant_type", "")).lower() in ("nf4", "fp4"):
            result.update(bits=4, format="bnb-4bit", double_quant=bool(qcfg.get("bnb_4bit_use_double_quant")))
        else:
            result.update(bits=8, format="bnb-8bit")
    elif method == "compressed-tensors":
        weights = None
        groups = qcfg.get("config_groups") or {}
        for group_cfg in (groups.values() if isinstance(groups, dict) else []):
            if isinstance(group_cfg, dict) and isinstance(group_cfg.get("weights"), dict):
                weights = group_cfg["weights"]
                break
        if weights is None:
            raise SizingInputError(_field("quantization_config.config_groups"), groups,
                                   "config groups with a 'weights' entry (num_bits, type)")
        bits = weights.get("num_bits")
        if isinstance(bits, bool) or bits not in (4, 8):
            raise SizingInputError(_field("quantization_config.config_groups.weights.num_bits"), bits, "4 or 8")
        kind = str(weights.get("type") or "int").lower()
        group = weights.get("group_size")
        result.update(bits=bits, group_size=group if isinstance(group, int) and group > 0 else None,
                      format="fp8" if (bits == 8 and kind == "float") else ("int8" if bits == 8 else "gptq"))
    elif method == "mxfp4":
        result.update(bits=4, format="mxfp4")
    else:
        raise SizingInputError(_field("quantization_config.quant_method"), qcfg.get("quant_method"),
                               "one of %s" % ", ".join(QUANT_METHODS))
    return result


def _moe(cfg, model_type, layers, intermediate):
    experts = cfg.get("num_local_experts") or cfg.get("n_routed_experts") or cfg.get("num_experts")
    if not experts:
        return None
    key = [k for k in ("num_local_experts", "n_routed_experts", "num_experts") if cfg.get(k)][0]
    experts = _get_int(cfg, key)
    per_token = _get_int(cfg, "num_experts_per_tok", required=False, default=2)
    expert_size = cfg.get("moe_intermediate_size")
    expert_size = _get_int(cfg, "moe_intermediate_size") if expert_size is not None else intermediate
    shared_size = 0
    shared = cfg.get("n_shared_experts")
    if shared:
        shared_size = _get_int(cfg, "n_shared_experts") * expert_size
    elif cfg.get("shared_expert_intermediate_size"):
        shared_size = _get_int(cfg, "shared_expert_intermediate_size")
    dense = _get_int(cfg, "first_k_dense_replace", required=False, minimum=0, default=0) or 0
    only_mlp = cfg.get("mlp_only_layers") or []
    dense_layers = min(layers, dense + len([i for i in only_mlp if isinstance(i, int) and i >= dense]))
    return {
        "experts": experts,
        "experts_per_token": per_token,
        "expert_intermediate_size": expert_size,
        "shared_intermediate_size": shared_size,
        "shared_expert_gate": bool(cfg.get("shared_expert_intermediate_size")),
        "router_bias": model_type == "deepseek_v3",
        "dense_layers": dense_layers,
        "moe_layers": layers - dense_layers,
    }


def parse_config(config):
    """Validate a config.json dict and return the architecture facts (a JSON-friendly dict).

    Raises SizingInputError with ``field='config.<key>'`` for a missing or impossible value.
    """
    cfg, nested = text_config(config)
    model_type = str(cfg.get("model_type") or config.get("model_type") or "").lower()
    archs = cfg.get("architectures") or config.get("architectures") or []
    layers = _get_int(cfg, "num_hidden_layers")
    hidden = _get_int(cfg, "hidden_size")
    heads = _get_int(cfg, "num_attention_heads")
    kv_heads = _get_int(cfg, "num_key_value_heads", required=False, default=heads)
    if kv_heads > heads or heads % kv_heads:
        raise SizingInputError(_field("num_key_value_heads"), kv_heads,
                               "a divisor of num_attention_heads (%d)" % heads)
    vocab = _get_int(cfg, "vocab_size")
    intermediate = _get_int(cfg, "intermediate_size", required=False)
    if cfg.get("head_dim") is not None:
        head_dim = _get_int(cfg, "head_dim")
        head_dim_source = "read: config.json head_dim"
    else:
        if hidden % heads:
            raise SizingInputError(_field("head_dim"), None, "an explicit head_dim: hidden_size %d is not a multiple "
                                   "of num_attention_heads %d" % (hidden, heads))
        head_dim = hidden // heads
        head_dim_source = "hidden_size / num_attention_heads"
    mla = None
    if cfg.get("kv_lora_rank") is not None:
        mla = {
            "kv_lora_rank": _get_int(cfg, "kv_lora_rank"),
            "q_lora_rank": _get_int(cfg, "q_lora_rank", required=False),
            "qk_rope_head_dim": _get_int(cfg, "qk_rope_head_dim"),
            "qk_nope_head_dim": _get_int(cfg, "qk_nope_head_dim"),
            "v_head_dim": _get_int(cfg, "v_head_dim"),
        }
        attention = "mla"
    elif kv_heads == heads:
        attention = "mha" if heads > 1 else "mqa"
    elif kv_heads == 1:
        attention = "mqa"
    else:
        attention = "gqa"
    types, window, window_how = _layer_types(cfg, layers, model_type)
    moe = _moe(cfg, model_type, layers, intermediate)
    if intermediate is None and (moe is None or moe["dense_layers"]):
        raise SizingInputError(_field("intermediate_size"), None, "an integer >= 1 (the MLP width)")
    tied = cfg.get("tie_word_embeddings")
    if tied is None:
        tied = model_type in TIED_BY_DEFAULT
    torch_dtype = cfg.get("torch_dtype") or cfg.get("dtype")
    max_pos = _get_int(cfg, "max_position_embeddings", required=False)
    facts = {
        "model_type": model_type or None,
        "architecture": archs[0] if isinstance(archs, list) and archs else None,
        "nested_text_config": nested,
        "num_hidden_layers": layers,
        "hidden_size": hidden,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": head_dim,
        "head_dim_source": head_dim_source,
        "intermediate_size": intermediate,
        "vocab_size": vocab,
        "tie_word_embeddings": bool(tied),
        "torch_dtype": str(torch_dtype) if torch_dtype else None,
        "precision": TORCH_DTYPES.get(str(torch_dtype).lower()) if torch_dtype else None,
        "max_position_embeddings": max_pos,
        "attention": attention,
        "mla": mla,
        "sliding_window": window,
        "sliding_layers": types.count("sliding"),
        "full_layers": types.count("full"),
        "sliding_window_rule": window_how,
        "moe": moe,
        "quantization": _quantization(cfg),
        "mtp_layers": int(cfg.get("num_nextn_predict_layers") or 0),
        "qkv_bias": bool(cfg.get("attention_bias", model_type in QKV_BIAS)),
        "gated_mlp": model_type not in NON_GATED_MLP,
    }
    facts["params"] = parameter_breakdown(facts, model_type)
    return facts


def parameter_breakdown(facts, model_type=None):
    """Parameters by part, computed from the shapes (embeddings, attention, MLP/experts, norms, lm_head).

    Also sorted by how tensor parallelism treats them: ``split`` (sharded over the TP ranks), ``replicated`` (every
    rank holds them: norms, MoE routers, MLA's down-projections) and ``kv_proj`` (the K/V projections, replicated
    once TP exceeds the KV heads). Multi-token-prediction layers (DeepSeek's ``num_nextn_predict_layers``) are not
    counted: engines load them only for speculative decoding.
    """
    model_type = model_type if model_type is not None else (facts.get("model_type") or "")
    hidden = facts["hidden_size"]
    layers = facts["num_hidden_layers"]
    heads = facts["num_attention_heads"]
    kv = facts["num_key_value_heads"]
    hd = facts["head_dim"]
    embedding = facts["vocab_size"] * hidden
    lm_head = 0 if facts["tie_word_embeddings"] else embedding
    mla = facts["mla"]
    if mla:
        qk = mla["qk_nope_head_dim"] + mla["qk_rope_head_dim"]
        if mla["q_lora_rank"]:
            q_down = hidden * mla["q_lora_rank"] + mla["q_lora_rank"]
            q_up = mla["q_lora_rank"] * heads * qk
        else:
            q_down, q_up = 0, hidden * heads * qk
        kv_down = hidden * (mla["kv_lora_rank"] + mla["qk_rope_head_dim"]) + mla["kv_lora_rank"]
        kv_up = mla["kv_lora_rank"] * heads * (mla["qk_nope_head_dim"] + mla["v_head_dim"])
        out = heads * mla["v_head_dim"] * hidden
        attn_split, attn_repl, attn_kv = q_up + kv_up + out, q_down + kv_down, 0
    else:
        q = hidden * heads * hd + (heads * hd if facts["qkv_bias"] else 0)
        kvp = 2 * (hidden * kv * hd + (kv * hd if facts["qkv_bias"] else 0))
        out = heads * hd * hidden
        attn_split, attn_repl, attn_kv = q + out, (2 * hd if model_type in QK_NORM else 0), kvp
    mats = 3 if facts["gated_mlp"] else 2
    moe = facts["moe"]
    dense_layers = layers if moe is None else moe["dense_layers"]
    mlp_dense = mats * hidden * (facts["intermediate_size"] or 0)
    experts = shared = router = 0
    if moe:
        per_expert = mats * hidden * moe["expert_intermediate_size"]
        experts = moe["experts"] * per_expert
        shared = mats * hidden * moe["shared_intermediate_size"]
        router = hidden * moe["experts"] + (moe["experts"] if moe["router_bias"] else 0) + (
            hidden if moe["shared_expert_gate"] else 0)
    norms_per_layer = (4 if model_type in FOUR_NORM_LAYERS else 2) * hidden
    moe_layers = 0 if moe is None else moe["moe_layers"]
    # Norms inside attention (Qwen3/Gemma3 q/k norms, MLA's q/kv lora norms) stay unquantised.
    lora_norms = attn_repl if not mla else mla["kv_lora_rank"] + (mla["q_lora_rank"] or 0)
    attention = layers * (attn_split + attn_repl + attn_kv)
    mlp = dense_layers * mlp_dense + moe_layers * shared
    expert_params = moe_layers * experts
    norms = layers * norms_per_layer + hidden
    routers = moe_layers * router
    total = embedding + lm_head + attention + mlp + expert_params + norms + routers
    active = total
    if moe:
        per_expert = mats * hidden * moe["expert_intermediate_size"]
        active = total - moe_layers * (moe["experts"] - moe["experts_per_token"]) * per_expert
    return {
        "total": total,
        "active": active,
        "embedding": embedding,
        "lm_head": lm_head,
        "attention": attention,
        "mlp": mlp,
        "experts": expert_params,
        "norms": norms,
        "routers": routers,
        # How tensor parallelism treats them (sums to total).
        "split": embedding + lm_head + layers * attn_split + mlp + expert_params,
        "replicated": layers * attn_repl + norms + routers,
        "kv_proj": layers * attn_kv,
        # Not quantised by weight-only/FP8 formats: embeddings, lm_head, norms, routers.
        "unquantized": embedding + lm_head + norms + routers + layers * lora_norms,
        "source": "computed from config.json shapes",
    }


def kv_bytes_per_token_per_layer(facts, element_bytes, kv_heads=None):
    """KV cache bytes one token takes in one attention layer.

    Standard attention: K and V, ``2 x kv_heads x head_dim x bytes``. MLA: one compressed latent plus the decoupled
    RoPE key, ``(kv_lora_rank + qk_rope_head_dim) x bytes`` (not per head, not split by tensor parallelism).
    """
    if facts["attention"] == "mla":
        return (facts["mla"]["kv_lora_rank"] + facts["mla"]["qk_rope_head_dim"]) * element_bytes
    heads = facts["num_key_value_heads"] if kv_heads is None else kv_heads
    return 2 * heads * facts["head_dim"] * element_bytes


def kv_bytes_per_token(facts, element_bytes):
    """KV cache bytes per token over every layer (sliding layers included, as for a context within the window)."""
    return facts["num_hidden_layers"] * kv_bytes_per_token_per_layer(facts, element_bytes)


def kv_bytes_for_context(facts, element_bytes, context_length, kv_heads=None, layers_share=1):
    """KV bytes one sequence of ``context_length`` tokens holds: sliding layers keep at most their window.

    ``kv_heads`` is the KV heads one GPU holds (tensor parallelism), ``layers_share`` the fraction of layers one
    pipeline stage holds (a Fraction or 1).
    """
    per_layer = kv_bytes_per_token_per_layer(facts, element_bytes, kv_heads)
    full = facts["full_layers"] * per_layer * context_length
    sliding = 0
    if facts["sliding_layers"]:
        sliding = facts["sliding_layers"] * per_layer * min(context_length, facts["sliding_window"])
    return (full + sliding) * layers_share


def read_config_file(path):
    """Read a config.json (or the config.json in a model directory). Raises SizingInputError(field='config_path')."""
    target = os.path.join(path, "config.json") if os.path.isdir(path) else path
    try:
        with open(target, "rb") as handle:
            raw = handle.read(16 * 1024 * 1024)
    except (IOError, OSError) as exc:
        raise SizingInputError("config_path", path, "a readable config.json or a model directory holding one",
                               str(exc))
    try:
        config = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise SizingInputError("config_path", path, "a JSON config.json", str(exc))
    if not isinstance(config, dict):
        raise SizingInputError("config_path", path, "a config.json holding a JSON object")
    return config


def read_local_model(path):
    """``(config, weights_summary_or_None)`` of a local model: config.json plus, when ``path`` is a directory with
    ``*.safetensors`` files, the summary of their headers (plugins/module_utils/safetensors_header.py)."""
    config = read_config_file(path)
    if not os.path.isdir(path):
        return config, None
    from ansible_collections.llmops.deploy.plugins.module_utils import safetensors_header
    names = sorted(n for n in os.listdir(path) if n.endswith(".safetensors"))
    if not names:
        return config, None
    headers = []
    for name in names:
        try:
            headers.append(safetensors_header.read_header(os.path.join(path, name)))
        except (safetensors_header.HeaderError, IOError, OSError) as exc:
            raise SizingInputError("config_path", path, "a model directory with readable safetensors files",
                                   "%s: %s" % (name, exc))
    _cfg, _nested = text_config(config)
    return config, safetensors_header.summarize_headers(headers, _cfg.get("quantization_config"))
