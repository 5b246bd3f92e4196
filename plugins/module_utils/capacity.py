# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Judge a sized model against one host's hardware: per-resource verdicts, reasons and the GPU plan.

Pure functions, standard library only. The hardware dict has the shape ``gpu_info`` and ``capacity_check`` use::

    {"gpus": [{"index": 0, "vendor": "nvidia", "name": "NVIDIA A100-SXM4-80GB", "memory_total_mib": 81920,
               "memory_used_mib": 0, "compute_capability": "8.0"}, ...],
     "memory_total_mib": 1031795, "cpu_cores": 128, "disk_free_mib": 3500000, "disk_path": "/opt/llmops/models"}

A declared GPU may name a known model instead of giving numbers (``{"name": "A100 80GB"}``), and a whole host may say
``{"gpu_model": "A100 80GB", "gpu_count": 4}``.
"""

from ansible_collections.llmops.deploy.plugins.module_utils import gpu_catalog, precision as precisions, sizing
from ansible_collections.llmops.deploy.plugins.module_utils.sizing_errors import SizingInputError

HARDWARE_KEYS = ("gpus", "gpu_model", "gpu_count", "memory_total_mib", "cpu_cores", "disk_free_mib", "disk_path")
GPU_KEYS = ("index", "vendor", "name", "uuid", "pci_bus_id", "driver_version", "memory_total_mib", "memory_used_mib",
            "memory_free_mib", "compute_capability", "arch", "unified_memory")
# Memory in use by other processes above this share of a GPU is worth a warning.
IN_USE_WARNING_FRACTION = 0.05


def _positive_int(field, value, what):
    if isinstance(value, bool):
        raise SizingInputError(field, value, "a positive integer (%s)" % what)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return sizing.check_positive_int(field, value, what)


def _non_negative_int(field, value, what):
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SizingInputError(field, value, "a whole number >= 0 (%s)" % what)
    return value


def normalize_gpu(gpu, field):
    """Validate one GPU dict; fill memory and capability from the catalog when only a known name is given."""
    if not isinstance(gpu, dict):
        raise SizingInputError(field, gpu, "a dict with memory_total_mib (and compute_capability), or a known GPU name")
    unknown = sorted(set(gpu) - set(GPU_KEYS) - {"gpu_class"})
    if unknown:
        raise SizingInputError(field, gpu, "a dict with keys from %s" % ", ".join(GPU_KEYS),
                               "unknown key(s): %s" % ", ".join(unknown))
    result = dict((key, gpu.get(key)) for key in GPU_KEYS)
    if result["memory_total_mib"] is None:
        if not gpu.get("name"):
            raise SizingInputError(field + ".memory_total_mib", None,
                                   "a positive integer (MiB, as nvidia-smi reports) or a known GPU 'name'")
        known = gpu_catalog.lookup(gpu["name"], field + ".name")
        result["memory_total_mib"] = known["memory_total_mib"]
        for key in ("vendor", "compute_capability", "arch"):
            if result[key] is None:
                result[key] = known[key]
        result["name"] = known["name"] if not gpu.get("name") else gpu["name"]
    result["memory_total_mib"] = _positive_int(field + ".memory_total_mib", result["memory_total_mib"],
                                               "MiB, as nvidia-smi reports")
    result["memory_used_mib"] = _non_negative_int(field + ".memory_used_mib", result["memory_used_mib"], "MiB")
    result["memory_free_mib"] = _non_negative_int(field + ".memory_free_mib", result["memory_free_mib"], "MiB")
    if result["compute_capability"] is not None:
        precisions.parse_compute_capability(result["compute_capability"])  # validates
        result["compute_capability"] = str(result["compute_capability"])
    result["vendor"] = (result["vendor"] or "nvidia").lower()
    if result["vendor"] not in ("nvidia", "amd"):
        raise SizingInputError(field + ".vendor", gpu.get("vendor"), "nvidia or amd")
    result["name"] = result["name"] or "GPU"
    result["gpu_class"] = gpu_catalog.gpu_class(result["name"])
    return result


def normalize_hardware(hardware, field="hardware"):
    """Validate a declared/probed hardware dict. Missing parts stay None (to be probed or reported unknown)."""
    if hardware is None:
        hardware = {}
    if not isinstance(hardware, dict):
        raise SizingInputError(field, hardware, "a dict with keys from %s" % ", ".join(HARDWARE_KEYS))
    unknown = sorted(set(hardware) - set(HARDWARE_KEYS))
    if unknown:
        raise SizingInputError(field, hardware, "a dict with keys from %s" % ", ".join(HARDWARE_KEYS),
                               "unknown key(s): %s" % ", ".join(unknown))
    gpus = hardware.get("gpus")
    if hardware.get("gpu_model") is not None or hardware.get("gpu_count") is not None:
        if gpus is not None:
            raise SizingInputError(field, hardware, "either 'gpus' or 'gpu_model' with 'gpu_count', not both")
        count = hardware.get("gpu_count")
        count = 0 if count == 0 else _positive_int(field + ".gpu_count", count, "number of GPUs")
        if count and hardware.get("gpu_model") is None:
            raise SizingInputError(field + ".gpu_model", None, "a known GPU model (%s)" % ", ".join(
                gpu_catalog.known_names()))
        gpus = [{"index": i, "name": hardware["gpu_model"]} for i in range(count)]
    result = {"gpus": None, "memory_total_mib": None, "cpu_cores": None, "disk_free_mib": None,
              "disk_path": hardware.get("disk_path")}
    if gpus is not None:
        if not isinstance(gpus, list):
            raise SizingInputError(field + ".gpus", gpus, "a list of GPU dicts (an empty list for no GPU)")
        result["gpus"] = [normalize_gpu(gpu, "%s.gpus[%d]" % (field, i)) for i, gpu in enumerate(gpus)]
        for i, gpu in enumerate(result["gpus"]):
            if gpu["index"] is None:
                gpu["index"] = i
    if hardware.get("memory_total_mib") is not None:
        result["memory_total_mib"] = _positive_int(field + ".memory_total_mib", hardware["memory_total_mib"],
                                                   "host RAM in MiB")
    if hardware.get("cpu_cores") is not None:
        result["cpu_cores"] = _positive_int(field + ".cpu_cores", hardware["cpu_cores"], "CPU cores")
    if hardware.get("disk_free_mib") is not None:
        result["disk_free_mib"] = _non_negative_int(field + ".disk_free_mib", hardware["disk_free_mib"],
                                                    "free disk in MiB")
    return result


def _resource(name, required, available, reserve, unit, reason_fits, reason_short):
    verdict = sizing.judge(required, available, reserve)
    to_unit = sizing.gb if unit == "GB" else (lambda v: v)
    entry = {
        "resource": name,
        "unit": unit,
        "required": to_unit(required),
        "required_with_reserve": to_unit(sizing.with_reserve(required, reserve)),
        "available": None if available is None else to_unit(available),
        "verdict": verdict,
    }
    if unit == "GB":
        entry["required_gib"] = sizing.gib(required)
        entry["available_gib"] = None if available is None else sizing.gib(available)
    if available is None:
        entry["reason"] = "%s could not be measured; needs %s %s" % (reason_short, entry["required"], unit)
    elif verdict == "fits":
        entry["reason"] = reason_fits % entry
    elif verdict == "tight":
        entry["reason"] = ("%s: needs %s %s, has %s %s, but not the %d%% reserve (%s %s)" % (
            reason_short, entry["required"], unit, entry["available"], unit, round(reserve * 100),
            entry["required_with_reserve"], unit))
    else:
        entry["reason"] = "%s: needs %s %s, host has %s %s" % (
            reason_short, entry["required"], unit, entry["available"], unit)
    return entry


def _cores_resource(sizing_result, available):
    """CPU cores are the guide's *recommendation* (tables 2.3.x), not a capacity that overflows.

    At or above the recommended minimum: fits. Below it the model still loads and serves, more slowly: tight.
    The reserve does not apply (cores are not consumed like memory).
    """
    required = sizing_result["cpu_cores"]
    entry = {"resource": "cpu_cores", "unit": "cores", "required": required, "required_with_reserve": required,
             "recommended_label": sizing_result["cpu_cores_label"], "available": available,
             "basis": sizing_result["basis"]["cpu_cores"]}
    if available is None:
        entry.update(verdict="tight", reason="CPU cores could not be measured; the guide recommends %s" % (
            sizing_result["cpu_cores_label"]))
    elif available >= required:
        entry.update(verdict="fits", reason="CPU cores: the guide recommends %s, host has %d" % (
            sizing_result["cpu_cores_label"], available))
    else:
        entry.update(verdict="tight", reason="CPU cores: the guide recommends %s (%s), host has %d; loading and "
                     "CPU-side work will be slower" % (sizing_result["cpu_cores_label"], entry["basis"], available))
    return entry


def _gpu_resource(sizing_result, gpus, reserve, gpus_per_node):
    """GPU memory verdict, the plan, and precision support for a host's GPUs."""
    required = sizing_result["requirements_bytes"]["gpu_memory"]
    label = sizing_result["precision_label"]
    notes = []
    entry = {"resource": "gpu_memory", "unit": "GB", "required": sizing.gb(required),
             "required_gib": sizing.gib(required),
             "required_with_reserve": sizing.gb(sizing.with_reserve(required, reserve)),
             "available": 0.0, "available_gib": 0.0, "gpus_used": 0}
    if gpus is None:
        entry.update({"available": None, "available_gib": None, "verdict": "tight",
                      "reason": "GPUs could not be probed; needs %s GB of GPU memory" % entry["required"]})
        return entry, None
    if not gpus:
        entry.update({"verdict": "insufficient",
                      "reason": "no GPU found; the model needs %s GB of GPU memory" % entry["required"]})
        return entry, None
    eligible = []
    refused = []
    for gpu in gpus:
        supported, why = precisions.hardware_support(sizing_result["precision"], gpu["vendor"],
                                                     gpu["compute_capability"], gpu["arch"])
        if supported is False:
            refused.append("%s (GPU %s: %s)" % (why, gpu["index"], gpu["name"]))
        else:
            eligible.append(gpu)
            if supported is None:
                notes.append(why)
    if not eligible:
        entry.update({"verdict": "insufficient", "reason": refused[0] if len(refused) == 1 else "; ".join(
            sorted(set(r.split(" (GPU")[0] for r in refused)))})
        entry["reason"] = "%s cannot run here: %s" % (label, entry["reason"])
        if precisions.normalize_precision(sizing_result["precision"]) == "bf16":
            entry["reason"] += ("; FP16 takes the same bytes and runs on these GPUs: plan it with precision fp16 "
                                "(llmops_precision: fp16), and vLLM serves the BF16 checkpoint as float16")
        return entry, None
    names = sorted(set(gpu["name"] for gpu in eligible))
    per_gpu_mib = min(gpu["memory_total_mib"] for gpu in eligible)
    usable = 1 << (len(eligible).bit_length() - 1)
    gpu_name = names[0] if len(names) == 1 else "mixed GPUs (smallest %d MiB)" % per_gpu_mib
    per_gpu_bytes = sizing.mib_to_bytes(per_gpu_mib)
    entry["gpus_used"] = usable
    entry["available"] = sizing.gb(usable * per_gpu_bytes)
    entry["available_gib"] = sizing.gib(usable * per_gpu_bytes)
    if sizing_result.get("method") == "detailed":
        plan = sizing.plan_gpus(sizing_result, per_gpu_mib, reserve, gpus_per_node, gpu_name, available_gpus=usable)
        entry["verdict"], reason = _detailed_verdict(sizing_result, plan, usable, reserve)
    else:
        plan = sizing.gpu_plan(required, per_gpu_mib, reserve, gpus_per_node)
        plan["gpu_name"] = gpu_name
        plan["description"] = sizing.describe_plan(plan, plan["gpu_name"])
        entry["verdict"], reason = _seed_verdict(entry, plan, usable, eligible, per_gpu_bytes, reserve)
    if len(eligible) != usable:
        notes.append("tensor parallelism uses %d of the %d GPUs (power-of-two group)" % (usable, len(eligible)))
    if len(names) > 1:
        notes.append("GPUs differ (%s); planning uses the smallest" % ", ".join(names))
    if refused:
        notes.append("%d GPU(s) left out: %s" % (len(refused), "; ".join(refused)))
    entry["reason"] = reason + ("" if not notes else " (" + "; ".join(notes) + ")")
    return entry, plan


def _detailed_verdict(sizing_result, plan, usable, reserve):
    """Per-GPU verdict of the detailed method, in plain words, with the guide's figure where it differs."""
    pct = round(reserve * 100)
    seed_note = ""
    if sizing_result.get("differs_from_seed"):
        seed_note = "; the guide's rule of thumb says %s GB of GPU memory, the detailed method %s GB before " \
            "parallelism" % (sizing_result["seed"]["gpu_memory_gb"], sizing_result["gpu_memory_gb"])
    if plan["tensor_parallel_size"] is None:
        if plan.get("start_refused") or not plan["valid_tensor_parallel_sizes"]:
            # The engine would refuse to start (gpu_memory_utilization leaves no room for the CUDA context), or no
            # TP size is valid: the plan's description says which and why.
            return "insufficient", "GPU memory: %s" % plan["description"]
        return "insufficient", "GPU memory: the model does not fit %s GPUs at any tensor/pipeline-parallel size" % (
            plan["gpu_name"]) + seed_note
    context = "{:,} tokens x {} sequence(s)".format(plan["context_length"], plan["concurrency"])
    where = plan["description"].split(";")[0]
    if plan["gpus"] is not None and plan["gpus"] <= usable:
        return "fits", ("GPU memory: %s needs %s GB per GPU for %s (%d%% reserve kept, %s GB usable at "
                        "gpu_memory_utilization %s)%s" % (where, plan["per_gpu_requirement_gb"], context, pct,
                                                          plan["per_gpu_budget_gb"], plan["gpu_memory_utilization"],
                                                          seed_note))
    if plan["gpus_minimum"] is not None and plan["gpus_minimum"] <= usable:
        return "tight", ("GPU memory: %s holds %s but not the %d%% reserve (%s GB per GPU of %s usable); %s GPUs "
                         "would" % (where, context, pct, plan["per_gpu_requirement_gb"], plan["per_gpu_budget_gb"],
                                    plan["gpus"] or "more"))
    needed = plan["gpus"] or plan["gpus_minimum"]
    reason = "GPU memory: %s needs %s x %s (tensor parallel %s x pipeline parallel %s) for %s; host has %d usable" % (
        sizing_result.get("model") or sizing_result["params_label"], needed, plan["gpu_name"],
        plan["tensor_parallel_size"], plan["pipeline_parallel_size"], context, usable)
    if plan["nodes"] and plan["nodes"] > 1:
        reason += "; a multi-node deployment of %d nodes is needed" % plan["nodes"]
    if plan["excluded_tensor_parallel_sizes"]:
        excluded = ["TP %d (%s)" % (e["tensor_parallel_size"], e["reason"])
                    for e in plan["excluded_tensor_parallel_sizes"]]
        reason += "; excluded: %s" % "; ".join(excluded)
    return "insufficient", reason + seed_note


def _seed_verdict(entry, plan, usable, eligible, per_gpu_bytes, reserve):
    """The seed method's verdict over the total GPU memory (unchanged since the guide's tables)."""
    if plan["gpus"] is not None and plan["gpus"] <= usable:
        verdict = "fits"
        reason = "GPU memory: needs %s GB (%s with the %d%% reserve); %s gives %s GB" % (
            entry["required"], entry["required_with_reserve"], round(reserve * 100), plan["description"],
            plan["total_gpu_memory_gb"])
    elif plan["gpus_minimum"] is not None and plan["gpus_minimum"] <= usable:
        verdict = "tight"
        reason = "GPU memory: %d x %s (%s GB) holds the %s GB but not the %d%% reserve (%s GB); %s would" % (
            usable, plan["gpu_name"], entry["available"], entry["required"], round(reserve * 100),
            entry["required_with_reserve"], plan["description"])
    else:
        verdict = "insufficient"
        if plan["gpus"] is None:
            reason = "GPU memory: needs %s GB; %s GPUs are too small for this model" % (
                entry["required"], plan["gpu_name"])
        else:
            reason = "GPU memory: needs %s GB (%s with reserve) = %s; host has %d x %s (%s GB)" % (
                entry["required"], entry["required_with_reserve"], plan["description"], len(eligible),
                plan["gpu_name"], sizing.gb(len(eligible) * per_gpu_bytes))
            if plan["nodes"] > 1:
                reason += "; a multi-node deployment of %d nodes is needed" % plan["nodes"]
    return verdict, reason


def assess(sizing_result, hardware, reserve=sizing.DEFAULT_RESERVE, gpus_per_node=sizing.DEFAULT_GPUS_PER_NODE,
           target="gpu", disk_required_bytes=None):
    """Judge one host. ``hardware`` is normalised with normalize_hardware; parts left None are 'could not measure'.

    Returns ``verdict``, ``gpus_needed``, ``gpu_plan``, ``resources`` (by name), ``reasons`` and ``warnings``.
    """
    reserve = sizing.check_reserve(reserve)
    if target not in ("gpu", "cpu"):
        raise SizingInputError("target", target, "gpu or cpu")
    if target == "gpu" and sizing_result.get("target") == "cpu":
        raise SizingInputError("target", target, "cpu: the model was sized for a CPU target (size it with "
                               "target gpu to judge GPUs)")
    hw = normalize_hardware(hardware)
    req = sizing_result["requirements_bytes"]
    resources = {}
    warnings = []
    plan = None
    if target == "gpu":
        resources["gpu_memory"], plan = _gpu_resource(sizing_result, hw["gpus"], reserve, gpus_per_node)
        ignored = sizing.plan_calibration_warning(sizing_result, plan)
        if ignored:
            warnings.append(ignored)
        for gpu in hw["gpus"] or []:
            used = gpu.get("memory_used_mib")
            if used and used > IN_USE_WARNING_FRACTION * gpu["memory_total_mib"]:
                warnings.append(
                    "GPU %s (%s) has %d MiB of %d MiB in use by other processes; planning uses total memory, so "
                    "free it before deploying" % (gpu["index"], gpu["name"], used, gpu["memory_total_mib"]))
    ram_required = req["cpu_memory"]
    cpu_plan = sizing_result.get("cpu_plan")
    ram_what = "host RAM"
    if target == "cpu" and cpu_plan:
        ram_what = "host RAM (weights %s GB + KV cache %d GiB + CPU engine runtime %s GB)" % (
            cpu_plan["weights_gb"], cpu_plan["kv_cache_space_gib"], cpu_plan["runtime_gb"])
    resources["cpu_memory"] = _resource(
        "cpu_memory", ram_required,
        None if hw["memory_total_mib"] is None else sizing.mib_to_bytes(hw["memory_total_mib"]),
        reserve, "GB", ram_what.replace("%", "%%") + ": needs %(required)s GB (%(required_with_reserve)s with "
        "reserve), has %(available)s GB", ram_what)
    if target == "cpu" and cpu_plan:
        resources["cpu_memory"]["guide_required"] = cpu_plan["guide_cpu_memory_gb"]
        resources["cpu_memory"]["kv_cache_tokens"] = cpu_plan["kv_cache_tokens"]
    resources["cpu_cores"] = _cores_resource(sizing_result, hw["cpu_cores"])
    disk_required = req["disk"] if disk_required_bytes is None else int(disk_required_bytes)
    resources["disk"] = _resource(
        "disk", disk_required,
        None if hw["disk_free_mib"] is None else sizing.mib_to_bytes(hw["disk_free_mib"]),
        reserve, "GB", "disk: needs %(required)s GB free, has %(available)s GB", "free disk")
    if hw["disk_path"]:
        resources["disk"]["path"] = hw["disk_path"]
    verdict = sizing.worst(r["verdict"] for r in resources.values())
    return {
        "verdict": verdict,
        "gpus_needed": plan["gpus"] if plan else (0 if target == "cpu" else None),
        "gpu_plan": plan,
        "resources": resources,
        "reasons": [r["reason"] for r in resources.values() if r["verdict"] != "fits"] or [
            "everything fits with the %d%% reserve" % round(reserve * 100)],
        "details": [r["reason"] for r in resources.values()],
        "warnings": warnings,
        "hardware": hw,
        "target": target,
    }
