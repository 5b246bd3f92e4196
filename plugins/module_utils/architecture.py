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
* vision-language models nest the language model in ``text_config`` (read from there, with the defaults transformers'
  text-config class applies to keys the published file leaves out: Gemma 3's ``text_config`` has no ``vocab_size``),
  and their vision tower (``vision_config``) is counted in the parameters.

``reference_config`` gives the published shapes of common model lines (Qwen2.5, Qwen3, Llama 3.x) by name and size, so
that a model known only by its ModelScope id can still be sized from its real shapes (quantised formats, KV cache).
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


# Defaults of transformers' text-config classes for the keys published multimodal configs leave out of their
# ``text_config`` (transformers 4.5x: Gemma3TextConfig in models/gemma3/configuration_gemma3.py, MllamaTextConfig in
# models/mllama/configuration_mllama.py). Keyed by the nested model_type; the top-level model_type is the fallback.
TEXT_CONFIG_DEFAULTS = {
    "gemma3_text": {"vocab_size": 262208, "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
                    "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
                    "max_position_embeddings": 131072, "sliding_window": 4096, "tie_word_embeddings": True},
    "mllama_text_model": {"vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336,
                          "num_hidden_layers": 40, "num_attention_heads": 32, "num_key_value_heads": 8,
                          "max_position_embeddings": 131072, "tie_word_embeddings": False},
}
_TEXT_MODEL_TYPES = {"gemma3": "gemma3_text", "mllama": "mllama_text_model"}


def text_config(config):
    """The language-model part of a config: ``text_config`` for vision-language models, else the config itself.

    Keys the nested ``text_config`` leaves out take the defaults transformers applies for that text model
    (TEXT_CONFIG_DEFAULTS); ``_defaults_applied`` lists them.
    """
    if not isinstance(config, dict):
        raise SizingInputError("config", config, "a dict: the content of the model's config.json")
    nested = config.get("text_config")
    if isinstance(nested, dict) and nested:
        kind = str(nested.get("model_type") or _TEXT_MODEL_TYPES.get(str(config.get("model_type") or "")) or "")
        defaults = TEXT_CONFIG_DEFAULTS.get(kind, {})
        merged = dict(defaults)
        merged.update(nested)
        if kind and "model_type" not in nested:
            merged["model_type"] = kind
        applied = sorted(k for k in defaults if k not in nested)
        if applied:
            merged["_defaults_applied"] = applied
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


def quantization_facts(cfg):
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
        "quantization": quantization_facts(cfg),
        "mtp_layers": int(cfg.get("num_nextn_predict_layers") or 0),
        "qkv_bias": bool(cfg.get("attention_bias", model_type in QKV_BIAS)),
        "gated_mlp": model_type not in NON_GATED_MLP,
    }
    facts["text_config_defaults"] = list(cfg.get("_defaults_applied") or [])
    facts["vision"] = vision_tower(config, hidden)
    facts["params"] = parameter_breakdown(facts, model_type)
    return facts


def _vint(cfg, key, default=None):
    value = cfg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SizingInputError("config.vision_config.%s" % key, value, "an integer >= 0")
    return value


def vision_tower(config, text_hidden):
    """Parameters of a multimodal model's vision tower and projector, from ``vision_config``; None without one.

    Formulas follow the transformers modules: SigLIP (Gemma 3: ViT blocks with biases, patch and position embeddings,
    plus Gemma 3's projection to the text width), Qwen2-VL / Qwen2.5-VL (``depth`` blocks with a gated MLP in 2.5,
    3D patch embedding, patch merger), Mllama (local + global ViT layers, tile and position embeddings, projector).
    Other vision configs are counted as plain ViT blocks (4 h^2 + 2 h x intermediate per layer) and say so.
    """
    vcfg = config.get("vision_config") if isinstance(config, dict) else None
    if not isinstance(vcfg, dict) or not vcfg:
        return None
    top = str(config.get("model_type") or "").lower()
    kind = str(vcfg.get("model_type") or "").lower()
    hidden = _vint(vcfg, "hidden_size", vcfg.get("embed_dim", 0))
    inter = _vint(vcfg, "intermediate_size", 4 * hidden)
    if top in ("qwen2_5_vl", "qwen2_vl") or kind in ("qwen2_5_vl", "qwen2_vl"):
        depth = _vint(vcfg, "depth", 32)
        if top == "qwen2_vl" or kind == "qwen2_vl":
            embed = _vint(vcfg, "embed_dim", 1280)
            hidden, inter = embed, int(embed * vcfg.get("mlp_ratio", 4))
            mlp = 2 * hidden * inter + inter + hidden
            norms = 4 * hidden  # LayerNorm weight + bias, twice
        else:
            mlp = 3 * hidden * inter + 2 * inter + hidden
            norms = 2 * hidden  # RMSNorm, twice
        block = 3 * hidden * hidden + 3 * hidden + hidden * hidden + hidden + mlp + norms
        patch = _vint(vcfg, "in_chans", vcfg.get("in_channels", 3)) * _vint(vcfg, "temporal_patch_size", 2) * \
            _vint(vcfg, "patch_size", 14) ** 2 * hidden
        merged = hidden * _vint(vcfg, "spatial_merge_size", 2) ** 2
        out = _vint(vcfg, "out_hidden_size", text_hidden)
        merger = hidden + merged * merged + merged + merged * out + out
        total = depth * block + patch + merger
        how = "Qwen2-VL vision tower: %d blocks of width %d, patch merger to %d" % (depth, hidden, out)
    elif top == "mllama" or kind == "mllama_vision_model":
        local = _vint(vcfg, "num_hidden_layers", 32)
        glob = _vint(vcfg, "num_global_layers", 8)
        layer = 4 * hidden * hidden + 2 * hidden * inter + inter + hidden + 4 * hidden
        patches = (_vint(vcfg, "image_size", 560) // _vint(vcfg, "patch_size", 14)) ** 2 + 1
        tiles = _vint(vcfg, "max_num_tiles", 4)
        ratios = len(vcfg.get("supported_aspect_ratios") or [None] * 8) + 1
        embeds = (_vint(vcfg, "num_channels", 3) * _vint(vcfg, "patch_size", 14) ** 2 * hidden + hidden + patches *
                  hidden + 1 + ratios * tiles * patches * hidden + 2 * (ratios * tiles * hidden + 1) + 4 * hidden)
        out = _vint(vcfg, "vision_output_dim", 7680)
        total = (local + glob) * layer + 2 * glob + embeds + out * text_hidden + text_hidden
        how = "Mllama vision tower: %d local + %d global layers of width %d, tile embeddings, projector" % (
            local, glob, hidden)
    else:
        layers = _vint(vcfg, "num_hidden_layers", vcfg.get("depth", 0))
        block = 4 * hidden * hidden + 4 * hidden + 2 * hidden * inter + inter + hidden + 4 * hidden
        size = _vint(vcfg, "image_size", 224)
        patch = _vint(vcfg, "patch_size", 14)
        embeds = _vint(vcfg, "num_channels", 3) * patch ** 2 * hidden + hidden + (size // patch) ** 2 * hidden + \
            2 * hidden
        total = layers * block + embeds
        if top == "gemma3":
            # Gemma 3's multi_modal_projector: an RMSNorm of the vision width and a projection to the text width.
            total += hidden + hidden * text_hidden
            how = "SigLIP vision tower: %d layers of width %d, projector to %d" % (layers, hidden, text_hidden)
        elif kind == "siglip_vision_model":
            how = "SigLIP vision tower: %d layers of width %d (no projector counted)" % (layers, hidden)
        else:
            how = "estimated: a ViT of %d layers of width %d (vision_config model_type %r not modelled exactly)" % (
                layers, hidden, kind or None)
    return {"params": int(total), "model_type": kind or None, "source": how}


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
    vision = (facts.get("vision") or {}).get("params") or 0
    total = embedding + lm_head + attention + mlp + expert_params + norms + routers + vision
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
        "vision": vision,
        # How tensor parallelism treats them (sums to total). The vision tower is counted whole on every rank.
        "split": embedding + lm_head + layers * attn_split + mlp + expert_params,
        "replicated": layers * attn_repl + norms + routers + vision,
        "kv_proj": layers * attn_kv,
        # Not quantised by weight-only/FP8 formats: embeddings, lm_head, norms, routers, the vision tower.
        "unquantized": embedding + lm_head + norms + routers + layers * lora_norms + vision,
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


# ---------------------------------------------------------------------------------------------------------------
# Published shapes of common model lines, for models known only by name. Values are the config.json of the
# published checkpoints (Hugging Face / ModelScope: Qwen/Qwen2-*-Instruct, Qwen/Qwen2.5-*-Instruct, Qwen/Qwen3-*,
# meta-llama/Llama-3.x-*, google/gemma-3-*-it);
# quantised and distilled repositories of a line keep its shapes (DeepSeek-R1-Distill-Qwen-32B is Qwen2.5-32B,
# -Distill-Llama-70B is Llama-3.3-70B). Columns: hidden, intermediate, layers, heads, KV heads, vocab, tied
# embeddings, head_dim (None = hidden / heads), max_position_embeddings.
# ---------------------------------------------------------------------------------------------------------------
_QWEN25 = {
    "0.5B": (896, 4864, 24, 14, 2, 151936, True, None, 32768),
    "1.5B": (1536, 8960, 28, 12, 2, 151936, True, None, 32768),
    "3B": (2048, 11008, 36, 16, 2, 151936, True, None, 32768),
    "7B": (3584, 18944, 28, 28, 4, 152064, False, None, 32768),
    "14B": (5120, 13824, 48, 40, 8, 152064, False, None, 32768),
    "32B": (5120, 27648, 64, 40, 8, 152064, False, None, 32768),
    "72B": (8192, 29568, 80, 64, 8, 152064, False, None, 32768),
}
# Qwen2 (June 2024): the config.json of Qwen/Qwen2-{0.5B,1.5B,7B,72B}-Instruct (huggingface.co/Qwen/Qwen2-7B-Instruct
# config: hidden 3584, intermediate 18944, 28 layers, 28 heads, 4 KV heads, vocab 152064, untied, 32768 positions).
# The instruct repositories say 32768 positions (the base ones 131072, with a sliding_window they do not use); the
# shapes, and so the weights, are Qwen2.5's at the sizes Qwen2 was published in.
_QWEN2 = dict((size, _QWEN25[size]) for size in ("0.5B", "1.5B", "7B", "72B"))
_QWEN3 = {
    "0.6B": (1024, 3072, 28, 16, 8, 151936, True, 128, 40960),
    "1.7B": (2048, 6144, 28, 16, 8, 151936, True, 128, 40960),
    "4B": (2560, 9728, 36, 32, 8, 151936, True, 128, 40960),
    "8B": (4096, 12288, 36, 32, 8, 151936, False, 128, 40960),
    "14B": (5120, 17408, 40, 40, 8, 151936, False, 128, 40960),
    "32B": (5120, 25600, 64, 64, 8, 151936, False, 128, 40960),
}
_LLAMA3 = {
    "1B": (2048, 8192, 16, 32, 8, 128256, True, 64, 131072),
    "3B": (3072, 8192, 28, 24, 8, 128256, True, 128, 131072),
    "8B": (4096, 14336, 32, 32, 8, 128256, False, None, 131072),
    "70B": (8192, 28672, 80, 64, 8, 128256, False, None, 131072),
}
REFERENCE_LINES = (
    # (family, versions, model_type, architecture, torch_dtype, shapes)
    ("Qwen", ("2",), "qwen2", "Qwen2ForCausalLM", "bfloat16", _QWEN2),
    ("Qwen", ("2.5",), "qwen2", "Qwen2ForCausalLM", "bfloat16", _QWEN25),
    ("Qwen", ("3",), "qwen3", "Qwen3ForCausalLM", "bfloat16", _QWEN3),
    ("Llama", ("3", "3.1", "3.2", "3.3"), "llama", "LlamaForCausalLM", "bfloat16", _LLAMA3),
)
# Mixture-of-experts lines: Qwen3 (Qwen/Qwen3-30B-A3B, Qwen/Qwen3-235B-A22B) and Qwen2's 57B-A14B (the config.json
# of Qwen/Qwen2-57B-A14B-Instruct, as copied with '_name_or_path' in huggingface.co/nm-testing/Qwen2-57B-A14B-Instruct-
# FP8-KV: 64 experts of 2560, 8 per token, a shared expert of 20480 with its gate, every one of the 28 layers sparse).
_QWEN3_MOE = ("qwen3_moe", "Qwen3MoeForCausalLM")
REFERENCE_MOE = {
    ("Qwen", "2", "57B"): {"hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
                           "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 151936,
                           "tie_word_embeddings": False, "max_position_embeddings": 32768, "num_experts": 64,
                           "num_experts_per_tok": 8, "moe_intermediate_size": 2560,
                           "shared_expert_intermediate_size": 20480, "mlp_only_layers": [],
                           "model_type": "qwen2_moe", "architectures": ["Qwen2MoeForCausalLM"]},
    ("Qwen", "3", "30B"): {"hidden_size": 2048, "intermediate_size": 6144, "num_hidden_layers": 48,
                           "num_attention_heads": 32, "num_key_value_heads": 4, "head_dim": 128,
                           "vocab_size": 151936, "tie_word_embeddings": False, "max_position_embeddings": 40960,
                           "num_experts": 128, "num_experts_per_tok": 8, "moe_intermediate_size": 768},
    ("Qwen", "3", "235B"): {"hidden_size": 4096, "intermediate_size": 12288, "num_hidden_layers": 94,
                            "num_attention_heads": 64, "num_key_value_heads": 4, "head_dim": 128,
                            "vocab_size": 151936, "tie_word_embeddings": False, "max_position_embeddings": 40960,
                            "num_experts": 128, "num_experts_per_tok": 8, "moe_intermediate_size": 1536},
}
# Gemma 3 (google/gemma-3-{4b,12b,27b}-it: Gemma3ForConditionalGeneration). The published config.json files give a
# short text_config and take the rest from transformers' Gemma3TextConfig (TEXT_CONFIG_DEFAULTS: vocab 262208, 8 heads,
# 4 KV heads, head_dim 256, tied embeddings); written out here. Sources: huggingface.co/google/gemma-3-27b-it
# config.json (tests/fixtures/configs/gemma-3-27b-it.json), the same text_config of 4b and 12b as copied in
# huggingface.co/mlx-community/gemma-3-4b-it-bf16/blob/main/config.json and
# huggingface.co/unsloth/gemma-3-12b-it-GGUF/blame/main/config.json (16 heads, 8 KV heads). Every multimodal size
# has the same SigLIP vision tower (27 layers of width 1152, MLP 4304, 896-pixel images in 14-pixel patches, no
# pooling head) and a projector to the text width, counted by vision_tower. gemma-3-1b-it is text only
# (Gemma3ForCausalLM, gemma3_text: vocab 262144, 4 heads, 1 KV head, window 512); its shapes give 999,885,952
# parameters. Columns: hidden, intermediate, layers, heads, KV heads, head_dim, window.
_GEMMA3_TEXT = {
    "1B": (1152, 6912, 26, 4, 1, 256, 512),
    "4B": (2560, 10240, 34, 8, 4, 256, 1024),
    "12B": (3840, 15360, 48, 16, 8, 256, 1024),
    "27B": (5376, 21504, 62, 32, 16, 128, 1024),
}
_SIGLIP_GEMMA3 = {"model_type": "siglip_vision_model", "hidden_size": 1152, "intermediate_size": 4304,
                  "num_hidden_layers": 27, "num_attention_heads": 16, "image_size": 896, "patch_size": 14,
                  "vision_use_head": False}


def _gemma3_config(size):
    hidden, inter, layers, heads, kv, head_dim, window = _GEMMA3_TEXT[size]
    text = {"model_type": "gemma3_text", "hidden_size": hidden, "intermediate_size": inter,
            "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kv,
            "head_dim": head_dim, "sliding_window": window, "sliding_window_pattern": 6,
            "tie_word_embeddings": True}
    if size == "1B":
        return dict(text, architectures=["Gemma3ForCausalLM"], vocab_size=262144, max_position_embeddings=32768,
                    torch_dtype="bfloat16")
    return {"model_type": "gemma3", "architectures": ["Gemma3ForConditionalGeneration"], "torch_dtype": "bfloat16",
            "text_config": dict(text, vocab_size=262208, max_position_embeddings=131072),
            "vision_config": dict(_SIGLIP_GEMMA3)}


# Lines whose published config is not one flat tuple (multimodal, vision tower): (family, version) -> (sizes, builder).
REFERENCE_BUILT = {("Gemma", "3"): (tuple(_GEMMA3_TEXT), _gemma3_config)}

# Distilled models named after their student: the student line's shapes.
_DISTILL_LINES = {("Qwen", "32B"): ("Qwen", "2.5"), ("Qwen", "14B"): ("Qwen", "2.5"), ("Qwen", "7B"): ("Qwen", "2.5"),
                  ("Qwen", "1.5B"): ("Qwen", "2.5"), ("Llama", "8B"): ("Llama", "3.1"),
                  ("Llama", "70B"): ("Llama", "3.3")}


def _size_key(params):
    from ansible_collections.llmops.deploy.plugins.module_utils.parameter_count import format_params
    return format_params(params) if params else None


def reference_config(info):
    """A config.json dict with the published shapes of the line a parsed ModelScope id names, or None.

    ``info`` is model_names.parse_model_id's result. The dict carries ``_reference`` (what it is, in words).
    """
    if not isinstance(info, dict) or not info.get("params"):
        return None
    size = str(info.get("params_label") or _size_key(info["params"])).upper()
    family, version = info.get("family"), str(info.get("version") or "")
    if info.get("distilled") and info.get("distill_base"):
        line = _DISTILL_LINES.get((info["distill_base"], size))
        if line:
            family, version = line
    moe = REFERENCE_MOE.get((family, version, size))
    if moe is not None:
        config = dict(moe, torch_dtype="bfloat16")
        config.setdefault("model_type", _QWEN3_MOE[0])
        config.setdefault("architectures", [_QWEN3_MOE[1]])
        config["_reference"] = "published shapes of %s%s-%s (mixture of experts)" % (family, version, size)
        return config
    built = REFERENCE_BUILT.get((family, version))
    if built is not None and size in built[0]:
        config = built[1](size)
        config["_reference"] = "published shapes of %s-%s-%s%s" % (
            family, version, size, " (text part and vision tower)" if "vision_config" in config else "")
        return config
    for fam, versions, model_type, arch, dtype, shapes in REFERENCE_LINES:
        if fam != family or version not in versions or size not in shapes:
            continue
        hidden, inter, layers, heads, kv, vocab, tied, head_dim, max_pos = shapes[size]
        config = {"model_type": model_type, "architectures": [arch], "hidden_size": hidden,
                  "intermediate_size": inter, "num_hidden_layers": layers, "num_attention_heads": heads,
                  "num_key_value_heads": kv, "vocab_size": vocab, "tie_word_embeddings": tied,
                  "max_position_embeddings": max_pos, "torch_dtype": dtype,
                  "_reference": "published shapes of %s%s-%s" % (fam, version if fam == "Qwen" else "-" + version,
                                                                 size)}
        if head_dim:
            config["head_dim"] = head_dim
        return config
    return None
