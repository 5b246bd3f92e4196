"""config.json -> architecture facts: real configs with hand-checked KV-per-token and parameter figures, bad configs."""
import json
import os
import struct

import pytest

from ansible_collections.llmops.deploy.plugins.module_utils import architecture
from ansible_collections.llmops.deploy.plugins.module_utils.sizing_errors import SizingInputError

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "configs")


def load(name):
    with open(os.path.join(CONFIGS, name + ".json")) as handle:
        return json.load(handle)


def facts(name):
    return architecture.parse_config(load(name))


# name, attention, layers, heads, kv heads, head_dim, KV bytes per token at 2 bytes (hand-checked arithmetic),
# published total parameters, relative tolerance of our count against it.
KNOWN = [
    ("llama-3.1-8b", "gqa", 32, 32, 8, 128, 2 * 32 * 8 * 128 * 2, 8.03e9, 0.005),
    ("qwen2.5-7b", "gqa", 28, 28, 4, 128, 2 * 28 * 4 * 128 * 2, 7.61e9, 0.005),
    ("qwen2.5-0.5b", "gqa", 24, 14, 2, 64, 2 * 24 * 2 * 64 * 2, 0.494e9, 0.005),
    ("deepseek-v3", "mla", 61, 128, 128, 56, 61 * (512 + 64) * 2, 671e9, 0.005),
    ("mixtral-8x7b-v0.1", "gqa", 32, 32, 8, 128, 2 * 32 * 8 * 128 * 2, 46.7e9, 0.005),
    ("mistral-7b-v0.1", "gqa", 32, 32, 8, 128, 2 * 32 * 8 * 128 * 2, 7.24e9, 0.005),
    ("gemma-2-9b", "gqa", 42, 16, 8, 256, 2 * 42 * 8 * 256 * 2, 9.24e9, 0.005),
    ("qwen3-32b", "gqa", 64, 64, 8, 128, 2 * 64 * 8 * 128 * 2, 32.8e9, 0.005),
    ("llama-3.3-70b-instruct-fp8-dynamic", "gqa", 80, 64, 8, 128, 2 * 80 * 8 * 128 * 2, 70.6e9, 0.005),
    ("qwen3-235b-a22b-fp8", "gqa", 94, 64, 4, 128, 2 * 94 * 4 * 128 * 2, 235e9, 0.005),
]


@pytest.mark.parametrize("name, attention, layers, heads, kv, head_dim, kv_per_token, published, tol", KNOWN)
def test_known_architectures(name, attention, layers, heads, kv, head_dim, kv_per_token, published, tol):
    got = facts(name)
    assert got["attention"] == attention
    assert (got["num_hidden_layers"], got["num_attention_heads"], got["num_key_value_heads"]) == (layers, heads, kv)
    assert got["head_dim"] == head_dim
    assert architecture.kv_bytes_per_token(got, 2) == kv_per_token
    assert abs(got["params"]["total"] / published - 1) < tol, got["params"]["total"]
    parts = got["params"]
    assert parts["split"] + parts["replicated"] + parts["kv_proj"] == parts["total"]


def test_llama_8b_parameters_exactly():
    p = facts("llama-3.1-8b")["params"]
    embedding = 128256 * 4096
    per_layer = (4096 * 4096 * 2 + 4096 * 1024 * 2) + 3 * 4096 * 14336 + 2 * 4096
    assert p["total"] == 2 * embedding + 32 * per_layer + 4096 == 8030261248


def test_tied_embeddings_counted_once():
    tied = facts("qwen2.5-0.5b")
    assert tied["tie_word_embeddings"] is True and tied["params"]["lm_head"] == 0
    # q/k/v carry biases in Qwen2: 896x896+896, 2 x (896x128+128), o 896x896; MLP 3 x 896 x 4864; 2 norms.
    per_layer = 896 * 896 + 896 + 2 * (896 * 128 + 128) + 896 * 896 + 3 * 896 * 4864 + 2 * 896
    assert tied["params"]["total"] == 151936 * 896 + 24 * per_layer + 896 == 494032768
    assert facts("qwen2.5-7b")["tie_word_embeddings"] is False


def test_head_dim_explicit_or_derived():
    assert facts("gemma-2-9b")["head_dim_source"].startswith("read")  # 256, not 3584 / 16 = 224
    assert facts("llama-3.1-8b")["head_dim_source"] == "hidden_size / num_attention_heads"


def test_deepseek_v3_mla_moe():
    got = facts("deepseek-v3")
    assert got["mla"] == {"kv_lora_rank": 512, "q_lora_rank": 1536, "qk_rope_head_dim": 64, "qk_nope_head_dim": 128,
                          "v_head_dim": 128}
    assert got["moe"]["experts"] == 256 and got["moe"]["dense_layers"] == 3 and got["moe"]["moe_layers"] == 58
    assert got["moe"]["shared_intermediate_size"] == 2048
    assert abs(got["params"]["active"] / 37e9 - 1) < 0.03  # 37B activated (DeepSeek-V3 report)
    assert got["mtp_layers"] == 1
    assert got["quantization"]["format"] == "fp8" and got["quantization"]["block"] == [128, 128]


def test_mixtral_experts_all_resident_and_active_two():
    got = facts("mixtral-8x7b-v0.1")
    assert got["moe"]["experts"] == 8 and got["moe"]["experts_per_token"] == 2
    assert abs(got["params"]["active"] / 12.9e9 - 1) < 0.01  # "12.9B active parameters" (Mistral AI)


def test_sliding_windows():
    mistral = facts("mistral-7b-v0.1")
    assert (mistral["sliding_layers"], mistral["sliding_window"]) == (32, 4096)
    # At 32k tokens every layer keeps only 4096.
    assert architecture.kv_bytes_for_context(mistral, 2, 32768) == 131072 * 4096
    gemma = facts("gemma-2-9b")
    assert (gemma["sliding_layers"], gemma["full_layers"]) == (21, 21)
    per_layer_token = 2 * 8 * 256 * 2
    assert architecture.kv_bytes_for_context(gemma, 2, 8192) == 21 * per_layer_token * 8192 + \
        21 * per_layer_token * 4096
    # Qwen2.5 ships sliding_window 131072 with use_sliding_window false: no sliding layer.
    assert facts("qwen2.5-7b")["sliding_layers"] == 0


def test_qwen2_sliding_from_max_window_layers():
    cfg = dict(load("qwen2.5-7b"), use_sliding_window=True, sliding_window=4096, max_window_layers=20)
    got = architecture.parse_config(cfg)
    assert (got["full_layers"], got["sliding_layers"]) == (20, 8)


def test_gemma3_pattern_and_layer_types():
    cfg = dict(load("gemma-2-9b"), model_type="gemma3_text", sliding_window=1024, sliding_window_pattern=6,
               num_hidden_layers=12)
    got = architecture.parse_config(cfg)
    assert (got["full_layers"], got["sliding_layers"]) == (2, 10)
    cfg["layer_types"] = ["full_attention"] * 3 + ["sliding_attention"] * 9
    assert architecture.parse_config(cfg)["sliding_layers"] == 9


def test_nested_text_config():
    vl = {"architectures": ["Qwen2VLForConditionalGeneration"], "torch_dtype": "bfloat16",
          "text_config": dict(load("qwen2.5-7b"), torch_dtype=None)}
    del vl["text_config"]["torch_dtype"]
    got = architecture.parse_config(vl)
    assert got["nested_text_config"] is True and got["num_hidden_layers"] == 28 and got["precision"] == "bf16"


@pytest.mark.parametrize("name, fmt, bits, group", [
    ("qwen2.5-7b-instruct-awq", "awq", 4, 128),
    ("llama-3.3-70b-instruct-fp8-dynamic", "fp8", 8, None),
    ("deepseek-v3", "fp8", 8, None),
])
def test_quantization_config(name, fmt, bits, group):
    q = facts(name)["quantization"]
    assert (q["format"], q["bits"], q["group_size"]) == (fmt, bits, group)


def test_bitsandbytes_config():
    bnb = {"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4",
           "bnb_4bit_use_double_quant": True}
    cfg = dict(load("llama-3.1-8b"), quantization_config=bnb)
    q = architecture.parse_config(cfg)["quantization"]
    assert (q["format"], q["bits"], q["double_quant"]) == ("bnb-4bit", 4, True)


@pytest.mark.parametrize("change, field", [
    ({"num_hidden_layers": None}, "config.num_hidden_layers"),
    ({"num_attention_heads": 0}, "config.num_attention_heads"),
    ({"num_attention_heads": "32"}, "config.num_attention_heads"),
    ({"num_key_value_heads": 5}, "config.num_key_value_heads"),
    ({"vocab_size": -1}, "config.vocab_size"),
    ({"hidden_size": 4097}, "config.head_dim"),
    ({"intermediate_size": None}, "config.intermediate_size"),
    ({"quantization_config": {"quant_method": "magic"}}, "config.quantization_config.quant_method"),
    ({"quantization_config": {"quant_method": "gptq", "bits": 5}}, "config.quantization_config.bits"),
    ({"layer_types": ["full_attention"]}, "config.layer_types"),
])
def test_bad_configs_name_the_key(change, field):
    cfg = load("llama-3.1-8b")
    for key, value in change.items():
        if value is None:
            cfg.pop(key)
        else:
            cfg[key] = value
    with pytest.raises(SizingInputError) as err:
        architecture.parse_config(cfg)
    assert err.value.field == field
    assert str(err.value).startswith(field + ":")


def test_config_must_be_a_dict():
    with pytest.raises(SizingInputError) as err:
        architecture.parse_config("llama")
    assert err.value.field == "config"


def _safetensors(path, tensors):
    header, offset = {}, 0
    for name, (dtype, shape, size) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode("utf-8")
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(raw)) + raw + b"\0" * offset)


def test_read_local_model_reads_config_and_headers(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(load("qwen2.5-0.5b")))
    _safetensors(str(tmp_path / "model.safetensors"), {"a.weight": ("BF16", [4, 8], 64), "b": ("F32", [2], 8)})
    config, summary = architecture.read_local_model(str(tmp_path))
    assert config["num_hidden_layers"] == 24
    assert summary["data_bytes"] == 72 and summary["params_total"] == 34 and summary["precision"] == "bf16"
    config, summary = architecture.read_local_model(str(tmp_path / "config.json"))
    assert summary is None


@pytest.mark.parametrize("content", [None, b"{not json", b"[1, 2]"])
def test_read_config_file_errors(tmp_path, content):
    path = tmp_path / "config.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SizingInputError) as err:
        architecture.read_config_file(str(path))
    assert err.value.field == "config_path"


# Multimodal configs: the language model under text_config with transformers' defaults, the vision tower counted.
@pytest.mark.parametrize("name, published, vision_low, vision_high", [
    ("gemma-3-27b-it", 27.43e9, 0.40e9, 0.44e9),
    ("qwen2.5-vl-7b-instruct", 8.29e9, 0.66e9, 0.69e9),
    ("llama-3.2-11b-vision-instruct", 10.67e9, 0.85e9, 0.95e9)])
def test_multimodal_configs_count_the_language_model_and_the_vision_tower(name, published, vision_low, vision_high):
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "configs", name + ".json")) as f:
        facts = architecture.parse_config(json.load(f))
    assert vision_low < facts["vision"]["params"] < vision_high
    assert facts["params"]["vision"] == facts["vision"]["params"]
    assert abs(facts["params"]["total"] / published - 1) < 0.01


def test_gemma3_text_config_takes_transformers_defaults():
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "configs",
                           "gemma-3-27b-it.json")) as handle:
        config = json.load(handle)
    assert "vocab_size" not in config["text_config"]
    facts = architecture.parse_config(config)
    assert facts["vocab_size"] == 262208 and facts["tie_word_embeddings"] is True
    assert "vocab_size" in facts["text_config_defaults"] and facts["model_type"] == "gemma3_text"
    # 62 layers, every 6th global: 52 sliding layers of a 1024-token window.
    assert (facts["sliding_layers"], facts["full_layers"], facts["sliding_window"]) == (52, 10, 1024)
    assert facts["precision"] == "bf16"


def test_vision_tower_stays_16_bit_in_detailed_weights():
    from ansible_collections.llmops.deploy.plugins.module_utils import sizing
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "configs",
                           "qwen2.5-vl-7b-instruct.json")) as handle:
        config = json.load(handle)
    sized = sizing.size_model(method="detailed", config=config)
    assert abs(sized["requirements_bytes"]["param_memory"] / (8.29e9 * 2) - 1) < 0.01


# Published shapes by name for the lines issue 8 found missing: Qwen2 and Gemma-3.
def _by_name(model_id):
    from ansible_collections.llmops.deploy.plugins.module_utils import model_names
    return architecture.reference_config(model_names.parse_model_id(model_id))


@pytest.mark.parametrize("size", ["7B", "72B"])
def test_qwen2_has_the_shapes_of_qwen25_at_7b_and_72b(size):
    qwen2 = architecture.parse_config(_by_name("Qwen/Qwen2-%s-Instruct" % size))
    qwen25 = architecture.parse_config(_by_name("Qwen/Qwen2.5-%s-Instruct" % size))
    assert qwen2["params"] == qwen25["params"]
    assert "Qwen2-%s" % size in _by_name("Qwen/Qwen2-%s-Instruct-GPTQ-Int8" % size)["_reference"]


@pytest.mark.parametrize("model, published", [
    # The parameter counts the checkpoints publish (model cards / safetensors metadata), to 0.5 %.
    ("Qwen/Qwen2-0.5B-Instruct", 0.494e9), ("Qwen/Qwen2-1.5B-Instruct", 1.54e9),
    ("Qwen/Qwen2-57B-A14B-Instruct", 57.4e9), ("google/gemma-3-1b-it", 1.0e9), ("google/gemma-3-4b-it", 4.30e9),
    ("google/gemma-3-12b-it", 12.2e9), ("google/gemma-3-27b-it", 27.4e9)])
def test_reference_shapes_give_the_published_parameter_counts(model, published):
    facts = architecture.parse_config(_by_name(model))
    assert abs(facts["params"]["total"] / published - 1) < 0.005


def test_qwen2_57b_a14b_is_a_mixture_of_experts_with_14b_active():
    facts = architecture.parse_config(_by_name("Qwen/Qwen2-57B-A14B-Instruct-GPTQ-Int4"))
    assert facts["model_type"] == "qwen2_moe" and facts["moe"]["experts"] == 64
    assert facts["moe"]["dense_layers"] == 0 and facts["moe"]["shared_expert_gate"]
    assert 14.0e9 < facts["params"]["active"] < 14.5e9


def test_gemma3_by_name_is_the_published_config_with_its_vision_tower():
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "configs",
                           "gemma-3-27b-it.json")) as handle:
        published = architecture.parse_config(json.load(handle))
    by_name = architecture.parse_config(_by_name("unsloth/gemma-3-27b-it-bnb-4bit"))
    for key in ("params", "vision", "num_hidden_layers", "num_key_value_heads", "head_dim", "vocab_size",
                "sliding_layers", "sliding_window", "tie_word_embeddings", "max_position_embeddings"):
        assert by_name[key] == published[key], key
    # Every multimodal size has the same SigLIP tower; 1B is text only.
    towers = set(architecture.parse_config(_by_name("google/gemma-3-%s-it" % s))["params"]["vision"] -
                 architecture.parse_config(_by_name("google/gemma-3-%s-it" % s))["hidden_size"] * 1152
                 for s in ("4b", "12b", "27b"))
    assert len(towers) == 1
    one = architecture.parse_config(_by_name("google/gemma-3-1b-it"))
    assert one["vision"] is None and one["params"]["total"] == 999885952
    assert (one["vocab_size"], one["num_key_value_heads"], one["sliding_window"]) == (262144, 1, 512)


@pytest.mark.parametrize("model, part, files_gb", [
    # unsloth/gemma-3-4b-it (a copy of google/gemma-3-4b-it, BF16 safetensors with the vision tower):
    # https://huggingface.co/unsloth/gemma-3-4b-it/tree/main (commit 90fe72f), 4.96 + 3.64 GB.
    ("google/gemma-3-4b-it", "total", (4.96, 3.64)),
    # The BF16 GGUF of the text model alone (the vision tower ships as a separate mmproj file):
    # https://huggingface.co/unsloth/gemma-3-27b-it-GGUF/tree/main/BF16 (commit 2614ea6), 49.9 + 4.13 GB.
    ("google/gemma-3-27b-it", "text", (49.9, 4.13))])
def test_gemma3_shapes_match_real_16_bit_files(model, part, files_gb):
    params = architecture.parse_config(_by_name(model))["params"]
    count = params["total"] - (params["vision"] if part == "text" else 0)
    # Listings round to 3 significant digits: within 0.5 %.
    assert abs(count * 2 / (sum(files_gb) * 1e9) - 1) < 0.005
