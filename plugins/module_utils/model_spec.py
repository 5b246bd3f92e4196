# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The model and sizing options shared by model_sizing and capacity_check (documented in doc_fragments/model_spec.py):
their argument spec, constraints, choices and defaults, as plain data.

It imports nothing: a module compiles the module_utils it imports each time it runs on a host (AnsiballZ ships
sources, not bytecode), so capacity_check with ``judge=controller``, which only probes, builds its argument spec from
this and does not compile the sizing code (sizing, engine_memory) it does not run. ``sizing`` and ``engine_memory``
take these values from here.

Standard library only (runs on targets with Python >= 3.8).
"""

METHOD_CHOICES = ("seed", "detailed", "auto")
KV_CACHE_DTYPE_CHOICES = ("auto", "fp16", "bf16", "fp8", "fp8_e4m3", "fp8_e5m2")
DEFAULT_RESERVE = 0.2
DEFAULT_GPUS_PER_NODE = 8
DEFAULT_CPU_KV_CACHE_SPACE_GIB = 4
DEFAULT_GPU_MEMORY_UTILIZATION = 0.9
# The vLLM version the engine's memory model follows (engine_memory), and its entry points.
ENGINE_PINNED_VERSION = "0.32.0"
ENGINE_ENTRY_POINTS = ("openai_api_server", "llm_class")
ENGINE_DEFAULT_ENTRY_POINT = "openai_api_server"

# Constraints on the options, for AnsibleModule.
MODEL_SPEC_REQUIRED_ONE_OF = [("model", "params", "config", "config_path")]
MODEL_SPEC_MUTUALLY_EXCLUSIVE = [("config", "config_path")]


def model_spec_argument_spec():
    """The options in AnsibleModule's argument_spec format; each call returns a fresh copy."""
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
        gpu_memory_utilization=dict(type="float", default=DEFAULT_GPU_MEMORY_UTILIZATION),
        default_precision=dict(type="str"),
        cpu_kv_cache_space_gib=dict(type="int", default=DEFAULT_CPU_KV_CACHE_SPACE_GIB),
        # "tokens" here counts the engine's batch; it is not a credential.
        max_num_batched_tokens=dict(type="int", no_log=False),
        max_num_seqs=dict(type="int"),
        engine_entry_point=dict(type="str", choices=list(ENGINE_ENTRY_POINTS), default=ENGINE_DEFAULT_ENTRY_POINT),
        engine_version=dict(type="str", default=ENGINE_PINNED_VERSION),
        calibration=dict(type="dict"),
        reserve=dict(type="float", default=DEFAULT_RESERVE),
        gpus_per_node=dict(type="int", default=DEFAULT_GPUS_PER_NODE),
    )
