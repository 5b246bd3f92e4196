# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""vLLM's ``serve`` arguments for one model on one host, derived from the plan preflight made for that host.

Pure functions, standard library only (runs on targets with Python >= 3.8). The plan is what
``llmops.deploy.capacity_check`` returns with ``method: detailed`` (the preflight role's ``preflight_result``):
``target``, ``gpu_plan`` (TP, PP, nodes, largest context that fits, concurrency that fits), ``sizing`` (precision,
KV-cache dtype, context asked for, planned concurrency, weights, KV bytes per token) and ``hardware`` (the GPUs with
their compute capability). The model's ``config.json`` gives the attention layout the engine will check.

Every argument carries its ``source``:

* ``plan``     - derived from the host's plan (or, for the CPU KV space, from the plan's figures);
* ``override`` - set by the caller (``overrides`` or ``extra_args``);
* ``default``  - this collection's default (host, port, --enforce-eager on CPU);
* ``engine``   - not passed: vLLM decides (its default, or what it reads from the model's config.json).

A plan the engine cannot run raises EngineArgsError before any argument is rendered: a plan spread over several
nodes, a tensor-parallel size that does not divide the attention heads (or the KV heads), more GPUs than the host has,
FP8 weights or KV cache on a GPU below compute capability 8.9, a low-bit plan for an unquantised checkpoint.
``PARSER_CHECK_SCRIPT`` then lets vLLM's own argument parser (from the installed engine) read the rendered argv.
"""

import json
import math

from ansible_collections.llmops.deploy.plugins.module_utils import (
    architecture, detailed_sizing, engine_memory, precision, sizing)
from ansible_collections.llmops.deploy.plugins.module_utils.sizing_errors import SizingInputError

GIB = 2 ** 30
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
SOURCES = ("plan", "override", "default", "engine")
TARGETS = ("cpu", "gpu")

# The arguments derived here, in argv order: name -> (flag, kind). 'flag' kinds are present when true.
ARGUMENTS = (
    ("served_model_name", "--served-model-name", "value"),
    ("host", "--host", "value"),
    ("port", "--port", "value"),
    ("tensor_parallel_size", "--tensor-parallel-size", "value"),
    ("pipeline_parallel_size", "--pipeline-parallel-size", "value"),
    ("max_model_len", "--max-model-len", "value"),
    ("gpu_memory_utilization", "--gpu-memory-utilization", "value"),
    ("kv_cache_dtype", "--kv-cache-dtype", "value"),
    ("quantization", "--quantization", "value"),
    ("dtype", "--dtype", "value"),
    ("max_num_seqs", "--max-num-seqs", "value"),
    ("enforce_eager", "--enforce-eager", "flag"),
)
ARGUMENT_NAMES = tuple(name for name, _flag, _kind in ARGUMENTS)
FLAGS = dict((name, flag) for name, flag, _kind in ARGUMENTS)

# Flags never accepted in extra_args: secrets on a command line, and what the service itself decides.
FORBIDDEN_EXTRA = ("--api-key", "--model", "--config")

# bf16 checkpoints on the CPU target: vLLM 0.32.0 picks an AMX attention kernel for bf16 on CPUs that report AMX,
# and on the project's VMs its worker dies with SIGILL on the first request after a healthy start
# (tests/fixtures/vllm_logs/cpu/qwen2-tiny-bf16-sigill.log); float16 has the same 2 bytes per element (the same KV
# cache in tokens) and runs. Override dtype (bfloat16, auto) on hosts where bf16 works.
CPU_BF16_DTYPE = "float16"
CPU_BF16_DETAIL = ("bf16 checkpoint served at float16 on the CPU backend: vLLM 0.32.0's bf16 (AMX) attention kernel "
                   "dies with SIGILL on the first request on CPUs whose AMX it cannot use; same 2 bytes per element")

# The plan's KV-cache dtype (plugins/module_utils/sizing.py KV_CACHE_DTYPE_CHOICES) -> vLLM's --kv-cache-dtype.
KV_CACHE_DTYPES = {"fp8": "fp8", "fp8_e4m3": "fp8_e4m3", "fp8_e5m2": "fp8_e5m2", "fp16": "float16",
                   "bf16": "bfloat16"}

# Stdlib-only script run with the engine venv's python: argv (JSON) -> vLLM's own `vllm serve` parser. Prints one
# line 'LLMOPS-ENGINE-PARSER <json>': {"ok": bool, "error": str, "version": str, "parsed": {dest: value}}.
PARSER_CHECK_SCRIPT = r'''
import json
import sys

MARK = "LLMOPS-ENGINE-PARSER "
argv = json.loads(sys.argv[1])
dests = json.loads(sys.argv[2])
out = {"ok": False, "error": None, "version": None, "parsed": {}}


def done():
    sys.stdout.write("\n" + MARK + json.dumps(out) + "\n")
    sys.exit(0)


try:
    import vllm
    try:
        from vllm.utils.argparse_utils import FlexibleArgumentParser
    except ImportError:
        from vllm.utils import FlexibleArgumentParser
    try:
        from vllm.entrypoints.launchers.cli_args import make_arg_parser
    except ImportError:
        from vllm.entrypoints.openai.cli_args import make_arg_parser
    out["version"] = getattr(vllm, "__version__", None)
    parser = make_arg_parser(FlexibleArgumentParser(prog="vllm serve"))
except Exception as exc:  # the engine itself cannot be imported: say so
    out["error"] = "cannot load vLLM's argument parser: %s: %s" % (type(exc).__name__, exc)
    done()


class Refused(Exception):
    pass


def refuse(message):
    raise Refused(message)


parser.error = refuse
try:
    namespace = parser.parse_args(argv)
except Refused as exc:
    out["error"] = str(exc)
    done()
except SystemExit as exc:
    out["error"] = "vLLM's parser exited with status %s" % exc.code
    done()
values = vars(namespace)
for dest in dests:
    value = values.get(dest, None)
    if isinstance(value, (list, tuple)) and all(isinstance(x, (str, int, float, bool)) for x in value):
        value = list(value)
    elif not (isinstance(value, (str, int, float, bool)) or value is None):
        value = str(value)
    out["parsed"][dest] = value
out["ok"] = True
done()
'''
PARSER_MARK = "LLMOPS-ENGINE-PARSER "

# Stdlib-only script run with the engine venv's python: what the parser check depends on, read without importing vLLM
# (a fraction of a second where importing the parser takes seconds). Prints 'LLMOPS-ENGINE-FINGERPRINT <json>': the
# interpreter, and the name, version and sha256 of the RECORD (the installed files and their hashes) of every installed
# distribution named vllm or vllm-*.
ENGINE_FINGERPRINT_SCRIPT = r"""
import hashlib
import json
import sys
from importlib import metadata

found = {}
for dist in metadata.distributions():
    name = (dist.metadata["Name"] or "").lower().replace("_", "-")
    if name == "vllm" or name.startswith("vllm-"):
        record = dist.read_text("RECORD") or ""
        found[name] = [dist.version, hashlib.sha256(record.encode("utf-8")).hexdigest()]
sys.stdout.write("\nLLMOPS-ENGINE-FINGERPRINT " + json.dumps({"python": sys.executable, "distributions": found},
                                                              sort_keys=True) + "\n")
"""
FINGERPRINT_MARK = "LLMOPS-ENGINE-FINGERPRINT "
# The largest parser record read back (a record is a few KiB).
PARSER_RECORD_MAX_BYTES = 1024 * 1024


class EngineArgsError(SizingInputError):
    """A plan, option or override the engine cannot run; ``str()`` names the field, the value and what is accepted."""


def _arg(name, value, source, detail):
    if source not in SOURCES:
        raise ValueError("unknown source %r" % source)
    return {"name": name, "flag": FLAGS.get(name, name), "value": value, "source": source, "detail": detail}


def _positive_int(field, value, what):
    if isinstance(value, bool):
        raise EngineArgsError(field, value, what)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or value < 1:
        raise EngineArgsError(field, value, what)
    return value


def _check_plan(plan):
    if not isinstance(plan, dict) or not plan:
        raise EngineArgsError("plan", plan, "the host's plan: the result of llmops.deploy.capacity_check with method "
                              "detailed (the preflight role's preflight_result)")
    sized = plan.get("sizing")
    if not isinstance(sized, dict) or sized.get("method") != "detailed":
        raise EngineArgsError("plan.sizing.method", (sized or {}).get("method") if isinstance(sized, dict) else sized,
                              "'detailed': engine arguments and expected figures need the model's architecture "
                              "(capacity_check with method detailed and the model's config)")
    for key in ("context_length", "concurrency", "precision", "requirements_bytes"):
        if key not in sized:
            raise EngineArgsError("plan.sizing.%s" % key, None, "present in a detailed sizing result")
    return sized


def _require(sized, keys, target):
    for key in keys:
        if sized.get(key) is None:
            raise EngineArgsError("plan.sizing.%s" % key, None, "present in a detailed sizing result for the %s "
                                  "target (plan the host with that target)" % target)


def resolve_target(plan, target=None):
    """``cpu`` or ``gpu``: asked for, else the plan's target, else gpu when the plan has a GPU plan."""
    if target in (None, ""):
        target = plan.get("target") or ("gpu" if plan.get("gpu_plan") else "cpu")
    if target not in TARGETS:
        raise EngineArgsError("target", target, "one of %s" % ", ".join(TARGETS))
    return target


def _check_overrides(overrides):
    overrides = dict(overrides or {})
    unknown = sorted(k for k in overrides if k not in ARGUMENT_NAMES)
    if unknown:
        raise EngineArgsError("overrides", unknown, "keys among %s (other flags go in extra_args)" % ", ".join(
            ARGUMENT_NAMES))
    return dict((k, v) for k, v in overrides.items() if v is not None and v != "")


def _check_extra_args(extra_args, derived_flags):
    extra = list(extra_args or [])
    for item in extra:
        if not isinstance(item, str) or not item:
            raise EngineArgsError("extra_args", item, "a list of non-empty strings (flags and their values)")
        flag = item.split("=", 1)[0]
        if flag in FORBIDDEN_EXTRA:
            why = "the role sets the model itself"
            if flag == "--api-key":
                why = "the API key goes in the service's EnvironmentFile (model_serve_api_key), never on a command line"
            raise EngineArgsError("extra_args", flag, "no %s: %s" % (flag, why))
        if flag in derived_flags:
            raise EngineArgsError("extra_args", flag, "a flag the role does not derive; set %s through overrides "
                                  "(key %s) so its source is reported" % (flag, derived_flags[flag]))
    return extra


def _gpu_support(gpus, name, field, value, accepted):
    """Raise naming ``field`` when a GPU of the host cannot run precision ``name`` (``accepted`` says what would be);
    return warnings for GPUs that did not say."""
    warnings = []
    for gpu in gpus or []:
        ok, reason = precision.hardware_support(name, gpu.get("vendor"), gpu.get("compute_capability"),
                                                gpu.get("arch"))
        if ok is False:
            raise EngineArgsError(field, value, "%s: %s (GPU %s, %s)" % (
                accepted, reason, gpu.get("index", "?"), gpu.get("name") or "unknown"))
        if ok is None:
            warnings.append("%s: %s" % (field, reason))
    return warnings


def _fp8_support(gpus, what):
    """Raise when a GPU of the host cannot run FP8; return warnings for GPUs that did not say."""
    return _gpu_support(gpus, "fp8", what, "fp8", "a GPU that runs FP8")


def _bf16_dtype_check(gpus):
    """An override of --dtype: bfloat16 on a GPU below compute capability 8.0 (V100, T4) is refused here, as vLLM
    would refuse it at start-up (its own "auto" falls back to float16 there by itself)."""
    def check(value):
        if str(value).strip().lower() in ("bfloat16", "bf16"):
            _gpu_support(gpus, "bf16", "overrides.dtype", value, "float16, half or auto on this host")
        return value
    return check


def _quantization(facts, sized, target):
    """(value or None, source, detail) for --quantization."""
    quant = facts.get("quantization")
    want = sized["precision"]
    if quant and quant.get("method"):
        return None, "engine", ("the checkpoint is %s (config.json quantization_config); vLLM reads the format "
                                "from it and picks the fastest kernel for the GPU (e.g. awq_marlin, gptq_marlin), "
                                "which a forced --quantization would disable" % quant["method"])
    if want == "fp8":
        if target == "cpu":
            raise EngineArgsError("plan.sizing.precision", want, "the checkpoint's own precision on the CPU target "
                                  "(vLLM's CPU backend does not quantise a checkpoint to FP8 on load)")
        return "fp8", "plan", "FP8 planned for an unquantised checkpoint: vLLM quantises the weights on load"
    if want in ("int8", "int4"):
        raise EngineArgsError("plan.sizing.precision", want, "a precision the checkpoint is stored at: it has no "
                              "quantization_config, so vLLM would load it at 16 bits, not %s; deploy a quantised "
                              "variant (AWQ, GPTQ, INT8) or plan at the checkpoint's precision" % want.upper())
    return None, "engine", "unquantised checkpoint served at its own dtype"


def _kv_dtype(sized, overrides):
    if "kv_cache_dtype" in overrides:
        return overrides["kv_cache_dtype"], "override", "set by the caller"
    planned = str(sized.get("kv_cache_dtype") or "auto")
    value = KV_CACHE_DTYPES.get(planned.split(" ", maxsplit=1)[0])
    if value is None:
        return None, "engine", "the model's activation dtype (vLLM's auto), as planned"
    return value, "plan", "planned KV-cache dtype %s" % planned


def _gpu_expected(sized, gpu_plan, tp, pp, max_model_len, max_num_seqs, eager=False):
    """Weights per GPU, KV-cache tokens and maximum concurrency vLLM should report for this configuration.

    The budget and the engine's parts (activation peak, non-torch memory, CUDA graphs) are detailed_sizing's
    ``engine_parts`` for the GPU the plan was made on: the same budget the plan judged the host with, evaluated at
    the ``--max-model-len`` and ``--max-num-seqs`` the engine is started with (they set its profiling batch);
    with ``--enforce-eager`` no CUDA graph is captured, so none is counted.
    """
    inputs = sized["plan_inputs"]
    gpu_mib = gpu_plan["per_gpu_memory_mib"]
    gpu_name = gpu_plan.get("gpu_name")
    eng = detailed_sizing.engine_parts(inputs, tp, pp, gpu_mib, gpu_name, context_length=max_model_len,
                                       max_num_seqs=max_num_seqs)
    room = eng["room"]
    overhead = eng["overhead"] - (room["cuda_graph_in_budget_bytes"] if eager else 0)
    weights = detailed_sizing.per_gpu_requirement(inputs, tp, pp, 0, 1)["weights"]
    per_token = detailed_sizing.kv_bytes(inputs["kv"], 1, tp, pp)
    kv_room = max(0, eng["budget"] - weights - eng["activations"] - overhead)
    tokens = engine_memory.kv_tokens(kv_room, per_token)
    return {
        "weights_bytes": sized["requirements_bytes"]["param_memory"],
        "weights_bytes_per_gpu": weights,
        "kv_cache_bytes_per_gpu": int(kv_room),
        "kv_cache_bytes_per_token_per_gpu": int(math.ceil(per_token)),
        "kv_cache_tokens": tokens,
        "max_model_len": max_model_len,
        "max_concurrency": round(float(tokens) / max_model_len, 2) if max_model_len else None,
        "engine_memory": {
            "engine_version": room["engine_version"],
            "budget_bytes": eng["budget"],
            "activation_bytes": eng["activations"],
            "overhead_bytes": overhead,
            "max_num_batched_tokens": room["max_num_batched_tokens"],
            "max_num_seqs": room["max_num_seqs"],
        },
        "basis": ("vLLM %s on one GPU of TP %d x PP %d: %.2f GiB the engine sees x gpu_memory_utilization %s - "
                  "weights - activation peak (profiling batch of %d tokens, %d sequences) - non-torch%s memory, "
                  "in whole 16-token blocks of the KV bytes one token takes on that GPU "
                  "(detailed_sizing.engine_parts, the plan's own budget)" % (
                      room["engine_version"], tp, pp, room["torch_total_bytes"] / float(GIB),
                      inputs["gpu_memory_utilization"], room["max_num_batched_tokens"], room["max_num_seqs"],
                      "" if eager or not room["cuda_graph_in_budget_bytes"] else " and CUDA graph")),
    }


def derive(plan, config, model_path, served_model_name, target=None, host=DEFAULT_HOST, port=DEFAULT_PORT,
           enforce_eager=None, cpu_kvcache_space_gib=None, overrides=None, extra_args=None):
    """The engine's arguments for one model on one host.

    Returns ``{'target', 'args', 'argv', 'env', 'expected', 'warnings'}``: ``args`` a list of
    ``{name, flag, value, source, detail}`` (passed or not: ``value`` None means the flag is not on the command line),
    ``argv`` what follows ``vllm serve`` (the model directory first), ``env`` the engine's environment (no secrets).
    """
    sized = _check_plan(plan)
    target = resolve_target(plan, target)
    if not isinstance(model_path, str) or not model_path.startswith("/"):
        raise EngineArgsError("model_path", model_path, "the absolute path of the model directory on the host")
    if not isinstance(served_model_name, str) or not served_model_name.strip() or any(
            c.isspace() for c in served_model_name):
        raise EngineArgsError("served_model_name", served_model_name, "a non-empty name without blanks")
    overrides = _check_overrides(overrides)
    facts = architecture.parse_config(config)
    max_pos = facts.get("max_position_embeddings")
    warnings = []
    args = []

    def pick(name, planned, source, detail, check=None):
        if name in overrides:
            value = overrides[name]
            if check:
                value = check(value)
            args.append(_arg(name, value, "override", "set by the caller (%s: %s)" % (source, detail)
                             if planned is not None else "set by the caller"))
            return value
        args.append(_arg(name, planned, source, detail))
        return planned

    plan_model = sized.get("model")
    pick("served_model_name", served_model_name,
         "plan" if served_model_name == plan_model else "default",
         "the planned model's id" if served_model_name == plan_model else "model_serve_served_model_name")
    pick("host", host, "default" if host == DEFAULT_HOST else "override",
         "loopback only" if host == DEFAULT_HOST else "model_serve_host")
    port = _positive_int("port", port, "a TCP port from 1 to 65535")
    if port > 65535:
        raise EngineArgsError("port", port, "a TCP port from 1 to 65535")
    pick("port", port, "default" if port == DEFAULT_PORT else "override",
         "vLLM's usual port" if port == DEFAULT_PORT else "model_serve_port")

    concurrency = _positive_int("plan.sizing.concurrency", sized["concurrency"], "a positive integer")
    env = {}

    def pick_context_and_formats(planned_len, len_detail):
        """--max-model-len (capped at the model's max_position_embeddings), --kv-cache-dtype, --quantization."""
        if max_pos and planned_len > max_pos:
            planned_len = max_pos
        max_len = pick("max_model_len", planned_len, "plan", len_detail,
                       lambda v: _positive_int("overrides.max_model_len", v, "a positive integer"))
        kv_value, kv_source, kv_detail = _kv_dtype(sized, overrides)
        args.append(_arg("kv_cache_dtype", kv_value, kv_source, kv_detail))
        quant, q_source, q_detail = _quantization(facts, sized, target)
        pick("quantization", quant, q_source, q_detail)
        return max_len, kv_value

    if target == "gpu":
        _require(sized, ("plan_inputs", "kv_cache_per_token_bytes"), target)
        gpu_plan = plan.get("gpu_plan")
        if not isinstance(gpu_plan, dict) or not gpu_plan.get("tensor_parallel_size"):
            raise EngineArgsError("plan.gpu_plan", (gpu_plan or {}).get("description") if isinstance(
                gpu_plan, dict) else gpu_plan, "a GPU plan with a configuration that fits this host (preflight "
                "verdict fits or tight); for CPU inference set target cpu")
        nodes = gpu_plan.get("nodes") or 1
        if nodes > 1:
            raise EngineArgsError("plan.gpu_plan.nodes", nodes, "1: this plan needs %d GPUs across %d nodes (tensor "
                                  "parallel %s x pipeline parallel %s); multi-node serving is out of scope, choose a "
                                  "smaller or more quantised model, or hosts with more GPUs" % (
                                      gpu_plan.get("gpus") or 0, nodes, gpu_plan.get("tensor_parallel_size"),
                                      gpu_plan.get("pipeline_parallel_size")))
        tp = pick("tensor_parallel_size", gpu_plan["tensor_parallel_size"], "plan", "the GPU plan's TP group",
                  lambda v: _positive_int("overrides.tensor_parallel_size", v, "a positive integer"))
        pp = pick("pipeline_parallel_size", gpu_plan.get("pipeline_parallel_size") or 1, "plan",
                  "the GPU plan's pipeline stages",
                  lambda v: _positive_int("overrides.pipeline_parallel_size", v, "a positive integer"))
        heads, kv_heads = facts["num_attention_heads"], facts["num_key_value_heads"]
        if heads % tp:
            raise EngineArgsError("tensor_parallel_size", tp, "a divisor of the model's %d attention heads (valid: "
                                  "%s)" % (heads, ", ".join(str(d) for d in range(1, heads + 1) if heads % d == 0
                                                            and d <= 64)))
        if facts["attention"] != "mla" and tp % kv_heads and kv_heads % tp:
            raise EngineArgsError("tensor_parallel_size", tp, "a multiple or a divisor of the model's %d KV heads"
                                  % kv_heads)
        if pp > facts["num_hidden_layers"]:
            raise EngineArgsError("pipeline_parallel_size", pp, "at most the model's %d layers" %
                                  facts["num_hidden_layers"])
        gpus = (plan.get("hardware") or {}).get("gpus") or []
        if gpus and tp * pp > len(gpus):
            raise EngineArgsError("tensor_parallel_size", tp, "TP x PP (%d x %d = %d) within the host's %d GPU(s)" % (
                tp, pp, tp * pp, len(gpus)))
        pick("gpu_memory_utilization", sized.get("gpu_memory_utilization") or
             detailed_sizing.DEFAULT_GPU_MEMORY_UTILIZATION, "plan", "the fraction of each GPU the plan budgets",
             _check_utilization)
        if sized.get("context_length_source") == "asked for":
            max_len, kv_value = pick_context_and_formats(sized["context_length"], "the context asked for")
        else:
            max_len, kv_value = pick_context_and_formats(
                gpu_plan.get("max_context_length") or sized["context_length"],
                "the largest context that fits the plan's GPUs")
        fp8_weights = sized["precision"] == "fp8" or (facts.get("quantization") or {}).get("format") == "fp8"
        if fp8_weights:
            warnings.extend(_fp8_support(gpus, "plan.sizing.precision"))
        if kv_value and str(kv_value).startswith("fp8"):
            warnings.extend(_fp8_support(gpus, "kv_cache_dtype"))
        pick("dtype", None, "engine", "vLLM's auto: the checkpoint's dtype (fp32 served at 16 bits)",
             _bf16_dtype_check(gpus))
        seqs = pick("max_num_seqs", concurrency, "plan", "the planned concurrency",
                    lambda v: _positive_int("overrides.max_num_seqs", v, "a positive integer"))
        eager = pick("enforce_eager", True if enforce_eager else None, "default" if enforce_eager else "engine",
                     "model_serve_enforce_eager" if enforce_eager else "CUDA graphs (vLLM's default)")
        expected = _gpu_expected(sized, gpu_plan, tp, pp, max_len, seqs, bool(eager))
    else:
        for name, detail in (("tensor_parallel_size", "the CPU backend runs one worker"),
                             ("pipeline_parallel_size", "the CPU backend runs one worker"),
                             ("gpu_memory_utilization", "no GPU: the KV cache size is VLLM_CPU_KVCACHE_SPACE")):
            pick(name, None, "engine", detail)
        if sized.get("context_length_source") == "asked for":
            len_detail = "the context asked for"
        else:
            len_detail = "the plan's context (%s)" % sized.get("context_length_source")
        max_len, kv_value = pick_context_and_formats(sized["context_length"], len_detail)
        if sized["precision"] == "bf16":
            pick("dtype", CPU_BF16_DTYPE, "default", CPU_BF16_DETAIL)
        else:
            pick("dtype", None, "engine", "vLLM's auto: the checkpoint's dtype")
        seqs = pick("max_num_seqs", concurrency, "plan", "the planned concurrency",
                    lambda v: _positive_int("overrides.max_num_seqs", v, "a positive integer"))
        eager_default = True if enforce_eager is None else bool(enforce_eager)
        pick("enforce_eager", True if eager_default else None, "default",
             "no torch.compile: 70-115 s less to a healthy endpoint on CPU" if eager_default else
             "model_serve_enforce_eager false: torch.compile at start-up")
        cpu_plan = sized.get("cpu_plan") or {}
        per_token = cpu_plan.get("kv_cache_bytes_per_token") or sized.get("kv_cache_per_token_bytes")
        per_token = _positive_int("plan.sizing.kv_cache_per_token_bytes", per_token, "a positive integer (KV bytes "
                                  "per token from the model's config)")
        if cpu_kvcache_space_gib not in (None, "", 0):
            space = _positive_int("cpu_kvcache_space_gib", cpu_kvcache_space_gib,
                                  "whole GiB above 0 (0 makes vLLM's CPU backend fail: no memory for cache blocks)")
            space_source, space_detail = "override", "model_serve_cpu_kvcache_space_gib"
        elif cpu_plan.get("kv_cache_space_gib"):
            space = _positive_int("plan.sizing.cpu_plan.kv_cache_space_gib", cpu_plan["kv_cache_space_gib"],
                                  "whole GiB above 0")
            space_source, space_detail = "plan", "the plan's KV-cache space (host RAM was judged with it)"
        else:
            needed = per_token * max_len * seqs
            space = max(1, int(math.ceil(float(needed) / GIB)))
            space_source = "plan"
            space_detail = ("room for max_num_seqs %d x max_model_len %d tokens x %d KV bytes per token, rounded up "
                            "to whole GiB (at least 1: 0 makes vLLM's CPU backend fail)" % (seqs, max_len, per_token))
        ram = (plan.get("hardware") or {}).get("memory_total_mib")
        if ram and space * 1024 + sized["requirements_bytes"]["param_memory"] / 2 ** 20 > ram:
            raise EngineArgsError("cpu_kvcache_space_gib", space, "a KV space that fits next to the weights in the "
                                  "host's %d MiB of RAM" % ram)
        env["VLLM_CPU_KVCACHE_SPACE"] = str(space)
        args.append({"name": "VLLM_CPU_KVCACHE_SPACE", "flag": None, "value": space, "source": space_source,
                     "detail": space_detail})
        tokens = space * GIB // per_token
        expected = {
            "weights_bytes": sized["requirements_bytes"]["param_memory"],
            "weights_bytes_per_gpu": None,
            "kv_cache_bytes": space * GIB,
            "kv_cache_bytes_per_token": per_token,
            "kv_cache_tokens": int(tokens),
            "max_model_len": max_len,
            "max_concurrency": round(float(tokens) / max_len, 2),
            "basis": "VLLM_CPU_KVCACHE_SPACE %d GiB / %d KV bytes per token (%s)" % (
                space, per_token, sized.get("kv_cache_dtype")),
            # Host RAM the engine's processes take: weights + the KV space it is given + its runtime (cpu_plan).
            "host_memory_bytes": sized["requirements_bytes"]["param_memory"] + space * GIB + sizing.CPU_RUNTIME_BYTES,
        }
    derived_flags = dict((a["flag"], a["name"]) for a in args if a["flag"])
    extra = _check_extra_args(extra_args, derived_flags)
    argv = [model_path]
    for name, flag, kind in ARGUMENTS:
        entry = [a for a in args if a["name"] == name][0]
        if entry["value"] is None or entry["value"] is False:
            continue
        if kind == "flag":
            argv.append(flag)
        else:
            argv.extend([flag, str(entry["value"])])
    for item in extra:
        args.append({"name": item, "flag": item.split("=", 1)[0] if item.startswith("-") else None, "value": item,
                     "source": "override", "detail": "model_serve_extra_args"})
    argv.extend(extra)
    expected["context_length"] = max_len
    return {"target": target, "args": args, "argv": argv, "env": env, "expected": expected, "warnings": warnings}


def _check_utilization(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise EngineArgsError("gpu_memory_utilization", value, "a fraction above 0 and at most 1")
    return value


def parser_dests(args):
    """argparse destinations of the derived flags passed on the command line (to read back after parsing)."""
    return [a["name"] for a in args if a["name"] in ARGUMENT_NAMES and a["value"] is not None]


def read_parser_result(stdout):
    """The JSON line PARSER_CHECK_SCRIPT printed, or None."""
    for line in reversed((stdout or "").splitlines()):
        if line.startswith(PARSER_MARK):
            return json.loads(line[len(PARSER_MARK):])
    return None


def read_engine_fingerprint(stdout):
    """The JSON line ENGINE_FINGERPRINT_SCRIPT printed, or None (no vLLM distribution found counts as None too)."""
    for line in reversed((stdout or "").splitlines()):
        if line.startswith(FINGERPRINT_MARK):
            try:
                found = json.loads(line[len(FINGERPRINT_MARK):])
            except ValueError:
                return None
            return found if isinstance(found, dict) and found.get("distributions") else None
    return None


def parser_record(argv, engine, check):
    """What to keep after vLLM's parser accepted ``argv``: with the same argv and engine the check need not run again."""
    return {"argv": list(argv), "engine": engine, "version": check.get("version"), "parsed": check.get("parsed") or {}}


def read_parser_record(path):
    """The record kept at ``path`` by an earlier run, or None when there is none or it cannot be read as one."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(PARSER_RECORD_MAX_BYTES + 1)
    except (IOError, OSError):
        return None
    if len(data) > PARSER_RECORD_MAX_BYTES:
        return None
    try:
        record = json.loads(data.decode("utf-8"))
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def reused_parser_check(record, argv, engine, args):
    """The earlier check when ``record`` names the same argv, the same engine, and parsed values that still agree with
    the derived arguments; None otherwise (the parser must run)."""
    if not record or engine is None:
        return None
    parsed = record.get("parsed")
    if record.get("argv") != list(argv) or record.get("engine") != engine or not isinstance(parsed, dict):
        return None
    if compare_parsed(args, parsed):
        return None
    return {"checked": True, "version": record.get("version"), "parsed": parsed, "reason": None, "reused": True,
            "record": parser_record(argv, engine, record)}


def compare_parsed(args, parsed):
    """Differences between what was rendered and what vLLM's parser read: a list of sentences."""
    problems = []
    for entry in args:
        name = entry["name"]
        if name not in parsed or entry["value"] is None:
            continue
        have, want = parsed[name], entry["value"]
        if isinstance(want, bool) or isinstance(have, bool):
            same = bool(have) == bool(want)
        elif isinstance(want, (int, float)) and isinstance(have, (int, float)):
            same = float(have) == float(want)
        elif isinstance(have, list):
            same = [str(x) for x in have] == [str(want)]
        else:
            same = str(have) == str(want)
        if not same:
            problems.append("%s %s was read by vLLM as %r" % (entry["flag"], want, have))
    return problems
