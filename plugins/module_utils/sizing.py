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
``nvidia-smi``. Other methods (issue 4's ``detailed``) register in ``METHODS`` and return the same keys.
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


METHODS = {"seed": seed_requirements}


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


def size_model(model=None, params=None, precision=None, method="seed", reserve=DEFAULT_RESERVE):
    """Size a model: the requirements of ``method`` plus the GB/GiB figures the modules return."""
    reserve = check_reserve(reserve)
    if method not in METHODS:
        raise SizingInputError("method", method, "one of %s" % ", ".join(sorted(METHODS)))
    count, canonical, info = resolve_model(model, params, precision)
    req = METHODS[method](count, canonical)
    result = {
        "method": method,
        "model": info["id"] if info else None,
        "model_info": info,
        "params": count,
        "params_label": parameter_count.format_params(count),
        "precision": canonical,
        "precision_label": precisions.LABELS[canonical],
        "bytes_per_param": float(precisions.BYTES_PER_PARAM[canonical]),
        "reserve": reserve,
        "cpu_cores": req["cpu_cores"],
        "cpu_cores_max": req["cpu_cores_max"],
        "cpu_cores_label": req["cpu_cores_label"],
        "basis": req["basis"],
        "requirements_bytes": {
            "param_memory": req["param_memory_bytes"],
            "gpu_memory": req["gpu_memory_bytes"],
            "cpu_memory": req["cpu_memory_bytes"],
            "disk": req["disk_bytes"],
        },
    }
    for key in ("param_memory", "gpu_memory", "cpu_memory", "disk"):
        value = req[key + "_bytes"]
        result[key + "_gb"] = gb(value)
        result[key + "_gib"] = gib(value)
    result["gpu_memory_with_reserve_gb"] = gb(with_reserve(req["gpu_memory_bytes"], reserve))
    result["cpu_memory_with_reserve_gb"] = gb(with_reserve(req["cpu_memory_bytes"], reserve))
    return result


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
