# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ModelScope model names: the guide's four examples, a table of real ids, errors, and the sizing helpers."""

import pytest

from ansible_collections.llmops.deploy.plugins.module_utils import model_names
from ansible_collections.llmops.deploy.plugins.module_utils.model_names import (
    explicit_or_named,
    parse_model_id,
    split_model_id,
)
from ansible_collections.llmops.deploy.plugins.module_utils.sizing_errors import SizingInputError

B = 10 ** 9

KEYS = {
    "id", "owner", "name", "family", "series", "version", "date_tag", "date_tag_meaning", "date_tag_format",
    "function_tags", "distilled", "distill_base", "base_family", "params", "params_label", "params_is_upper_bound",
    "active_params", "active_params_label", "experts", "moe", "quantization", "gguf_type", "precision",
    "context_length_tag", "variant_tags", "summary", "explanation",
}

# What a name that says nothing more sets: every parse starts from this and the cases override.
NOTHING = {
    "series": None, "version": None, "date_tag": None, "date_tag_meaning": None, "date_tag_format": None,
    "function_tags": [], "distilled": False, "distill_base": None, "base_family": None, "params": None,
    "params_label": None, "params_is_upper_bound": False, "active_params": None, "active_params_label": None,
    "experts": None, "moe": False, "quantization": None, "gguf_type": None, "precision": None,
    "context_length_tag": None, "variant_tags": [],
}


def _expected(model_id, **fields):
    owner, name = model_id.split("/")
    want = dict(NOTHING, id=model_id, owner=owner, name=name)
    want.update(fields)
    return want


def _without_prose(parsed):
    return {k: v for k, v in parsed.items() if k not in ("summary", "explanation")}


# --- The guide's four examples (section 3.2), exactly -------------------------------------------------------------

R1_DISTILL_QWEN_32B = dict(family="DeepSeek", series="R1", version="R1", distilled=True, distill_base="Qwen",
                           base_family="Qwen", params=32 * B, params_label="32B")

GUIDE_EXAMPLES = [
    # 示例 1: DeepSeek R1 版本, 202X 年 05 月 28 日更新
    _expected("deepseek-ai/DeepSeek-R1-0528", family="DeepSeek", series="R1", version="R1", date_tag="0528",
              date_tag_meaning="update of 05-28 (month 05, day 28); the year is not in the name",
              date_tag_format="MMDD"),
    # 示例 2: DeepSeek 系列, 专注 OCR 功能
    _expected("deepseek-ai/DeepSeek-OCR", family="DeepSeek", function_tags=["OCR"]),
    # 示例 3: DeepSeek R1 蒸馏版, 基于 Qwen 框架, 32B 参数
    _expected("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", **R1_DISTILL_QWEN_32B),
    # 示例 4: DeepSeek R1 蒸馏版, Qwen 框架, 32B 参数, FP8 精度
    _expected("okwinds/DeepSeek-R1-Distill-Qwen-32B-FP8", quantization="fp8", precision="fp8",
              **R1_DISTILL_QWEN_32B),
]


@pytest.mark.parametrize("want", GUIDE_EXAMPLES, ids=lambda w: w["id"])
def test_guide_examples_parse_exactly(want):
    assert _without_prose(parse_model_id(want["id"])) == want


def test_guide_example_1_explains_the_date_without_a_year():
    parsed = parse_model_id("deepseek-ai/DeepSeek-R1-0528")
    assert parsed["summary"] == "DeepSeek R1, date tag 0528"
    assert "Version R1: the DeepSeek R1 series." in parsed["explanation"]
    assert ("Date tag 0528: update of 05-28 (month 05, day 28); the year is not in the name."
            in parsed["explanation"])


def test_guide_example_2_explains_ocr():
    parsed = parse_model_id("deepseek-ai/DeepSeek-OCR")
    assert parsed["summary"] == "DeepSeek, OCR"
    assert any(s.startswith("Function tag OCR: specialised for OCR (optical character recognition")
               for s in parsed["explanation"])


def test_guide_example_3_explains_distillation_base_and_size():
    parsed = parse_model_id("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B")
    assert parsed["summary"] == "DeepSeek R1, distilled, Qwen base, 32B parameters"
    assert ("Distilled: DeepSeek R1 distilled into a smaller model built on Qwen (the Qwen framework)."
            in parsed["explanation"])
    assert "Size 32B: 32B parameters (32,000,000,000)." in parsed["explanation"]


def test_guide_example_4_adds_fp8_precision():
    parsed = parse_model_id("okwinds/DeepSeek-R1-Distill-Qwen-32B-FP8")
    assert parsed["summary"] == "DeepSeek R1, distilled, Qwen base, 32B parameters, FP8 precision"
    assert "Precision FP8: sized as FP8, 1 byte per parameter." in parsed["explanation"]
    assert parsed["explanation"][0] == "Owner (publisher on ModelScope): okwinds."


# --- Real ModelScope ids ------------------------------------------------------------------------------------------

REAL_IDS = [
    _expected("Qwen/Qwen2.5-7B-Instruct", family="Qwen", version="2.5", function_tags=["Instruct"],
              params=7 * B, params_label="7B"),
    _expected("Qwen/Qwen2.5-0.5B-Instruct", family="Qwen", version="2.5", function_tags=["Instruct"],
              params=500000000, params_label="0.5B"),
    _expected("Qwen/Qwen2.5-1.5B-Instruct", family="Qwen", version="2.5", function_tags=["Instruct"],
              params=1500000000, params_label="1.5B"),
    _expected("Qwen/Qwen2.5-72B-Instruct-AWQ", family="Qwen", version="2.5", function_tags=["Instruct"],
              params=72 * B, params_label="72B", quantization="awq", precision="int4"),
    _expected("Qwen/Qwen2.5-7B-Instruct-GPTQ-Int4", family="Qwen", version="2.5", function_tags=["Instruct"],
              params=7 * B, params_label="7B", quantization="gptq-int4", precision="int4"),
    _expected("Qwen/Qwen2.5-32B-Instruct-GPTQ-Int8", family="Qwen", version="2.5", function_tags=["Instruct"],
              params=32 * B, params_label="32B", quantization="gptq-int8", precision="int8"),
    _expected("Qwen/Qwen-7B-Chat-Int4", family="Qwen", function_tags=["Chat"], params=7 * B, params_label="7B",
              quantization="int4", precision="int4"),
    _expected("Qwen/Qwen3-30B-A3B", family="Qwen", version="3", params=30 * B, params_label="30B",
              active_params=3 * B, active_params_label="3B", moe=True),
    _expected("Qwen/Qwen3-235B-A22B-FP8", family="Qwen", version="3", params=235 * B, params_label="235B",
              active_params=22 * B, active_params_label="22B", moe=True, quantization="fp8", precision="fp8"),
    _expected("Qwen/Qwen3-235B-A22B-Instruct-2507-FP8", family="Qwen", version="3", params=235 * B,
              params_label="235B", active_params=22 * B, active_params_label="22B", moe=True,
              function_tags=["Instruct"], date_tag="2507", date_tag_format="YYMM",
              date_tag_meaning="not a valid month-day (MMDD); read as year-month (YYMM, the way Qwen and Mistral "
                               "tag releases) it would be 2025-07",
              quantization="fp8", precision="fp8"),
    _expected("Qwen/Qwen3-Coder-480B-A35B-Instruct-FP8", family="Qwen", version="3",
              function_tags=["Coder", "Instruct"], params=480 * B, params_label="480B", active_params=35 * B,
              active_params_label="35B", moe=True, quantization="fp8", precision="fp8"),
    _expected("Qwen/Qwen1.5-MoE-A2.7B", family="Qwen", version="1.5", active_params=2700000000,
              active_params_label="2.7B", moe=True),
    _expected("Qwen/Qwen2.5-Coder-32B-Instruct", family="Qwen", version="2.5", function_tags=["Coder", "Instruct"],
              params=32 * B, params_label="32B"),
    _expected("Qwen/Qwen2.5-Math-7B-Instruct", family="Qwen", version="2.5", function_tags=["Math", "Instruct"],
              params=7 * B, params_label="7B"),
    _expected("Qwen/Qwen2-VL-7B-Instruct", family="Qwen", version="2", function_tags=["VL", "Instruct"],
              params=7 * B, params_label="7B"),
    _expected("Qwen/Qwen2.5-VL-72B-Instruct-AWQ", family="Qwen", version="2.5", function_tags=["VL", "Instruct"],
              params=72 * B, params_label="72B", quantization="awq", precision="int4"),
    _expected("Qwen/Qwen2.5-7B-Instruct-1M", family="Qwen", version="2.5", function_tags=["Instruct"],
              params=7 * B, params_label="7B", context_length_tag="1M"),
    _expected("Qwen/QwQ-32B", family="QwQ", params=32 * B, params_label="32B"),
    _expected("deepseek-ai/DeepSeek-V3", family="DeepSeek", series="V3", version="V3"),
    _expected("deepseek-ai/DeepSeek-V2.5-1210", family="DeepSeek", series="V2.5", version="V2.5", date_tag="1210",
              date_tag_format="MMDD",
              date_tag_meaning="update of 12-10 (month 12, day 10); the year is not in the name"),
    _expected("deepseek-ai/DeepSeek-R1-Distill-Llama-70B", family="DeepSeek", series="R1", version="R1",
              distilled=True, distill_base="Llama", base_family="Llama", params=70 * B, params_label="70B"),
    _expected("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", family="DeepSeek", series="R1", version="R1",
              distilled=True, distill_base="Qwen", base_family="Qwen", params=1500000000, params_label="1.5B"),
    _expected("deepseek-ai/DeepSeek-R1-0528-Qwen3-8B", family="DeepSeek", series="R1", version="R1",
              date_tag="0528", date_tag_format="MMDD",
              date_tag_meaning="update of 05-28 (month 05, day 28); the year is not in the name",
              distilled=True, distill_base="Qwen", base_family="Qwen", params=8 * B, params_label="8B"),
    _expected("deepseek-ai/DeepSeek-V2-Lite-Chat", family="DeepSeek", series="V2", version="V2",
              function_tags=["Chat"], variant_tags=["Lite"]),
    _expected("deepseek-ai/DeepSeek-Coder-V2-Lite-Instruct", family="DeepSeek", series="V2", version="V2",
              function_tags=["Coder", "Instruct"], variant_tags=["Lite"]),
    _expected("deepseek-ai/DeepSeek-OCR-2", family="DeepSeek", version="2", function_tags=["OCR"]),
    _expected("deepseek-ai/deepseek-llm-7b-chat", family="DeepSeek", function_tags=["Chat"], params=7 * B,
              params_label="7B", variant_tags=["llm"]),
    _expected("deepseek-ai/deepseek-moe-16b-chat", family="DeepSeek", function_tags=["Chat"], params=16 * B,
              params_label="16B", moe=True),
    _expected("AI-ModelScope/Mixtral-8x7B-Instruct-v0.1", family="Mixtral", version="v0.1",
              function_tags=["Instruct"], params=56 * B, params_label="8x7B", params_is_upper_bound=True,
              experts=8, moe=True),
    _expected("LLM-Research/Meta-Llama-3.1-8B-Instruct", family="Llama", version="3.1", function_tags=["Instruct"],
              params=8 * B, params_label="8B"),
    _expected("LLM-Research/Mistral-7B-Instruct-v0.3", family="Mistral", version="v0.3",
              function_tags=["Instruct"], params=7 * B, params_label="7B"),
    _expected("LLM-Research/gemma-2-9b-it", family="Gemma", version="2", function_tags=["Instruct"], params=9 * B,
              params_label="9B"),
    _expected("LLM-Research/Phi-3-mini-4k-instruct", family="Phi", version="3", function_tags=["Instruct"],
              context_length_tag="4k", variant_tags=["mini"]),
    _expected("ZhipuAI/glm-4-9b-chat", family="GLM", version="4", function_tags=["Chat"], params=9 * B,
              params_label="9B"),
    _expected("ZhipuAI/glm-4-9b-chat-1m", family="GLM", version="4", function_tags=["Chat"], params=9 * B,
              params_label="9B", context_length_tag="1m"),
    _expected("ZhipuAI/chatglm3-6b", family="ChatGLM", version="3", params=6 * B, params_label="6B"),
    _expected("Shanghai_AI_Laboratory/internlm2_5-7b-chat", family="InternLM", version="2.5",
              function_tags=["Chat"], params=7 * B, params_label="7B"),
    _expected("Shanghai_AI_Laboratory/internlm2_5-1_8b", family="InternLM", version="2.5", params=1800000000,
              params_label="1.8B"),
    _expected("01ai/Yi-1.5-34B-Chat", family="Yi", version="1.5", function_tags=["Chat"], params=34 * B,
              params_label="34B"),
    _expected("baichuan-inc/Baichuan2-13B-Chat", family="Baichuan", version="2", function_tags=["Chat"],
              params=13 * B, params_label="13B"),
    _expected("OpenBMB/MiniCPM-V-2_6", family="MiniCPM", version="2.6", function_tags=["VL"]),
    _expected("OpenBMB/MiniCPM-Llama3-V-2_5", family="MiniCPM", version="2.5", function_tags=["VL"],
              base_family="Llama"),
    _expected("AI-ModelScope/CodeLlama-7b-Instruct-hf", family="Llama", function_tags=["Coder", "Instruct"],
              params=7 * B, params_label="7B", variant_tags=["hf"]),
    _expected("AI-ModelScope/SmolLM2-360M-Instruct", family="SmolLM", version="2", function_tags=["Instruct"],
              params=360000000, params_label="360M"),
    _expected("openai-mirror/gpt-oss-20b", family="GPT-OSS", params=20 * B, params_label="20B"),
    # Re-uploads: unsloth, TheBloke, bartowski, mlx-community, RedHatAI.
    _expected("unsloth/Qwen2.5-7B-Instruct-bnb-4bit", family="Qwen", version="2.5", function_tags=["Instruct"],
              params=7 * B, params_label="7B", quantization="bnb-4bit", precision="int4"),
    _expected("unsloth/Llama-3.3-70B-Instruct-unsloth-bnb-4bit", family="Llama", version="3.3",
              function_tags=["Instruct"], params=70 * B, params_label="70B", quantization="bnb-4bit",
              precision="int4"),
    _expected("unsloth/DeepSeek-R1-Distill-Qwen-32B-bnb-4bit", quantization="bnb-4bit", precision="int4",
              **R1_DISTILL_QWEN_32B),
    _expected("unsloth/DeepSeek-R1-Distill-Qwen-32B-GGUF", quantization="gguf", **R1_DISTILL_QWEN_32B),
    _expected("unsloth/DeepSeek-R1-GGUF", family="DeepSeek", series="R1", version="R1", quantization="gguf"),
    _expected("unsloth/DeepSeek-R1-BF16", family="DeepSeek", series="R1", version="R1", precision="bf16"),
    _expected("unsloth/Qwen3-30B-A3B-GGUF", family="Qwen", version="3", params=30 * B, params_label="30B",
              active_params=3 * B, active_params_label="3B", moe=True, quantization="gguf"),
    _expected("bartowski/Qwen2.5-7B-Instruct-Q4_K_M-GGUF", family="Qwen", version="2.5",
              function_tags=["Instruct"], params=7 * B, params_label="7B", quantization="gguf", gguf_type="Q4_K_M",
              precision="int4"),
    _expected("hugging-quants/Llama-3.2-1B-Instruct-Q4_K_M-GGUF", family="Llama", version="3.2",
              function_tags=["Instruct"], params=1 * B, params_label="1B", quantization="gguf",
              gguf_type="Q4_K_M", precision="int4"),
    _expected("TheBloke/Llama-2-7B-Chat-GGUF", family="Llama", version="2", function_tags=["Chat"],
              params=7 * B, params_label="7B", quantization="gguf"),
    _expected("TheBloke/Mixtral-8x7B-Instruct-v0.1-GPTQ", family="Mixtral", version="v0.1",
              function_tags=["Instruct"], params=56 * B, params_label="8x7B", params_is_upper_bound=True,
              experts=8, moe=True, quantization="gptq", precision="int4"),
    _expected("TheBloke/deepseek-coder-33B-instruct-AWQ", family="DeepSeek", function_tags=["Coder", "Instruct"],
              params=33 * B, params_label="33B", quantization="awq", precision="int4"),
    _expected("mlx-community/Qwen2.5-7B-Instruct-4bit", family="Qwen", version="2.5", function_tags=["Instruct"],
              params=7 * B, params_label="7B", quantization="mlx-4bit", precision="int4"),
    _expected("mlx-community/DeepSeek-R1-Distill-Qwen-7B-8bit", family="DeepSeek", series="R1", version="R1",
              distilled=True, distill_base="Qwen", base_family="Qwen", params=7 * B, params_label="7B",
              quantization="mlx-8bit", precision="int8"),
    _expected("RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w4a16", family="Llama", version="3.1",
              function_tags=["Instruct"], params=8 * B, params_label="8B", quantization="w4a16", precision="int4"),
    _expected("RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w8a8", family="Llama", version="3.1",
              function_tags=["Instruct"], params=8 * B, params_label="8B", quantization="w8a8", precision="int8"),
]


@pytest.mark.parametrize("want", REAL_IDS, ids=lambda w: w["id"])
def test_real_modelscope_ids(want):
    assert _without_prose(parse_model_id(want["id"])) == want


@pytest.mark.parametrize("model_id", [w["id"] for w in GUIDE_EXAMPLES + REAL_IDS])
def test_every_key_is_always_present_and_explained(model_id):
    parsed = parse_model_id(model_id)
    assert set(parsed) == KEYS
    assert isinstance(parsed["summary"], str) and parsed["summary"].startswith(parsed["family"])
    assert parsed["explanation"] and all(s.endswith(".") for s in parsed["explanation"])


# --- Sizes, versions and quantisations that look alike --------------------------------------------------------------

@pytest.mark.parametrize("model_id, params, version", [
    ("Qwen/Qwen2.5-7B", 7 * B, "2.5"),            # Qwen2.5 is a version, 7B the size
    ("x/Foo-V2-1.5B", 1500000000, "V2"),          # V2 is a version, 1.5B a size
    ("x/Foo-v0.1-0.5B", 500000000, "v0.1"),
    ("x/internlm2_5-20b", 20 * B, "2.5"),         # 2_5 is version 2.5 (underscore)
    ("x/Foo-72B-Int4", 72 * B, None),              # Int4 is a quantisation, not a size
    ("x/Foo-7B-4bit", 7 * B, None),                # 4bit is a quantisation
    ("x/Foo-7B-128k", 7 * B, None),                # 128k is a context length
    ("x/Foo-671B", 671 * B, None),
    ("x/Foo-1T", 10 ** 12, None),
])
def test_size_is_not_confused_with_versions_quantisations_or_context(model_id, params, version):
    parsed = parse_model_id(model_id)
    assert parsed["params"] == params
    assert parsed["version"] == version


def test_moe_experts_form_is_an_upper_bound_and_says_so():
    parsed = parse_model_id("AI-ModelScope/Mixtral-8x22B-Instruct-v0.1")
    assert (parsed["experts"], parsed["params"], parsed["params_is_upper_bound"]) == (8, 176 * B, True)
    assert parsed["summary"] == "Mixtral v0.1, Instruct, 8x22B parameters (at most 176B)"
    sentence = [s for s in parsed["explanation"] if s.startswith("Size 8x22B")][0]
    assert "real total is smaller (Mixtral-8x7B has 46.7B)" in sentence
    assert "real parameter count, when known, should be preferred" in sentence


def test_total_and_active_sizes():
    parsed = parse_model_id("Qwen/Qwen3-30B-A3B")
    assert parsed["summary"] == "Qwen 3, 30B parameters (3B active)"
    assert ("Mixture of experts: 3B parameters active per token out of 30B in total; memory sizing needs the "
            "total, since every expert is loaded." in parsed["explanation"])


@pytest.mark.parametrize("name, quantization, gguf_type, precision", [
    ("Foo-7B-Q4_K_M-GGUF", "gguf", "Q4_K_M", "int4"),
    ("Foo-7B-q4_0-GGUF", "gguf", "Q4_0", "int4"),
    ("Foo-7B-IQ4_XS-GGUF", "gguf", "IQ4_XS", "int4"),
    ("Foo-7B-Q8_0-GGUF", "gguf", "Q8_0", "int8"),
    ("Foo-7B-Q5_K_M-GGUF", "gguf", "Q5_K_M", "int8"),   # 5-bit rounds up to the INT8 row
    ("Foo-7B-Q6_K-GGUF", "gguf", "Q6_K", "int8"),
    ("Foo-7B-Q3_K_S-GGUF", "gguf", "Q3_K_S", "int4"),   # 3-bit rounds up to the INT4 row
    ("Foo-7B-UD-Q4_K_XL-GGUF", "gguf", "UD-Q4_K_XL", "int4"),
    ("Foo-7B-F16-GGUF", "gguf", "F16", "fp16"),
    ("Foo-7B-BF16-GGUF", "gguf", "BF16", "bf16"),
    ("Foo-7B-GGUF", "gguf", None, None),
    ("Foo-7B-AWQ", "awq", None, "int4"),
    ("Foo-7B-GPTQ", "gptq", None, "int4"),
    ("Foo-7B-GPTQ-Int8", "gptq-int8", None, "int8"),
    ("Foo-7B-bnb-8bit", "bnb-8bit", None, "int8"),
    ("Foo-7B-8bit", "8bit", None, "int8"),
    ("Foo-7B-MLX-4bit", "mlx-4bit", None, "int4"),
    ("Foo-7B-Int8", "int8", None, "int8"),
    ("Foo-7B-FP8-dynamic", "fp8", None, "fp8"),
    ("Foo-7B-W8A8-FP8", "fp8", None, "fp8"),
    ("Foo-7B-NF4", "nf4", None, "int4"),
    ("Foo-7B-fp16", None, None, "fp16"),
    ("Foo-7B-FP32", None, None, "fp32"),
    ("Foo-7B-BF16", None, None, "bf16"),
    ("Foo-7B", None, None, None),
])
def test_quantisation_and_precision(name, quantization, gguf_type, precision):
    parsed = parse_model_id("someone/" + name)
    assert (parsed["quantization"], parsed["gguf_type"], parsed["precision"]) == (quantization, gguf_type, precision)


def test_gguf_without_a_type_says_the_file_decides():
    parsed = parse_model_id("Qwen/Qwen2.5-7B-Instruct-GGUF")
    assert parsed["precision"] is None
    assert any("precision depends on the file chosen" in s for s in parsed["explanation"])


@pytest.mark.parametrize("tag, meaning, fmt", [
    ("0528", "update of 05-28 (month 05, day 28); the year is not in the name", "MMDD"),
    ("0229", "update of 02-29 (month 02, day 29); the year is not in the name", "MMDD"),
    ("1231", "update of 12-31 (month 12, day 31); the year is not in the name", "MMDD"),
    ("2507", "not a valid month-day (MMDD); read as year-month (YYMM, the way Qwen and Mistral tag releases) "
             "it would be 2025-07", "YYMM"),
    ("2407", "not a valid month-day (MMDD); read as year-month (YYMM, the way Qwen and Mistral tag releases) "
             "it would be 2024-07", "YYMM"),
    ("0431", "a release tag that is neither a month-day (MMDD) nor a year-month (YYMM)", None),  # no April 31
    ("9999", "a release tag that is neither a month-day (MMDD) nor a year-month (YYMM)", None),
    ("20240513", "update of 2024-05-13", "YYYYMMDD"),
    ("20241399", "a release tag that is not a valid date (YYYYMMDD)", None),
])
def test_date_tags(tag, meaning, fmt):
    parsed = parse_model_id("x/Foo-7B-%s" % tag)
    assert (parsed["date_tag"], parsed["date_tag_meaning"], parsed["date_tag_format"]) == (tag, meaning, fmt)


def test_function_tags_keep_name_order_and_canonical_spelling():
    parsed = parse_model_id("x/Foo-vision-coder-math-base-chat-reasoning-thinking-ocr-7B")
    assert parsed["function_tags"] == ["VL", "Coder", "Math", "Base", "Chat", "Reasoning", "Thinking", "OCR"]


def test_unknown_family_is_the_leading_name_token():
    parsed = parse_model_id("some-lab/Bonsai-1.7B-Instruct")
    assert (parsed["family"], parsed["params"], parsed["function_tags"]) == ("Bonsai", 1700000000, ["Instruct"])
    assert "not a family this parser knows" in parsed["explanation"][1]


def test_id_is_stripped_and_case_of_families_is_canonical():
    parsed = parse_model_id("  deepseek-ai/deepseek-r1-distill-qwen-32b  ")
    assert parsed["id"] == "deepseek-ai/deepseek-r1-distill-qwen-32b"
    assert (parsed["family"], parsed["distill_base"], parsed["params"]) == ("DeepSeek", "Qwen", 32 * B)


def test_results_are_independent():
    first = parse_model_id("Qwen/Qwen2.5-7B-Instruct")
    first["function_tags"].append("changed")
    assert parse_model_id("Qwen/Qwen2.5-7B-Instruct")["function_tags"] == ["Instruct"]


# --- Errors -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, detail", [
    (None, "not a string"),
    (32, "not a string"),
    (["deepseek-ai/DeepSeek-OCR"], "not a string"),
    ("", "empty"),
    ("   ", "empty"),
    ("DeepSeek-R1", "no owner"),
    ("a/b/c", "more than one '/'"),
    ("https://modelscope.cn/models/deepseek-ai/DeepSeek-OCR", "more than one '/'"),
    ("/DeepSeek-OCR", "empty owner"),
    ("deepseek-ai/", "empty name"),
    ("deepseek ai/DeepSeek-OCR", "the owner may hold only"),
    ("deepseek-ai/DeepSeek OCR", "the name may hold only"),
    ("deepseek-ai/DeepSeek-OCR:latest", "the name may hold only"),
    ("deepseek-ai/-DeepSeek", "the name may hold only"),
    ("deepseek-ai/DeepSeek-中文", "the name may hold only"),
])
def test_bad_ids_name_field_value_and_accepted(value, detail):
    with pytest.raises(SizingInputError) as err:
        parse_model_id(value)
    assert err.value.field == "model"
    assert err.value.value == value
    message = str(err.value)
    assert message.startswith("model: invalid value %r" % (value,))
    assert "an id 'owner/name' such as deepseek-ai/DeepSeek-R1-Distill-Qwen-32B" in message
    assert detail in message


def test_split_model_id():
    assert split_model_id(" Shanghai_AI_Laboratory/internlm2_5-7b-chat ") == (
        "Shanghai_AI_Laboratory", "internlm2_5-7b-chat")


def test_split_model_id_without_strip_refuses_blanks():
    # The hub's spelling (hub_manifest.split_model_id) applies the same rule to the id exactly as given.
    with pytest.raises(SizingInputError, match="the owner may hold only"):
        split_model_id(" Shanghai_AI_Laboratory/internlm2_5-7b-chat", strip=False)
    assert split_model_id("a/b", strip=False) == ("a", "b")


# --- An explicit value beats the name -----------------------------------------------------------------------------

def params(model_id, given=None):
    return explicit_or_named(model_id, given, need_params=True)["params"]


def test_params_come_from_the_name():
    assert params("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B") == 32 * B
    assert params(parse_model_id("Qwen/Qwen2.5-0.5B-Instruct")) == 500000000
    claims = explicit_or_named("AI-ModelScope/Mixtral-8x7B-Instruct-v0.1")
    assert claims["params_source"] == "name" and claims["params_is_upper_bound"] is True


@pytest.mark.parametrize("given", ["46.7B", 46700000000, "46.7b"])
def test_params_given_win_over_the_name(given):
    claims = explicit_or_named("AI-ModelScope/Mixtral-8x7B-Instruct-v0.1", given)
    assert claims["params"] == 46700000000
    assert claims["params_source"] == "given" and claims["params_is_upper_bound"] is False


def test_name_without_size_needs_params_and_the_error_says_so():
    with pytest.raises(SizingInputError) as err:
        params("OpenBMB/MiniCPM-V-2_6")
    assert err.value.field == "params"
    message = str(err.value)
    assert message.startswith("params: invalid value None; expected a parameter count such as 32B")
    assert "the model id OpenBMB/MiniCPM-V-2_6 has no size in its name, so params must be given" in message
    assert params("OpenBMB/MiniCPM-V-2_6", "8B") == 8 * B
    # Not needed: no count, no error.
    assert explicit_or_named("OpenBMB/MiniCPM-V-2_6")["params"] is None


def test_active_only_moe_needs_the_total():
    with pytest.raises(SizingInputError) as err:
        params("Qwen/Qwen1.5-MoE-A2.7B", "")
    assert "names only the active size 2.7B" in str(err.value)
    assert "so params must be given" in str(err.value)


def test_bad_params_value_names_the_field_it_came_from():
    with pytest.raises(SizingInputError) as err:
        params("Qwen/Qwen2.5-7B-Instruct", "lots")
    assert err.value.field == "params"
    with pytest.raises(SizingInputError) as err:
        explicit_or_named("Qwen/Qwen2.5-7B-Instruct", "lots", params_field="expected_params")
    assert err.value.field == "expected_params"


def test_no_name_and_an_empty_count_is_refused_as_a_count():
    assert explicit_or_named(None, "")["params"] is None
    with pytest.raises(SizingInputError, match="params: invalid value ''; expected a positive count"):
        explicit_or_named(None, "", need_params=True)


def test_bad_id_fails_before_params_are_looked_at():
    with pytest.raises(SizingInputError) as err:
        params("no-owner")
    assert err.value.field == "model"


@pytest.mark.parametrize("model_id, given, want, source", [
    ("okwinds/DeepSeek-R1-Distill-Qwen-32B-FP8", None, "fp8", "name"),
    ("okwinds/DeepSeek-R1-Distill-Qwen-32B-FP8", "FP16", "fp16", "given"),
    ("Qwen/Qwen2.5-72B-Instruct-AWQ", "", "int4", "name"),
    ("Qwen/Qwen2.5-7B-Instruct", None, None, None),
    ("Qwen/Qwen2.5-7B-Instruct", "bfloat16", "bf16", "given"),
    (None, "half", "fp16", "given"),
])
def test_precision_given_beats_the_name(model_id, given, want, source):
    claims = explicit_or_named(model_id, precision=given)
    assert (claims["precision"], claims["precision_source"]) == (want, source)


def test_the_name_precision_is_kept_beside_the_one_given():
    claims = explicit_or_named("okwinds/DeepSeek-R1-Distill-Qwen-32B-FP8", precision="fp16")
    assert claims["precision"] == "fp16" and claims["name_precision"] == "fp8"


def test_precision_given_badly_names_precision():
    with pytest.raises(SizingInputError) as err:
        explicit_or_named("Qwen/Qwen2.5-7B-Instruct", precision="fp12")
    assert err.value.field == "precision"


def test_module_has_no_ansible_import():
    with open(model_names.__file__) as handle:
        source = handle.read()
    assert "import ansible" not in source and "from ansible." not in source
