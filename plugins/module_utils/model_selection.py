# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Choose the model to deploy on one host from a list of candidates (guide chapter 3, step 3 of its decision flow).

A *candidate* is a ModelScope id (size and precision read from the name, guide 3.2) or a dict
``{"model": id, "params": "32B", "precision": "int8", "label": "...", "config_path": "...", "config": {...}}``
(``config_path``/``config``: the model's config.json, for the architecture-aware ``detailed`` sizing, which also gives
the largest context that fits). Sibling variants of one model (base, FP8, AWQ,
GPTQ-Int8, distilled) are separate candidates. Every candidate is judged on the host (``capacity.assess``, or the
``capacity_check`` module's result), then the rules below are applied in order.

Rejections, in order; the first that applies is the candidate's ``reason`` (``reasons`` lists them all):

1. ``band``: the size is outside the scenario's size band (guide table 3.1), e.g. a 32B model for ``edge`` (1.5B~7B).
2. ``unchecked``: the host could not be checked (unreachable, the check failed or was skipped).
3. ``capability``: none of the host's GPUs can run the precision natively, e.g. FP8 needs compute capability 8.9
   and an A100 has 8.0.
4. ``resources``: the verdict is ``insufficient``: GPU memory, host RAM or disk does not hold the model even without
   the reserve (guide 2.1 and 6.1).

Preferences among the rest, in order; the first criterion on which two candidates differ decides:

1. ``verdict``: ``fits`` (holds the model with the reserve) before ``tight`` (holds it, but not the reserve).
2. ``scenario_precision``: a precision the scenario recommends (guide 3.1: edge INT4/INT8, enterprise INT8/FP8/FP16,
   complex FP16, research FP16/FP32). BF16 counts as FP16: both are 16-bit, and most models are published in BF16.
3. ``size``: the larger model within the band: the scenario fixes the band, and inside it a larger model is the more
   capable one. This comes before precision on purpose: on 2 x A100 40GB a 32B model at INT8 beats a 7B one at FP16,
   which is the guide's advice to quantise 32B+ models to INT8 when FP16 does not fit (6.2).
4. ``gpu_class_precision``: mixed deployment (guide 6.2): on consumer GPUs low precision (INT4/INT8, the higher of
   the two first), on data-centre GPUs the highest precision (FP32 > FP16 = BF16 > FP8 > INT8 > INT4, the order of
   guide table 2.2).
5. ``gpus``: fewer GPUs.
6. ``order``: earlier in the candidate list (the list order is the operator's own preference), so ties are broken
   deterministically.

The chosen candidate gets a plain-words ``justification``: what it needs on this host and why it was preferred over
each other eligible candidate (the first criterion that separated them).

Pure functions, standard library only (runs on targets with Python >= 3.8).
"""

from ansible_collections.llmops.deploy.plugins.module_utils import capacity, gpu_catalog, model_names, scenarios, sizing
from ansible_collections.llmops.deploy.plugins.module_utils import check_spec, parameter_count
from ansible_collections.llmops.deploy.plugins.module_utils import precision as precisions
from ansible_collections.llmops.deploy.plugins.module_utils.sizing_errors import SizingInputError

# Rejections, in the order they are applied: (name, what it means).
REJECTION_RULES = (
    ("band", "outside the scenario's size band (guide 3.1)"),
    ("unchecked", "the host could not be checked for it (unreachable, failed or skipped)"),
    ("capability", "no GPU on the host runs its precision natively"),
    ("resources", "the host's GPU memory, RAM or disk does not hold it (guide 2.1)"),
)

# Preferences among eligible candidates, in order: (name, what it prefers).
PREFERENCES = (
    ("verdict", "fits with the reserve before tight (guide 6.1: keep 20-30 % headroom)"),
    ("scenario_precision", "a precision the scenario recommends (guide 3.1)"),
    ("size", "the larger model within the scenario's band"),
    ("gpu_class_precision", "mixed deployment (guide 6.2): low precision (INT4/INT8) on consumer GPUs, the highest "
                            "precision on data-centre GPUs"),
    ("gpus", "fewer GPUs"),
    ("order", "earlier in the candidate list"),
)

# Higher is more precise; the order of guide table 2.2 (INT4, INT8, FP8, FP16, FP32), BF16 level with FP16.
PRECISION_RANK = {"int4": 1, "int8": 2, "fp8": 3, "fp16": 4, "bf16": 4, "fp32": 5}

# A scenario that recommends the key accepts these precisions too.
_SCENARIO_EQUIVALENTS = {"fp16": ("fp16", "bf16")}

_MIXED = [item for item in scenarios.OPTIMISATION_ADVICE if item["name"] == "mixed-hardware"][0]
LOW_PRECISIONS = tuple(_MIXED["low_precisions"])
QUANTISE_FROM_PARAMS = [item for item in scenarios.OPTIMISATION_ADVICE if item["name"] == "quantization"][0]["min_params"]

CANDIDATE_KEYS = ("model", "params", "precision", "label", "config_path", "config")
# Hub metadata a candidate may carry (from llmops.deploy.modelscope_info, merged by check_specs).
HUB_KEYS = ("weights", "disk_required_bytes")
# Keys a candidate already normalised by normalize_candidate carries (it may be passed back in, e.g. as a loop item).
_NORMALISED_KEYS = CANDIDATE_KEYS + HUB_KEYS + ("key", "params_label", "precision_label", "precision_source", "family",
                                                "quantization", "distilled", "summary")
# What capacity_check's ``candidates`` option takes for each candidate (check_specs makes them).
CHECK_KEYS = ("key", "label", "model", "params", "precision", "precision_source", "config", "config_path") + HUB_KEYS

CHECKED_VERDICTS = ("fits", "tight", "insufficient")

ACCEPTED_CANDIDATE = ("a ModelScope id such as Qwen/Qwen2.5-32B-Instruct-AWQ, or a dict with 'model' and/or "
                      "'params' and 'precision' (optional 'label')")


def _fail(field, value, detail=None):
    raise SizingInputError(field, value, ACCEPTED_CANDIDATE, detail)


def normalize_candidate(value, index=0, default_precision=None, field="candidates"):
    """One candidate -> ``{key, model, params, params_label, precision, precision_label, precision_source, ...}``.

    Size and precision come from the ModelScope name when it carries them; a dict's explicit ``params`` and
    ``precision`` win. A name without a precision (``Qwen/Qwen2.5-32B-Instruct`` is published in BF16) takes
    ``default_precision``. Raises SizingInputError naming ``candidates[<index>]`` when neither says.
    """
    where = "%s[%d]" % (field, index)
    if isinstance(value, str):
        value = {"model": value}
    if not isinstance(value, dict):
        _fail(where, value)
    unknown = sorted(set(value) - set(_NORMALISED_KEYS))
    if unknown:
        _fail(where, value, "unknown key(s): %s" % ", ".join(unknown))
    model = value.get("model") or None
    params = value.get("params")
    params = None if params in (None, "") else params
    precision = value.get("precision") or None
    info = None
    if model is not None:
        info = model_names.parse_model_id(model)  # raises naming 'model'
        model = info["id"]
    elif params is None:
        _fail(where, value, "neither a model id nor params")
    if params is not None:
        count = parameter_count.parse_params(params, where + ".params")
    elif info.get("params") is not None:
        count = info["params"]
    else:
        raise SizingInputError(where + ".params", None, "a parameter count such as 32B",
                               "the name %s has no size in it, so give {model: ..., params: ...}" % model)
    source = "given"
    if precision is not None:
        chosen = precisions.normalize_precision(precision, where + ".precision")
        if value.get("precision_source") in ("name", "default"):
            source = value["precision_source"]
    elif info is not None and info.get("precision"):
        chosen, source = info["precision"], "name"
    elif default_precision:
        chosen, source = precisions.normalize_precision(default_precision, "default_precision"), "default"
    else:
        raise SizingInputError(
            where + ".precision", None, "one of %s" % ", ".join(precisions.BYTES_PER_PARAM),
            "%s does not say its precision; give {model: ..., precision: ...} or a default precision" % (
                model or parameter_count.format_params(count)))
    params_label = parameter_count.format_params(count)
    if value.get("key"):
        key = str(value["key"])  # already normalised (a loop item, or capacity_check's candidates option)
    elif value.get("label"):
        key = str(value["label"])
    elif model is None:
        key = "%s %s" % (params_label, precisions.LABELS[chosen])
    elif source == "given" and info.get("precision") != chosen:
        key = "%s (%s)" % (model, precisions.LABELS[chosen])
    else:
        key = model
    if value.get("config") is not None and not isinstance(value["config"], dict):
        raise SizingInputError(where + ".config", value["config"], "the content of a config.json, as a dict")
    return {
        "key": key,
        "model": model,
        "label": value.get("label") or None,
        "config_path": value.get("config_path") or None,
        "config": value.get("config") or None,
        "params": count,
        "params_label": params_label,
        "precision": chosen,
        "precision_label": precisions.LABELS[chosen],
        "precision_source": source,
        "family": info["family"] if info else None,
        "quantization": info["quantization"] if info else None,
        "distilled": bool(info and info["distilled"]),
        "summary": info["summary"] if info else "%s parameters, %s" % (params_label, precisions.LABELS[chosen]),
        "weights": value.get("weights") or None,
        "disk_required_bytes": value.get("disk_required_bytes"),
    }


def normalize_candidates(values, default_precision=None, field="candidates"):
    """A list of candidates, normalised; keys must be unique. Raises SizingInputError naming the field."""
    if isinstance(values, (str, dict)):
        values = [values]
    if not isinstance(values, (list, tuple)) or not values:
        raise SizingInputError(field, values, "a non-empty list of candidates (%s)" % ACCEPTED_CANDIDATE)
    result = []
    seen = {}
    for index, value in enumerate(values):
        candidate = normalize_candidate(value, index, default_precision, field)
        if candidate["key"] in seen:
            raise SizingInputError("%s[%d]" % (field, index), value, "each candidate once",
                                   "the same as %s[%d] (%s)" % (field, seen[candidate["key"]], candidate["key"]))
        seen[candidate["key"]] = index
        result.append(candidate)
    return result


def host_gpu_class(hardware, target="gpu"):
    """``datacenter``, ``consumer``, ``mixed``, ``none`` (no GPU), ``unknown`` (not probed) or ``cpu`` (CPU target)."""
    if target == "cpu":
        return "cpu"
    gpus = (hardware or {}).get("gpus")
    if gpus is None:
        return "unknown"
    if not gpus:
        return "none"
    classes = set(gpu.get("gpu_class") or gpu_catalog.gpu_class(gpu.get("name")) for gpu in gpus)
    return classes.pop() if len(classes) == 1 else "mixed"


def scenario_summary(scenario):
    """The parts of a scenario the selection and the reports show, or None."""
    if not scenario:
        return None
    data = scenario if isinstance(scenario, dict) else scenarios.get_scenario(scenario)
    return {
        "name": data["name"],
        "label": data["label"],
        "label_zh": data.get("label_zh"),
        "params_band": data["params_band"],
        "min_params": data["min_params"],
        "max_params": data["max_params"],
        "precisions": list(data["precisions"]),
        "precisions_label": "/".join(precisions.LABELS[p] for p in data["precisions"]),
    }


def recommended_precision(scen, precision):
    """Does the scenario (a scenario_summary, or None for no scenario) recommend ``precision``? BF16 counts as FP16."""
    if scen is None:
        return True
    accepted = set()
    for item in scen["precisions"]:
        accepted.update(_SCENARIO_EQUIVALENTS.get(item, (item,)))
    return precision in accepted


def _in_band(scen, params):
    if scen is None:
        return True
    return scenarios.scenario_band_contains(scen, params)


def _assessment_state(assessment):
    """'checked', 'unreachable', 'failed', 'skipped' or 'missing'."""
    if not isinstance(assessment, dict):
        return "missing"
    if assessment.get("unreachable"):
        return "unreachable"
    if assessment.get("skipped"):
        return "skipped"
    if assessment.get("verdict") in CHECKED_VERDICTS:
        return "checked"
    return "failed"


def _capability_problem(candidate, assessment):
    """A sentence when no GPU of the host runs the precision natively, else None."""
    if assessment.get("target") == "cpu":
        return None
    gpus = (assessment.get("hardware") or {}).get("gpus")
    if not gpus:
        return None
    problems = []
    for gpu in gpus:
        supported, why = precisions.hardware_support(candidate["precision"], gpu.get("vendor"),
                                                     gpu.get("compute_capability"), gpu.get("arch"))
        if supported is not False:
            return None
        needed = precisions.MIN_COMPUTE_CAPABILITY.get(candidate["precision"])
        if (gpu.get("vendor") or "nvidia") == "nvidia" and needed:
            text = "%s needs compute capability %d.%d, %s has %s" % (
                candidate["precision_label"], needed[0], needed[1], gpu.get("name") or "the GPU",
                gpu.get("compute_capability"))
        else:
            text = "%s (%s)" % (why, gpu.get("name") or "GPU")
        if text not in problems:
            problems.append(text)
    return "; ".join(problems)


def _resource_reasons(assessment):
    """Short sentences for the resources judged insufficient, most important first."""
    reasons = []
    resources = assessment.get("resources") or {}
    for name in ("gpu_memory", "cpu_memory", "disk", "cpu_cores"):
        entry = resources.get(name)
        if not entry or entry.get("verdict") != "insufficient":
            continue
        if name == "gpu_memory" and entry.get("available") is not None and entry.get("required") is not None \
                and entry.get("gpus_used"):
            plan = assessment.get("gpu_plan") or {}
            text = "needs %s GB of GPU memory, host has %s GB" % (entry["required"], entry["available"])
            if plan.get("gpus"):
                text += " (%d x %s GiB; %d GPU(s) needed with the reserve)" % (
                    entry["gpus_used"], plan.get("per_gpu_memory_gib"), plan["gpus"])
            reasons.append(text)
        elif name == "cpu_memory" and entry.get("available") is not None:
            reasons.append("needs %s GB of host RAM, host has %s GB" % (entry["required"], entry["available"]))
        elif name == "disk" and entry.get("available") is not None:
            reasons.append("needs %s GB of free disk, host has %s GB" % (entry["required"], entry["available"]))
        else:
            reasons.append(entry.get("reason") or "%s is insufficient" % name)
    if not reasons:
        reasons = list(assessment.get("reasons") or []) or ["insufficient resources"]
    return reasons


def _fit_reason(assessment, reserve):
    resources = assessment.get("resources") or {}
    if assessment.get("verdict") == "fits":
        gpu = resources.get("gpu_memory")
        if gpu and gpu.get("reason"):
            return "fits with the %d%% reserve: %s" % (round(reserve * 100), gpu["reason"])
        return "fits with the %d%% reserve" % round(reserve * 100)
    return "tight: %s" % "; ".join(assessment.get("reasons") or ["no room for the reserve"])


def evaluate(candidate, assessment, scenario=None, reserve=sizing.DEFAULT_RESERVE):
    """Judge one normalised candidate against its assessment on one host. Returns the evaluation dict.

    ``status`` is ``eligible`` or ``rejected``; a rejected one has ``rule`` (see REJECTION_RULES) and ``reason``.
    """
    scen = scenario_summary(scenario) if not isinstance(scenario, dict) or "precisions_label" not in scenario \
        else scenario
    state = _assessment_state(assessment)
    assessment = assessment if isinstance(assessment, dict) else {}
    sized = assessment.get("sizing") or {}
    reserve = sized.get("reserve", reserve)
    plan = assessment.get("gpu_plan") or {}
    gpu_entry = (assessment.get("resources") or {}).get("gpu_memory") or {}
    result = dict(candidate)
    result.update({
        "verdict": assessment.get("verdict") if state == "checked" else state,
        "status": "eligible",
        "rule": None,
        "reason": None,
        "reasons": [],
        "details": list(assessment.get("details") or []),
        "gpus_needed": assessment.get("gpus_needed"),
        "gpus_minimum": plan.get("gpus_minimum"),
        "gpu_plan": plan.get("description"),
        "gpu_memory_gb": sized.get("gpu_memory_gb", gpu_entry.get("required")),
        "method": sized.get("method"),
        "seed": sizing.seed_comparison(sized),
        "max_context_length": assessment.get("max_context_length", plan.get("max_context_length")),
        "notes": [],
        "rank": None,
        "in_band": _in_band(scen, candidate["params"]),
        "recommended_precision": recommended_precision(scen, candidate["precision"]),
    })
    if state == "missing":
        result["verdict"] = "unchecked"
    rules = []
    if not result["in_band"]:
        rules.append(("band", "%s is outside the %s scenario's size band (%s)" % (
            candidate["params_label"], scen["name"], scen["params_band"])))
    if state == "unreachable":
        rules.append(("unchecked", "host unreachable: %s" % (assessment.get("msg") or "no connection")))
    elif state == "skipped":
        rules.append(("unchecked", "not checked (skipped)"))
    elif state == "missing":
        rules.append(("unchecked", "not checked: the host did not report"))
    elif state == "failed":
        rules.append(("unchecked", "the check failed: %s" % (assessment.get("msg") or "no verdict")))
    else:
        problem = _capability_problem(candidate, assessment)
        if problem:
            rules.append(("capability", problem))
        if assessment["verdict"] == "insufficient":
            for text in _resource_reasons(assessment) if not problem else []:
                rules.append(("resources", text))
    if rules:
        result["status"] = "rejected"
        result["rule"] = rules[0][0]
        result["reason"] = rules[0][1]
        result["reasons"] = [text for _rule, text in rules]
    else:
        result["reason"] = _fit_reason(assessment, reserve)
        result["reasons"] = [result["reason"]]
    result["notes"].extend(assessment.get("warnings") or [])
    return result


def _sort_key(evaluation, gpu_class):
    """The preference tuple (lower is better), one element per PREFERENCES entry."""
    rank = PRECISION_RANK.get(evaluation["precision"], 0)
    if gpu_class == "consumer":
        class_key = (0 if evaluation["precision"] in LOW_PRECISIONS else 1, -rank)
    else:
        class_key = (0, -rank)
    gpus = evaluation["gpus_needed"]
    return (
        0 if evaluation["verdict"] == "fits" else 1,
        0 if evaluation["recommended_precision"] else 1,
        -evaluation["params"],
        class_key,
        gpus if isinstance(gpus, int) else 1 << 30,
        evaluation["index"],
    )


def _why_preferred(criterion, chosen, other, scen, gpu_class):
    """Plain words for why ``chosen`` beat ``other`` on ``criterion``."""
    if criterion == "verdict":
        return "it is only tight (no room for the reserve)"
    if criterion == "scenario_precision":
        return "%s is not a precision the %s scenario recommends (%s)" % (
            other["precision_label"], scen["name"], scen["precisions_label"])
    if criterion == "size":
        return "%s is a larger model than %s" % (chosen["params_label"], other["params_label"])
    if criterion == "gpu_class_precision":
        if gpu_class == "consumer":
            if chosen["precision"] in LOW_PRECISIONS and other["precision"] not in LOW_PRECISIONS:
                return "consumer GPUs take low precision (guide 6.2): %s rather than %s" % (
                    chosen["precision_label"], other["precision_label"])
            return "of the low precisions the more accurate one: %s rather than %s" % (
                chosen["precision_label"], other["precision_label"])
        return "%s take the highest precision that fits (guide 6.2): %s rather than %s" % (
            "data-centre GPUs" if gpu_class == "datacenter" else "these hosts", chosen["precision_label"],
            other["precision_label"])
    if criterion == "gpus":
        return "it needs %s GPU(s) where this one needs %s" % (other["gpus_needed"], chosen["gpus_needed"])
    return "the two are equal on every other criterion and %s is listed first (the list order is the operator's " \
        "preference)" % chosen["key"]


def _justify(chosen, eligible, rejected, scen, gpu_class):
    """``(summary, preferred_over)``: why the chosen candidate, and why it beat each other eligible one."""
    parts = ["%s (%s at %s) %s" % (chosen["key"], chosen["params_label"], chosen["precision_label"], chosen["reason"])]
    if scen is not None:
        band = "inside the %s scenario's band %s" % (scen["name"], scen["params_band"])
        if chosen["recommended_precision"]:
            parts.append("%s, at a precision it recommends (%s)" % (band, scen["precisions_label"]))
        else:
            parts.append("%s; no candidate at a precision it recommends (%s) can be used here" % (
                band, scen["precisions_label"]))
    siblings = [r for r in rejected if r["rule"] in ("resources", "capability") and r["params"] == chosen["params"]
                and r["family"] == chosen["family"]
                and PRECISION_RANK.get(r["precision"], 0) > PRECISION_RANK.get(chosen["precision"], 0)]
    if siblings and chosen["precision"] in LOW_PRECISIONS and chosen["params"] >= QUANTISE_FROM_PARAMS:
        parts.append("the higher-precision variant%s of the same model (%s) cannot be used here, and the guide (6.2) "
                     "quantises 32B+ models to INT8 to halve their GPU memory" % (
                         "s" if len(siblings) > 1 else "", ", ".join(r["key"] for r in siblings)))
    names = [name for name, _text in PREFERENCES]
    chosen_key = _sort_key(chosen, gpu_class)
    preferred_over = []
    for other in eligible:
        if other is chosen:
            continue
        other_key = _sort_key(other, gpu_class)
        for position, name in enumerate(names):
            if chosen_key[position] != other_key[position]:
                preferred_over.append({"key": other["key"], "criterion": name,
                                       "why": _why_preferred(name, chosen, other, scen, gpu_class)})
                break
    if rejected:
        parts.append("%d other candidate%s rejected" % (len(rejected), " was" if len(rejected) == 1 else "s were"))
    return "; ".join(parts) + ".", preferred_over


def rejection_lines(rejected):
    """``[{key, reason}]`` -> lines ``'key: reason'``, or one ``'every candidate: ...'`` when they all share a cause.

    The cause is a reason's first clause (before ';'): "no GPU found; the model needs 21.0 GB" and "no GPU found; the
    model needs 96.0 GB" share "no GPU found".
    """
    heads = set(item["reason"].split(";")[0] for item in rejected)
    if len(rejected) > 1 and len(heads) == 1:
        return ["every candidate: %s" % heads.pop()]
    return ["%s: %s" % (item["key"], item["reason"]) for item in rejected]


def _judge_all(candidates, judge):
    if callable(judge):
        return [judge(candidate) for candidate in candidates]
    if isinstance(judge, dict):
        return [judge.get(c["key"], judge.get(c["model"])) for c in candidates]
    if isinstance(judge, (list, tuple)):
        if len(judge) != len(candidates):
            raise SizingInputError("assessments", "%d item(s)" % len(judge),
                                   "one assessment per candidate (%d)" % len(candidates))
        return list(judge)
    raise SizingInputError("assessments", judge, "a list (one per candidate), a dict by candidate or a callable")


def select(candidates, judge, scenario=None, reserve=sizing.DEFAULT_RESERVE, default_precision=None):
    """Choose a candidate for one host.

    ``judge`` gives each candidate's assessment on the host (a ``capacity.assess`` or ``capacity_check`` result): a
    callable taking the normalised candidate, a list in candidate order, or a dict keyed by candidate key or model id.
    An assessment may also be ``{"unreachable": true, "msg": ...}``, ``{"failed": true, "msg": ...}`` or None.

    Returns ``{chosen, chosen_model, chosen_candidate, justification, ranked, rejected, evaluations, scenario,
    gpu_class, verdict}``; ``chosen`` is the candidate key (None when nothing can be used).
    """
    normalised = normalize_candidates(candidates, default_precision)
    scen = scenario_summary(scenario)
    assessments = _judge_all(normalised, judge)
    evaluations = []
    gpu_class = "unknown"
    for index, (candidate, assessment) in enumerate(zip(normalised, assessments)):
        evaluation = evaluate(candidate, assessment, scen, reserve)
        evaluation["index"] = index
        evaluations.append(evaluation)
        if gpu_class == "unknown" and _assessment_state(assessment) == "checked":
            gpu_class = host_gpu_class(assessment.get("hardware"), assessment.get("target", "gpu"))
    sized = [a["sizing"] for a in assessments if isinstance(a, dict) and isinstance(a.get("sizing"), dict)]
    if sized and sized[0].get("reserve") is not None:
        reserve = sized[0]["reserve"]
    eligible = sorted((e for e in evaluations if e["status"] == "eligible"), key=lambda e: _sort_key(e, gpu_class))
    rejected = [e for e in evaluations if e["status"] == "rejected"]
    for position, evaluation in enumerate(eligible):
        evaluation["rank"] = position + 1
    chosen = eligible[0] if eligible else None
    if chosen:
        chosen["status"] = "chosen"
        summary, preferred_over = _justify(chosen, eligible, rejected, scen, gpu_class)
        justification = summary
        if preferred_over:
            justification += " Preferred over %s." % "; over ".join(
                "%s because %s" % (item["key"], item["why"]) for item in preferred_over)
        verdict = chosen["verdict"]
    else:
        states = set(e["verdict"] for e in evaluations)
        if states <= {"unreachable"}:
            verdict = "unreachable"
        elif states <= {"failed", "unreachable", "unchecked", "skipped"}:
            verdict = "failed"
        else:
            verdict = "insufficient"
        summary = "No candidate can be used on this host."
        preferred_over = []
        justification = "No candidate can be used on this host: %s." % "; ".join(
            rejection_lines([{"key": e["key"], "reason": e["reason"]} for e in rejected]))
    return {
        "chosen": chosen["key"] if chosen else None,
        "chosen_model": chosen["model"] if chosen else None,
        "chosen_candidate": chosen,
        "justification": justification,
        "summary": summary,
        "preferred_over": preferred_over,
        "verdict": verdict,
        "reserve": reserve,
        "ranked": [e["key"] for e in eligible],
        "rejected": [{"key": e["key"], "rule": e["rule"], "reason": e["reason"]} for e in rejected],
        "evaluations": evaluations,
        "scenario": scen,
        "gpu_class": gpu_class,
    }


def hardware_judge(hardware, reserve=sizing.DEFAULT_RESERVE, gpus_per_node=sizing.DEFAULT_GPUS_PER_NODE,
                   target="gpu", method="seed"):
    """A judge for ``select`` that sizes each candidate and assesses it against declared ``hardware`` (no probing).

    ``method`` is the sizing method (``auto``: ``detailed`` for candidates with a ``config``, else ``seed``). Each
    candidate is sized the one way capacity_check sizes it (``sizing.size_model_options``), for ``target``: a CPU
    target gets its CPU plan (host RAM and cores, no GPU figure). Bad input for one candidate becomes a failed
    assessment (a rejection with its reason), not an exception.
    """
    capacity.normalize_hardware(hardware)  # bad hardware is an error of the call, not of each candidate

    def judge(candidate):
        options = {"method": method, "reserve": reserve, "target": target}
        for key in ("model", "params", "precision", "config", "config_path", "weights"):
            options[key] = candidate.get(key)
        try:
            sized = sizing.size_model(**sizing.size_model_options(options))
            result = capacity.assess(sized, hardware, reserve=reserve, gpus_per_node=gpus_per_node, target=target)
        except (SizingInputError, OSError, ValueError) as exc:
            return {"failed": True, "msg": str(exc)}
        result["sizing"] = sized
        return result
    return judge


def rules_text():
    """The rules as numbered sentences, for reports."""
    return {
        "rejections": ["%s: %s" % (name, text) for name, text in REJECTION_RULES],
        "preferences": ["%s: %s" % (name, text) for name, text in PREFERENCES],
    }


def loop_items(registered):
    """The per-candidate results of a registered loop over candidates (``{"results": [...]}`` or the list itself).

    Returns None when there is no such result (the loop did not run: a one-model preflight).
    """
    items = registered.get("results") if isinstance(registered, dict) else registered
    if not isinstance(items, (list, tuple)) or not items:
        return None
    if not all(isinstance(item, dict) and isinstance(item.get("item"), dict) for item in items):
        return None
    return list(items)


def select_from_results(items, scenario=None, reserve=sizing.DEFAULT_RESERVE):
    """``select`` over a registered loop: each result carries its candidate under ``item``.

    Adds ``assessment``: the chosen candidate's own result (what a one-model check would have returned for it), or,
    when nothing was chosen, ``{verdict, gpus_needed: None, reasons}`` saying why.
    """
    selection = select([item["item"] for item in items], list(items), scenario=scenario, reserve=reserve)
    if selection["chosen_candidate"] is not None:
        selection["assessment"] = items[selection["chosen_candidate"]["index"]]
    else:
        selection["assessment"] = {"verdict": selection["verdict"], "gpus_needed": None, "gpu_plan": None,
                                   "reasons": rejection_lines(selection["rejected"])}
    return selection


def check_specs(candidates, hub=None):
    """Normalised candidates -> what capacity_check's ``candidates`` option takes (``CHECK_KEYS``), built once on
    the controller.

    ``hub`` maps a model id to its ``modelscope_info`` result: the candidate gets that model's ``config``, ``weights``
    and download size (``disk_required_bytes``) unless it has a config or config_path of its own.
    """
    specs = []
    for candidate in candidates:
        spec = dict((key, candidate.get(key)) for key in CHECK_KEYS)
        info = (hub or {}).get(candidate.get("model")) if candidate.get("model") else None
        if isinstance(info, dict):
            if spec["config"] is None and spec["config_path"] is None:
                spec["config"] = info.get("config") or None
                if spec["weights"] is None:
                    spec["weights"] = info.get("weights") or None
            if spec["disk_required_bytes"] is None:
                spec["disk_required_bytes"] = info.get("download_bytes")
        specs.append(dict((key, value) for key, value in spec.items() if value is not None))
    return specs


def single_selection(result, scenario=None):
    """The selection of a one-model check: the model is chosen where it can be deployed (fits or tight).

    ``result`` is a ``capacity.assess``/``capacity_check`` result with its ``sizing``; None when it has none. A model
    given alone is checked as given: the scenario's band chooses among candidates, so a model outside it gets a note,
    not a rejection (the console, Markdown, HTML and JSON then agree on what can be deployed).
    """
    if not isinstance(result, dict) or not isinstance(result.get("sizing"), dict):
        return None
    sized = result["sizing"]
    info = sized.get("model_info") or {}
    # The precision came with the model (its name, or the one precision given for it): the key is the model id.
    candidate = {"model": sized.get("model"), "params": sized["params"], "precision": sized["precision"],
                 "precision_source": "name" if info.get("precision") == sized["precision"] else "default"}
    scen = scenario_summary(scenario) if scenario else None
    selection = select([candidate], [result], scenario=None, reserve=sized.get("reserve", sizing.DEFAULT_RESERVE))
    selection["scenario"] = scen
    if scen is not None:
        for evaluation in selection["evaluations"]:
            evaluation["in_band"] = _in_band(scen, candidate["params"])
            evaluation["recommended_precision"] = recommended_precision(scen, candidate["precision"])
            if not evaluation["in_band"]:
                evaluation["notes"].append(
                    "%s is outside the %s scenario's size band (%s); a model given alone is checked as given (the "
                    "band chooses among candidates)" % (evaluation["params_label"], scen["name"], scen["params_band"]))
    return selection


def compact_selection(selection):
    """A selection without what the report does not read twice (each evaluation's free text stays)."""
    result = dict(selection)
    result.pop("assessment", None)
    return result


def check_candidates(specs, hardware, size_options, reserve=sizing.DEFAULT_RESERVE,
                     gpus_per_node=sizing.DEFAULT_GPUS_PER_NODE, target="gpu", scenario=None,
                     disk_required_bytes=None):
    """Judge every candidate against one host's hardware (probed once) and choose one: what capacity_check returns.

    ``specs`` are candidates (``CHECK_KEYS``); ``size_options`` the shared sizing options (method, context_length,
    ...), each candidate's model, params, precision, config, config_path and weights put over them. A candidate that
    cannot be sized is rejected with the reason (``unchecked``), it does not stop the others.

    Returns the chosen candidate's assessment (or, when none is chosen, the verdict and the reasons of the
    rejections) with ``selection`` (as ``select`` returns it), ``verdicts`` (candidate key -> verdict) and
    ``warnings`` (each once).
    """
    normalised = normalize_candidates(specs)
    assessments = []
    warnings = []
    for candidate in normalised:
        options = dict(size_options)
        for key in ("model", "params", "precision", "config", "config_path", "weights"):
            options[key] = candidate.get(key)
        try:
            sized = sizing.size_model(**sizing.size_model_options(options))
            needed = candidate.get("disk_required_bytes")
            assessment = capacity.assess(sized, hardware, reserve=reserve, gpus_per_node=gpus_per_node,
                                         target=target,
                                         disk_required_bytes=disk_required_bytes if needed is None else needed)
        except (SizingInputError, OSError, ValueError) as exc:
            assessments.append({"failed": True, "msg": str(exc), "key": candidate["key"]})
            continue
        assessment["sizing"] = sized
        for warning in assessment.pop("warnings") + list(sized.get("sizing_warnings") or []):
            if warning not in warnings:
                warnings.append(warning)
        assessments.append(assessment)
    selection = select(normalised, assessments, scenario=scenario, reserve=reserve)
    for evaluation in selection["evaluations"]:
        # The config.json and header summaries were inputs; every host would return them again.
        evaluation["config"] = None
        evaluation["weights"] = None
    chosen = selection["chosen_candidate"]
    if chosen is not None:
        result = dict(assessments[chosen["index"]])
    else:
        result = {"verdict": selection["verdict"], "gpus_needed": None, "gpu_plan": None, "resources": {},
                  "reasons": rejection_lines(selection["rejected"]), "details": [], "sizing": None,
                  "hardware": capacity.normalize_hardware(hardware), "target": target}
    result["selection"] = selection
    result["verdicts"] = dict((e["key"], e["verdict"]) for e in selection["evaluations"])
    result["warnings"] = warnings
    return result


# capacity_check's options, as data: the shared model/sizing options (sizing.model_spec_argument_spec) and its own.
# The module and the controller-side capacity_plan filter validate with the same spec.
FAIL_LEVELS = {"insufficient": ("insufficient",), "tight": ("tight", "insufficient"), "never": ()}
# Hardware parts, as capacity_check's hardware option declares them, and how a missing one is named.
HARDWARE_PARTS = (("gpus", "gpus (or gpu_model and gpu_count)"), ("memory_total_mib", "memory_total_mib (host RAM)"),
                  ("cpu_cores", "cpu_cores"), ("disk_free_mib", "disk_free_mib (free disk)"))


def pick_calibration(calibrations, gpus):
    """Of the constants measured on several GPUs (llmops.deploy.calibration_lookup_all), the ones measured on the GPU
    this host plans on (its first GPU: the same model, whatever its spelling - 'RTX 4090' declared, 'NVIDIA GeForce
    RTX 4090' from nvidia-smi - and the same nvidia-smi MiB); None when none was."""
    first = (gpus or [None])[0]
    if not calibrations or not isinstance(first, dict):
        return None
    name = gpu_catalog.canonical_name(first.get("name"))
    for constants in calibrations:
        if gpu_catalog.canonical_name(constants.get("gpu")) == name and constants.get(
                "memory_total_mib") == first.get("memory_total_mib"):
            return constants
    return None


def undeclared_parts(declared, target):
    """The hardware parts a check without probing lacks, named as the hardware option declares them."""
    return [label for key, label in HARDWARE_PARTS if declared.get(key) is None and (key != "gpus" or target == "gpu")]


def judge_host(options, probe=None):
    """capacity_check's work for one host: size, probe once, judge the model or every candidate (and choose).

    ``options`` are capacity_check's validated options. ``probe`` is a callable taking the declared parts and
    returning ``(hardware, probed, gpu_source, warnings)`` with the missing parts measured; None means no probing:
    a part not declared is then an error naming it (never measured where this code happens to run).
    Returns ``(result, warnings)``; raises SizingInputError for bad input.
    """
    p = options
    sized = None
    specs = None
    if p.get("scenario"):
        scenario_summary(p["scenario"])  # an unknown scenario fails here, naming the accepted ones
    if p.get("candidates"):
        # Names are read before the host is: a candidate that cannot be read fails the check, naming it.
        specs = normalize_candidates(p["candidates"])
    else:
        sized = sizing.size_model(**sizing.size_model_options(p))
    declared = capacity.normalize_hardware(check_spec.declared_hardware(p.get("hardware")))
    # Keep only what was declared, so the rest is probed.
    declared = dict((k, v) for k, v in declared.items() if v is not None)
    if probe is None:
        missing = undeclared_parts(declared, p["target"])
        if missing:
            raise SizingInputError(
                "hardware", p.get("hardware") or {}, "every part declared when probe=false",
                "not declared: %s; declare them (the preflight role: preflight_hardware, or llmops_declared_hardware "
                "in the inventory) or let the host be probed" % ", ".join(missing))
        hardware, probed, gpu_source, warnings = dict(declared), [], None, []
        hardware.setdefault("disk_path", p["model_dir"])
    else:
        hardware, probed, gpu_source, warnings = probe(declared)
    if p.get("hardware") and p["hardware"].get("disk_path"):
        hardware["disk_path"] = p["hardware"]["disk_path"]
    measured = None if p.get("calibration") else pick_calibration(p.get("calibrations"), hardware.get("gpus"))
    if measured:
        # What earlier trials measured on this GPU replaces the modelled constants (said so in the plan).
        p = dict(p, calibration=measured)
        if sized is not None:
            sized = sizing.size_model(**sizing.size_model_options(p))
    if specs is not None:
        result = check_candidates(specs, hardware, p, reserve=p["reserve"], gpus_per_node=p["gpus_per_node"],
                                  target=p["target"], scenario=p.get("scenario"),
                                  disk_required_bytes=p.get("disk_required_bytes"))
    else:
        result = capacity.assess(sized, hardware, reserve=p["reserve"], gpus_per_node=p["gpus_per_node"],
                                 target=p["target"], disk_required_bytes=p.get("disk_required_bytes"))
        result["warnings"] += list(sized.get("sizing_warnings") or [])
        result["sizing"] = sized
        result["selection"] = single_selection(result, p.get("scenario"))
    warnings = list(warnings) + result.pop("warnings")
    result.update(probed=probed, gpu_source=gpu_source)
    return result, warnings


def fails(result, fail_on):
    """Does ``fail_on`` (insufficient, tight, never) fail a host with this result?"""
    return result.get("verdict") in FAIL_LEVELS[fail_on]


def failure_message(result):
    """Why fail_on fails the host, in one line."""
    sized = result.get("sizing")
    selection = result.get("selection") or {}
    if sized:
        what = selection.get("chosen") if len(selection.get("evaluations") or []) > 1 else None
        what = what or "%s at %s" % (sized["model"] or sized["params_label"], sized["precision_label"])
        return "%s is %s on this host: %s" % (what, result["verdict"], "; ".join(result["reasons"]))
    return "no candidate can be used on this host (%s): %s" % (result["verdict"], "; ".join(result["reasons"]))
