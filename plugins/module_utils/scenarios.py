# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deployment scenarios (guide table 3.1) and the guide's optimisation advice (6.2), as data.

=====================================  ===========  ==============  ===========================================
Business scenario (guide wording)      Model size   Precisions      Core concerns
=====================================  ===========  ==============  ===========================================
edge: 边缘端轻量应用 (如本地问答)       1.5B ~ 7B    INT4 / INT8     低显存占用、快速推理
enterprise: 企业级通用场景 (客服...)   7B ~ 32B     INT8/FP8/FP16   平衡精度与成本、适配商用显卡
complex: 复杂任务 (逻辑推理、代码生成)  32B ~ 70B    FP16            精度优先,保障任务完成质量
research: 科研 / 高精度计算 (医疗...)   70B+         FP16 / FP32     极致精度、硬件资源充足
=====================================  ===========  ==============  ===========================================

The guide's bands share their end points (7B is both edge and enterprise, 32B both enterprise and complex, 70B both
complex and research); ``scenario_band_contains`` treats both ends as inside, as the guide writes them.

Pure data and functions, standard library only (runs on targets with Python >= 3.8).
"""

import copy

from ansible_collections.llmops.deploy.plugins.module_utils.parameter_count import parse_params
from ansible_collections.llmops.deploy.plugins.module_utils.sizing_errors import SizingInputError

_B = 10 ** 9

SCENARIOS = {
    "edge": {
        "name": "edge",
        "label": "Edge / lightweight applications",
        "label_zh": "边缘端轻量应用",
        "examples": ["local question answering"],
        "examples_zh": ["本地问答"],
        "min_params": 1500000000,
        "max_params": 7 * _B,
        "params_band": "1.5B~7B",
        "precisions": ["int4", "int8"],
        "concerns": ["low GPU memory use", "fast inference"],
        "concerns_zh": ["低显存占用", "快速推理"],
    },
    "enterprise": {
        "name": "enterprise",
        "label": "Enterprise general-purpose",
        "label_zh": "企业级通用场景",
        "examples": ["customer service", "document summarisation"],
        "examples_zh": ["客服", "文档总结"],
        "min_params": 7 * _B,
        "max_params": 32 * _B,
        "params_band": "7B~32B",
        "precisions": ["int8", "fp8", "fp16"],
        "concerns": ["balance accuracy and cost", "fit commercial GPUs"],
        "concerns_zh": ["平衡精度与成本", "适配商用显卡"],
    },
    "complex": {
        "name": "complex",
        "label": "Complex tasks",
        "label_zh": "复杂任务",
        "examples": ["logical reasoning", "code generation"],
        "examples_zh": ["逻辑推理", "代码生成"],
        "min_params": 32 * _B,
        "max_params": 70 * _B,
        "params_band": "32B~70B",
        "precisions": ["fp16"],
        "concerns": ["accuracy first", "assure the quality of task completion"],
        "concerns_zh": ["精度优先", "保障任务完成质量"],
    },
    "research": {
        "name": "research",
        "label": "Research / high-precision computing",
        "label_zh": "科研 / 高精度计算",
        "examples": ["medicine", "finance"],
        "examples_zh": ["医疗", "金融"],
        "min_params": 70 * _B,
        "max_params": None,
        "params_band": "70B+",
        "precisions": ["fp16", "fp32"],
        "concerns": ["utmost accuracy", "ample hardware resources"],
        "concerns_zh": ["极致精度", "硬件资源充足"],
    },
}

# Scenario order of the guide's table, smallest models first.
SCENARIO_ORDER = ("edge", "enterprise", "complex", "research")

# Accepted spellings (lower case, '_' and ' ' read as '-') -> scenario key. The Chinese labels are accepted too.
ALIASES = {
    "edge": "edge",
    "edge-lightweight": "edge",
    "lightweight": "edge",
    "enterprise": "enterprise",
    "enterprise-general": "enterprise",
    "general": "enterprise",
    "complex": "complex",
    "complex-tasks": "complex",
    "research": "research",
    "scientific": "research",
    "high-precision": "research",
}
for _key, _scenario in SCENARIOS.items():
    ALIASES[_scenario["label_zh"].replace(" ", "")] = _key

# Guide 6.2, optimisation directions, for the selection step.
OPTIMISATION_ADVICE = [
    {
        "name": "quantization",
        "label": "Quantisation",
        "label_zh": "量化优化",
        "min_params": 32 * _B,
        "precision": "int8",
        "instead_of": "fp16",
        "memory_saving_percent": 50,
        "advice": "Quantise large models (32B and above) to INT8: at the cost of a little accuracy it halves GPU "
                  "memory against FP16 (1 byte per parameter instead of 2).",
        "advice_zh": "对大参数模型(如 32B+)采用 INT8 量化,在损失少量精度的前提下降低 50% 显存占用",
    },
    {
        "name": "distillation",
        "label": "Distillation",
        "label_zh": "蒸馏优化",
        "example": "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
        "advice": "Choose a distilled model (such as DeepSeek-R1-Distill): it keeps the core abilities of the large "
                  "model at a much smaller size.",
        "advice_zh": "选择蒸馏版模型(如 DeepSeek-R1-Distill),在保持核心能力的同时缩小模型体积",
    },
    {
        "name": "mixed-hardware",
        "label": "Mixed hardware deployment",
        "label_zh": "硬件混合部署",
        "low_precisions": ["int4", "int8"],
        "high_precisions": ["fp16", "fp32"],
        "advice": "Deploy low-precision models on consumer GPUs and high-precision models on enterprise "
                  "(data-centre) GPUs, to lower the overall cost.",
        "advice_zh": "低精度模型部署在消费级显卡,高精度模型部署在企业级 GPU,降低整体成本",
    },
]


def _accepted():
    others = sorted(k for k in ALIASES if k not in SCENARIOS)
    return "one of %s (or %s)" % (", ".join(SCENARIO_ORDER), ", ".join(others))


def scenario_key(name, field="scenario"):
    """``'Complex_Tasks'`` -> ``'complex'``. Raises SizingInputError naming ``field``, the value and the accepted names."""
    if isinstance(name, str):
        key = ALIASES.get(name.strip().lower().replace("_", "-").replace(" ", "-"))
        if key is None:
            key = ALIASES.get(name.strip().replace(" ", ""))
        if key:
            return key
    raise SizingInputError(field, name, _accepted())


def get_scenario(name, field="scenario"):
    """The scenario dict for a name or alias (a copy: callers may change it freely)."""
    return copy.deepcopy(SCENARIOS[scenario_key(name, field)])


def scenario_band_contains(scenario, params):
    """Is ``params`` (a count or '32B') inside the scenario's size band? Both ends are inside; research has no top.

    ``scenario`` is a name, an alias or a scenario dict.
    """
    band = scenario if isinstance(scenario, dict) else SCENARIOS[scenario_key(scenario)]
    count = parse_params(params, "params")
    if count < band["min_params"]:
        return False
    return band["max_params"] is None or count <= band["max_params"]


def scenarios_for_params(params):
    """Names of the scenarios whose band holds ``params``, in the guide's order (two at a shared end point)."""
    return [key for key in SCENARIO_ORDER if scenario_band_contains(key, params)]


def advice_for(params=None):
    """The 6.2 advice that applies to a model of ``params`` (all of it when ``params`` is None), as copies."""
    count = None if params is None else parse_params(params, "params")
    chosen = []
    for item in OPTIMISATION_ADVICE:
        if count is not None and count < item.get("min_params", 0):
            continue
        chosen.append(copy.deepcopy(item))
    return chosen
