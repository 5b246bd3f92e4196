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

from ansible_collections.llmops.deploy.plugins.module_utils import parameter_count, precision as precisions
from ansible_collections.llmops.deploy.plugins.module_utils.sizing_errors import SizingInputError

GB = 10 ** 9
GIB = 2 ** 30
MIB = 2 ** 20

SEED_GPU_FACTOR = Fraction(3, 2)
SEED_CPU_FACTOR = Fraction(2)

DEFAULT_RESERVE = 0.2
MAX_RESERVE = 0.5
DEFAULT_GPUS_PER_NODE = 8
MAX_GPUS = 4096

# Guide tables 2.3.1 (FP16) and 2.3.2 (FP32): model scale (parameters) -> recommended CPU cores (min, max or None).
# A model between two rows takes the next larger row; above the last row it takes the last row ("128+", "256+").
GUIDE_SCALES = (1500000000, 7000000000, 8000000000, 32000000000, 70000000000, 671000000000)
CORES_FP16 = ((4, None), (8, None), (16, None), (32, None), (64, None), (128, None))
CORES_FP32 = ((4, 8), (8, 16), (16, 32), (32, 64), (64, 128), (256, None))
# The guide writes "128+ 核" and "256+ 核" for its last rows: an open-ended minimum.
OPEN_ENDED_LAST_ROW = True

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


def cpu_cores_for(params, precision):
    """Recommended CPU cores by model scale: ``(min, max_or_None, label, basis)``.

    Precisions of up to 2 bytes per parameter (INT4, INT8, FP8, FP16, BF16) use table 2.3.1, FP32 uses table 2.3.2:
    the guide gives cores by model scale, and its FP32 table is the only one that asks for more.
    """
    canonical = precisions.normalize_precision(precision)
    table, table_name = (CORES_FP32, "2.3.2 (FP32)") if canonical == "fp32" else (CORES_FP16, "2.3.1 (FP16)")
    row = len(GUIDE_SCALES) - 1
    for index, scale in enumerate(GUIDE_SCALES):
        if params <= scale:
            row = index
            break
    low, high = table[row]
    last = row == len(GUIDE_SCALES) - 1
    if last and OPEN_ENDED_LAST_ROW and high is None:
        label = "%d+" % low
    elif high is None:
        label = str(low)
    else:
        label = "%d-%d" % (low, high)
    basis = "guide table %s, row %s" % (table_name, parameter_count.format_params(GUIDE_SCALES[row]))
    if params > GUIDE_SCALES[row]:
        basis += " (model is larger than the table's largest row)"
    elif params != GUIDE_SCALES[row]:
        basis += " (next row at or above %s)" % parameter_count.format_params(params)
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
    count, canonical, info = resolve_model(spec.get("model"), spec.get("params"), spec.get("precision"))
    req = seed_requirements(count, canonical)
    req.update(params=count, precision=canonical, model_info=info)
    return req


def _detailed_method(spec):
    # Imported here: detailed_sizing builds on this module's helpers.
    from ansible_collections.llmops.deploy.plugins.module_utils import detailed_sizing
    info = None
    if spec.get("model") is not None:
        from ansible_collections.llmops.deploy.plugins.module_utils import model_names
        info = model_names.parse_model_id(spec["model"])
    return detailed_sizing.requirements(dict(spec, model_info=info))


METHODS = {"seed": _seed_method, "detailed": _detailed_method}
METHOD_CHOICES = ("seed", "detailed", "auto")
KV_CACHE_DTYPE_CHOICES = ("auto", "fp16", "bf16", "fp8", "fp8_e4m3", "fp8_e5m2")
# A detailed GPU figure this far from the guide's rule of thumb (ratio) is flagged as differing.
DIFFERS_FROM_SEED_TOLERANCE = 0.1


def _fmt_fraction(value):
    return ("%.2f" % float(value)).rstrip("0").rstrip(".")


def resolve_model(model=None, params=None, precision=None):
    """Turn the user's ``model`` / ``params`` / ``precision`` into ``(params, precision, model_info)``.

    Size and precision come from the ModelScope id when the name carries them; explicit values win.
    """
    info = None
    if model is not None:
        from ansible_collections.llmops.deploy.plugins.module_utils import model_names
        info = model_names.parse_model_id(model)
        count = model_names.params_from_name_or_value(info, params)
        chosen = precision if precision is not None else info.get("precision")
    else:
        if params is None:
            raise SizingInputError("params", params, "a parameter count such as 32B, or a ModelScope id in 'model'")
        count = parameter_count.parse_params(params)
        chosen = precision
    if chosen is None:
        raise SizingInputError(
            "precision", chosen,
            "one of %s (the model name does not say which)" % ", ".join(precisions.BYTES_PER_PARAM))
    return count, precisions.normalize_precision(chosen), info


def resolve_method(method, config=None):
    """``seed``/``detailed`` as given; ``auto`` -> ``detailed`` when a config.json is given, else ``seed``."""
    if method not in METHOD_CHOICES:
        raise SizingInputError("method", method, "one of %s" % ", ".join(METHOD_CHOICES))
    if method == "auto":
        return "detailed" if config is not None else "seed"
    return method


def size_model(model=None, params=None, precision=None, method="seed", reserve=DEFAULT_RESERVE, config=None,
               weights=None, context_length=None, concurrency=None, kv_cache_dtype=None,
               gpu_memory_utilization=None):
    """Size a model: the requirements of ``method`` plus the GB/GiB figures the modules return.

    ``config`` is a config.json dict, ``weights`` a safetensors header summary (safetensors_header.summarize_headers);
    ``context_length``, ``concurrency``, ``kv_cache_dtype`` and ``gpu_memory_utilization`` are the detailed
    method's serving options (ignored by ``seed``).
    """
    reserve = check_reserve(reserve)
    resolved = resolve_method(method, config)
    spec = {"model": model, "params": params, "precision": precision, "config": config, "weights": weights,
            "context_length": context_length, "concurrency": concurrency, "kv_cache_dtype": kv_cache_dtype,
            "gpu_memory_utilization": gpu_memory_utilization}
    req = METHODS[resolved](spec)
    count, canonical, info = req["params"], req["precision"], req["model_info"]
    bytes_per_param = precisions.BYTES_PER_PARAM[canonical]
    if resolved != "seed":
        bytes_per_param = Fraction(req["param_memory_bytes"], count)
    cores, cores_max, cores_label, cores_basis = cpu_cores_for(count, canonical)
    basis = dict(req["basis"], cpu_cores=cores_basis)
    result = {
        "method": resolved,
        "method_requested": method,
        "model": info["id"] if info else None,
        "model_info": info,
        "params": count,
        "params_label": parameter_count.format_params(count),
        "precision": canonical,
        "precision_label": precisions.LABELS[canonical],
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
    _add_figures(result, req, reserve)
    if resolved != "seed":
        for key in ("precision_source", "breakdown", "weight_format", "weight_format_source",
                    "effective_bits_per_param", "kv_cache_per_token_bytes", "kv_cache_dtype", "context_length",
                    "context_length_source", "concurrency", "gpu_memory_utilization", "architecture", "sizing_warnings",
                    "plan_inputs"):
            result[key] = req[key]
        seed = seed_requirements(count, canonical)
        result["seed"] = {"requirements_bytes": {"param_memory": seed["param_memory_bytes"],
                                                 "gpu_memory": seed["gpu_memory_bytes"],
                                                 "cpu_memory": seed["cpu_memory_bytes"], "disk": seed["disk_bytes"]},
                          "basis": seed["basis"]}
        _add_figures(result["seed"], seed, reserve)
        ratio = float(Fraction(req["gpu_memory_bytes"], seed["gpu_memory_bytes"]))
        result["gpu_memory_ratio_to_seed"] = round(ratio, 3)
        result["differs_from_seed"] = abs(ratio - 1) > DIFFERS_FROM_SEED_TOLERANCE
    return result


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
                gpu_memory_utilization=options.get("gpu_memory_utilization"))


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
    (detailed_sizing.plan: valid TP sizes, KV heads per GPU, largest context and concurrency that fit).
    """
    if sizing_result.get("method") == "detailed":
        from ansible_collections.llmops.deploy.plugins.module_utils import detailed_sizing
        plan = detailed_sizing.plan(sizing_result, per_gpu_mib, reserve, gpus_per_node, available_gpus)
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


def model_spec_argument_spec():
    """The module options shared by model_sizing and capacity_check (documented in doc_fragments/model_spec.py).

    Plain data in AnsibleModule's argument_spec format; each call returns a fresh copy.
    """
    return dict(
        model=dict(type="str"),
        params=dict(type="raw"),
        precision=dict(type="str"),
        method=dict(type="str", choices=list(METHOD_CHOICES), default="seed"),
        config=dict(type="dict"),
        config_path=dict(type="path"),
        weights=dict(type="dict"),
        context_length=dict(type="int"),
        concurrency=dict(type="int", default=1),
        kv_cache_dtype=dict(type="str", choices=list(KV_CACHE_DTYPE_CHOICES), default="auto"),
        gpu_memory_utilization=dict(type="float", default=0.9),
        reserve=dict(type="float", default=DEFAULT_RESERVE),
        gpus_per_node=dict(type="int", default=DEFAULT_GPUS_PER_NODE),
    )


# Constraints on those options, for AnsibleModule.
MODEL_SPEC_REQUIRED_ONE_OF = [("model", "params", "config", "config_path")]
MODEL_SPEC_MUTUALLY_EXCLUSIVE = [("config", "config_path")]
