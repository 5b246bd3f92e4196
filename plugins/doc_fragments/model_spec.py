# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The model and sizing options that llmops.deploy.model_sizing and llmops.deploy.capacity_check share."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  model:
    description:
      - A ModelScope model id, C(owner/name). Size and precision are taken from the name when it carries them.
      - O(params) and O(precision) override what the name says.
    type: str
  params:
    description:
      - Parameter count, such as C(32B), C(1.5B), C(0.5b), C(671B), C(500M), C(1.5e9) or C(7000000000).
      - Required when O(model) is not given or its name has no size, unless a config is given (C(detailed) computes
        the count from the config, or reads it from safetensors headers).
    type: raw
  precision:
    description:
      - Numeric precision of the weights. Accepts the usual spellings, for example C(fp16), C(FP16), C(float16),
        C(half), C(bf16), C(bfloat16), C(int4), C(4bit), C(w4a16), C(int8), C(8bit), C(fp8), C(float32), C(fp32),
        and the quantisation spellings model names carry, such as C(awq), C(gptq-int4), C(gptq-int8), C(bnb-4bit),
        C(nf4), C(bnb-8bit), C(mxfp4).
      - Overrides what the name of O(model) says; when the two differ, the module warns and names both.
      - Without it, the precision is the one the name says, else the checkpoint's metadata (C(quantization_config),
        safetensors headers, C(torch_dtype) of O(config) or O(config_path); a float32 checkpoint is served at 16
        bits), else O(default_precision), else C(fp16), the guide's production recommendation, stated in
        the C(assumptions) key of the sizing result and as a warning.
    type: str
  default_precision:
    description:
      - Precision for a model whose name and metadata carry none, such as an inventory-wide C(bf16). Unlike
        O(precision), it never overrides a name that says its precision (C(Qwen/Qwen2.5-72B-Instruct-AWQ) stays
        INT4).
      - Accepts the same spellings as O(precision).
    type: str
  method:
    description:
      - Sizing method. C(seed) is the guide's rule of thumb. C(detailed) sizes from the architecture and needs
        O(config) or O(config_path). C(auto) is C(detailed) when a config is given, else C(seed).
    type: str
    choices: [seed, detailed, auto]
    default: seed
  config:
    description:
      - The content of the model's C(config.json), as a dict (for example from C(ansible.builtin.slurp) and
        C(from_json)). Vision-language configs with a C(text_config) are read from there.
      - Mutually exclusive with O(config_path).
    type: dict
  config_path:
    description:
      - Path to a local C(config.json), or to a model directory holding one. In a directory, the headers of its
        C(*.safetensors) files give the exact weight bytes (unless O(weights) is given).
      - Read on the host the module runs on.
    type: path
  weights:
    description:
      - Summary of the model's safetensors headers, as the collection's safetensors header reader returns it
        (C(params_total), C(params_by_dtype), C(data_bytes), C(precision)). Gives exact weight bytes.
    type: dict
  context_length:
    description:
      - Tokens per sequence to plan the KV cache for (the engine's C(--max-model-len)).
      - Defaults to the model's C(max_position_embeddings) capped at 8192. At most C(max_position_embeddings).
    type: int
  concurrency:
    description:
      - Sequences of O(context_length) tokens held in the KV cache at once.
    type: int
    default: 1
  kv_cache_dtype:
    description:
      - Precision of the KV cache. C(auto) follows the model's activation dtype (16-bit), as vLLM does.
    type: str
    choices: [auto, fp16, bf16, fp8, fp8_e4m3, fp8_e5m2]
    default: auto
  gpu_memory_utilization:
    description:
      - Share of each GPU's memory the engine may use (vLLM's C(--gpu-memory-utilization)), above 0 and at most 1.
        A value outside that range is an error with every method.
    type: float
    default: 0.9
  max_num_batched_tokens:
    description:
      - The engine's profiling batch (vLLM's C(--max-num-batched-tokens)), which sets the activation peak the engine
        keeps out of the KV cache. Used by the C(detailed) method; pass the same value to the engine.
      - Defaults to the engine's own for the GPU planned on. With O(engine_entry_point=openai_api_server)
        (C(vllm serve)) 2048 on GPUs under 70 GiB and on A100s, 8192 from 70 GiB, 16384 from 160 GiB. With
        O(engine_entry_point=llm_class) (the Python C(LLM) class) 8192 under 70 GiB and on A100s, 16384 from
        70 GiB. The engine lowers the default to O(max_num_seqs) x O(context_length) when that is smaller. Without
        a GPU to plan on, the requirement is stated for the GPU memory class it lands in.
    type: int
  max_num_seqs:
    description:
      - Most sequences the engine schedules at once (vLLM's C(--max-num-seqs)); the profiling run and the sampler's
        buffers grow with it. Used by the C(detailed) method.
      - Defaults to the engine's own for the GPU planned on, 256 on GPUs under 70 GiB and on A100s, 1024 from 70
        GiB (never more than O(max_num_batched_tokens)).
    type: int
  engine_entry_point:
    description:
      - How the engine is started, which decides its default profiling batch. V(openai_api_server) is C(vllm serve),
        what the M(llmops.deploy.vllm_args) module and the C(llmops.deploy.model_serve) role run. V(llm_class) is
        vLLM's Python C(LLM) class.
    type: str
    choices: [openai_api_server, llm_class]
    default: openai_api_server
  engine_version:
    description:
      - The vLLM version whose memory rules the C(detailed) plan follows (profiling batch, model runner, CUDA graph
        memory inside the budget or not). The rules are read in the pinned vLLM 0.32.0 and applied by version for
        older V1 engines. A V0 engine (before 0.8) is planned with the V1 rules and a warning.
    type: str
    default: "0.32.0"
  calibration:
    description:
      - Measured engine constants from earlier trials, as the C(constants) key the C(llmops.deploy.calibration_lookup)
        filter returns (device total as the engine sees it, non-torch and CUDA graph memory, and the measured /
        modelled activation ratio). The C(detailed) plan uses them and says where and when they were measured, with
        the modelled value beside, in the C(engine_memory) key of its GPU plan.
      - Ignored, with the reason in the plan and as a warning, when they were measured with another
        O(engine_version) or on a GPU of other memory than the one planned on. Not used by the C(seed) method
        (a warning says so).
    type: dict
  cpu_kv_cache_space_gib:
    description:
      - For a CPU target, the KV-cache space the CPU engine reserves, in GiB (vLLM's C(VLLM_CPU_KVCACHE_SPACE); it
        must be at least 1). Host RAM is planned as weights + this space + the CPU engine's runtime, and the
        expected KV-cache tokens are this space divided by the KV bytes per token.
    type: int
    default: 4
  reserve:
    description:
      - Headroom to keep free, as a fraction from 0 to 0.5. The guide asks for 20 to 30 percent.
    type: float
    default: 0.2
  gpus_per_node:
    description:
      - Most GPUs in one node. Tensor parallelism stays inside a node; more GPUs become pipeline stages across nodes.
    type: int
    default: 8
"""
