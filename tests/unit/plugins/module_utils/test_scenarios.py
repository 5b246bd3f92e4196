# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deployment scenarios: the guide's table 3.1 and its 6.2 optimisation advice."""

import pytest

from ansible_collections.llmops.deploy.plugins.module_utils import scenarios
from ansible_collections.llmops.deploy.plugins.module_utils.precision import BYTES_PER_PARAM
from ansible_collections.llmops.deploy.plugins.module_utils.scenarios import (
    OPTIMISATION_ADVICE,
    SCENARIOS,
    advice_for,
    get_scenario,
    scenario_band_contains,
    scenario_key,
    scenarios_for_params,
)
from ansible_collections.llmops.deploy.plugins.module_utils.sizing_errors import SizingInputError

B = 10 ** 9

# Guide table 3.1, row by row: (key, label_zh, examples_zh, min, max, precisions, concerns_zh).
GUIDE_TABLE_3_1 = [
    ("edge", "边缘端轻量应用", ["本地问答"], 1500000000, 7 * B, ["int4", "int8"], ["低显存占用", "快速推理"]),
    ("enterprise", "企业级通用场景", ["客服", "文档总结"], 7 * B, 32 * B, ["int8", "fp8", "fp16"],
     ["平衡精度与成本", "适配商用显卡"]),
    ("complex", "复杂任务", ["逻辑推理", "代码生成"], 32 * B, 70 * B, ["fp16"], ["精度优先", "保障任务完成质量"]),
    ("research", "科研 / 高精度计算", ["医疗", "金融"], 70 * B, None, ["fp16", "fp32"], ["极致精度", "硬件资源充足"]),
]


@pytest.mark.parametrize("row", GUIDE_TABLE_3_1, ids=lambda r: r[0])
def test_scenarios_match_the_guide_table(row):
    key, label_zh, examples_zh, low, high, precisions, concerns_zh = row
    scenario = SCENARIOS[key]
    assert scenario["name"] == key
    assert scenario["label_zh"] == label_zh
    assert scenario["examples_zh"] == examples_zh
    assert (scenario["min_params"], scenario["max_params"]) == (low, high)
    assert scenario["precisions"] == precisions
    assert scenario["concerns_zh"] == concerns_zh
    assert len(scenario["concerns"]) == len(concerns_zh)
    assert len(scenario["examples"]) == len(examples_zh)
    assert scenario["label"] and all(scenario["concerns"])


def test_every_scenario_has_the_same_keys_and_known_precisions():
    keys = set(SCENARIOS["edge"])
    assert set(SCENARIOS) == {"edge", "enterprise", "complex", "research"}
    for scenario in SCENARIOS.values():
        assert set(scenario) == keys
        assert set(scenario["precisions"]) <= set(BYTES_PER_PARAM)


def test_bands_are_written_as_the_guide_writes_them():
    assert [SCENARIOS[k]["params_band"] for k in scenarios.SCENARIO_ORDER] == ["1.5B~7B", "7B~32B", "32B~70B", "70B+"]


@pytest.mark.parametrize("name, key", [
    ("edge", "edge"), ("Edge", "edge"), ("edge-lightweight", "edge"), ("edge_lightweight", "edge"),
    ("Edge Lightweight", "edge"), ("lightweight", "edge"), ("边缘端轻量应用", "edge"),
    ("enterprise", "enterprise"), (" ENTERPRISE ", "enterprise"), ("general", "enterprise"),
    ("complex", "complex"), ("complex-tasks", "complex"), ("Complex_Tasks", "complex"), ("复杂任务", "complex"),
    ("research", "research"), ("scientific", "research"), ("high-precision", "research"),
    ("科研 / 高精度计算", "research"), ("科研/高精度计算", "research"),
])
def test_names_and_aliases(name, key):
    assert scenario_key(name) == key
    assert get_scenario(name) == SCENARIOS[key]


@pytest.mark.parametrize("bad", ["edgy", "", None, 3, ["edge"], "企业"])
def test_unknown_scenario_names_field_value_and_accepted(bad):
    with pytest.raises(SizingInputError) as err:
        get_scenario(bad)
    message = str(err.value)
    assert err.value.field == "scenario"
    assert message.startswith("scenario: invalid value %r" % (bad,))
    assert "one of edge, enterprise, complex, research (or " in message
    assert "edge-lightweight" in message and "scientific" in message


def test_field_name_can_be_chosen():
    with pytest.raises(SizingInputError) as err:
        get_scenario("nope", field="deployment_scenario")
    assert str(err.value).startswith("deployment_scenario: invalid value 'nope'")


def test_get_scenario_returns_a_copy():
    copy = get_scenario("edge")
    copy["precisions"].append("fp32")
    copy["max_params"] = 1
    assert SCENARIOS["edge"]["precisions"] == ["int4", "int8"]
    assert get_scenario("edge")["max_params"] == 7 * B


@pytest.mark.parametrize("scenario, params, inside", [
    ("edge", "1.5B", True), ("edge", "1.4B", False), ("edge", "7B", True), ("edge", "8B", False),
    ("enterprise", "7B", True), ("enterprise", "32B", True), ("enterprise", "33B", False),
    ("enterprise", "6.9B", False),
    ("complex", "32B", True), ("complex", "70B", True), ("complex", "72B", False), ("complex", "14B", False),
    ("research", "70B", True), ("research", "671B", True), ("research", "1T", True), ("research", "69B", False),
    ("edge", 3000000000, True), ("scientific", 700 * B, True),
])
def test_scenario_band_contains(scenario, params, inside):
    assert scenario_band_contains(scenario, params) is inside
    assert scenario_band_contains(SCENARIOS[scenario_key(scenario)], params) is inside


def test_band_contains_rejects_bad_params_and_scenarios():
    with pytest.raises(SizingInputError) as err:
        scenario_band_contains("edge", "big")
    assert err.value.field == "params"
    with pytest.raises(SizingInputError) as err:
        scenario_band_contains("huge", "7B")
    assert err.value.field == "scenario"


@pytest.mark.parametrize("params, names", [
    ("0.5B", []),                          # below the guide's smallest band
    ("1.5B", ["edge"]),
    ("7B", ["edge", "enterprise"]),        # shared end point
    ("14B", ["enterprise"]),
    ("32B", ["enterprise", "complex"]),
    ("34B", ["complex"]),
    ("70B", ["complex", "research"]),
    ("671B", ["research"]),
])
def test_scenarios_for_params(params, names):
    assert scenarios_for_params(params) == names


def test_optimisation_advice_follows_the_guide_6_2():
    by_name = {item["name"]: item for item in OPTIMISATION_ADVICE}
    assert set(by_name) == {"quantization", "distillation", "mixed-hardware"}
    quant = by_name["quantization"]
    assert (quant["min_params"], quant["precision"], quant["instead_of"]) == (32 * B, "int8", "fp16")
    # INT8 halves memory against FP16: the 50 % the guide states is what the byte table gives.
    assert quant["memory_saving_percent"] == 50
    assert BYTES_PER_PARAM["int8"] / BYTES_PER_PARAM["fp16"] == 1 - quant["memory_saving_percent"] / 100.0
    assert "32B+" in quant["advice_zh"] and "INT8" in quant["advice_zh"]
    assert "DeepSeek-R1-Distill" in by_name["distillation"]["advice"]
    assert by_name["distillation"]["example"] == "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B"
    mixed = by_name["mixed-hardware"]
    assert (mixed["low_precisions"], mixed["high_precisions"]) == (["int4", "int8"], ["fp16", "fp32"])
    assert "消费级显卡" in mixed["advice_zh"] and "企业级 GPU" in mixed["advice_zh"]


def test_advice_for_a_size():
    assert [a["name"] for a in advice_for("7B")] == ["distillation", "mixed-hardware"]
    assert [a["name"] for a in advice_for("32B")] == ["quantization", "distillation", "mixed-hardware"]
    assert [a["name"] for a in advice_for()] == ["quantization", "distillation", "mixed-hardware"]
    advice_for()[0]["precision"] = "fp32"
    assert OPTIMISATION_ADVICE[0]["precision"] == "int8"


def test_module_has_no_ansible_import():
    with open(scenarios.__file__, encoding="utf-8") as handle:
        source = handle.read()
    assert "import ansible" not in source and "from ansible." not in source
