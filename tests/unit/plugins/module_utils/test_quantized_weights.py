"""Weights and disk by name for quantised formats: what the formats store, against real download sizes."""
import json
import math
import os
from fractions import Fraction

import pytest

from ansible_collections.llmops.deploy.plugins.module_utils import architecture, capacity, model_names, sizing
from ansible_collections.llmops.deploy.plugins.module_utils import precision as precisions

DOWNLOADS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "downloads", "quantized.json")
with open(DOWNLOADS) as _handle:
    REAL = json.load(_handle)


# What the files hold: the repository's listing, vLLM's 'Checkpoint size', the sum of the .safetensors files.
ON_DISK = ("download", "checkpoint_size", "safetensors")
# The one format whose weights take more GPU memory than their files: vLLM dequantizes bitsandbytes' double-quantised
# absmax to fp32 when it loads them. Its on-disk figures check the disk estimate, its loaded figures the weights.
LOADED_DIFFERS = ("bitsandbytes NF4 (double quant)",)
UNITS = {"GB": 10 ** 9, "MB": 10 ** 6, "GiB": 2 ** 30, "bytes": 1}
# The by-name target of issue 8 (AWQ, GPTQ, FP8, bitsandbytes of the 7B-72B class).
TOLERANCE = 0.05
APPROXIMATE = "approximate weights and disk"


def _ids(entries):
    return ["%s-%s" % (e["model"], e["measure"]) for e in entries]


@pytest.mark.parametrize("entry", REAL, ids=_ids(REAL))
def test_by_name_within_5_percent_of_the_real_download(entry):
    """Each real figure: a repository listing, vLLM's 'Checkpoint size', the weight files' sizes or its loaded weights
    (see the README)."""
    assert entry["source"] and entry["bytes"] > 0
    assert entry["measure"] in ON_DISK + ("loaded",)
    # A checkpoint whose name does not carry its line (a fine-tune) is sized by the name of one that does.
    sized = sizing.size_model(model=entry.get("sized_as", entry["model"]))
    assert sized["weight_format"] == entry["format"]
    keys = ("param_memory", "disk")
    if entry["format"] in LOADED_DIFFERS:
        keys = ("disk",) if entry["measure"] in ON_DISK else ("param_memory",)
    # Only a checkpoint whose stored layers the name cannot say (an unsloth dynamic quant) has a wider tolerance,
    # and then the result must say its figure is approximate; every other one is sized without that warning.
    tolerance = entry.get("by_name_tolerance", TOLERANCE)
    approximate = [w for w in sized["sizing_warnings"] if w.startswith(APPROXIMATE)]
    assert bool(approximate) == ("by_name_tolerance" in entry), approximate
    assert "by_name_tolerance" not in entry or entry["why_tolerance"]
    for key in keys:
        ratio = sized["requirements_bytes"][key] / float(entry["bytes"])
        assert 1 - tolerance <= ratio <= 1 + tolerance, (key, ratio)


@pytest.mark.parametrize("entry", [e for e in REAL if "files" in e], ids=_ids([e for e in REAL if "files" in e]))
def test_listed_files_add_up_to_the_figure(entry):
    # The hub lists sizes rounded to 3 significant digits ('3.98 GB'); the figure is their sum, file by file.
    assert entry["measure"] == "safetensors"
    total = 0
    for name, size in entry["files"].items():
        assert name.endswith(".safetensors")
        value, unit = size.split()
        total += float(value) * UNITS[unit]
    assert abs(total - entry["bytes"]) < 1


def test_real_figures_cover_the_formats_and_sizes_issue_8_names():
    formats = set(e["format"] for e in REAL)
    assert {"AWQ int4 g128", "GPTQ int4 g128", "GPTQ int8 g128", "FP8", "bitsandbytes NF4 (double quant)"} <= formats
    for fmt in ("GPTQ int8 g128", "bitsandbytes NF4 (double quant)"):
        sizes = set(architecture_size(e["model"]) for e in REAL if e["format"] == fmt and "sized_as" not in e)
        assert min(sizes) <= 8 and max(sizes) >= 70, (fmt, sizes)
    sizes = set(architecture_size(e["model"]) for e in REAL)
    assert min(sizes) <= 8 and max(sizes) >= 70


def architecture_size(model):
    """The nominal size in billions a model id carries (7B, 8B, 70B, ...)."""
    return model_names.parse_model_id(model)["params"] / 1e9


def test_disk_verdict_for_a_download_that_does_not_fit_is_insufficient():
    # Issue 8: 39.8 GB free against the 41.6 GB download of Qwen2.5-72B-Instruct-AWQ was judged 'tight' (36.0 GB).
    sized = sizing.size_model(model="Qwen/Qwen2.5-72B-Instruct-AWQ")
    hardware = {"gpus": [], "memory_total_mib": 1048576, "cpu_cores": 64, "disk_free_mib": int(39.8e9 / 2 ** 20)}
    disk = capacity.assess(sized, hardware, target="cpu")["resources"]["disk"]
    assert disk["verdict"] == "insufficient" and disk["required"] > 41


def _qwen25(size):
    facts = architecture.parse_config(architecture.reference_config(model_names.parse_model_id(
        "Qwen/Qwen2.5-%s-Instruct" % size)))
    return facts["params"]


# The stored bytes of each format, counted tensor by tensor from the published Qwen2.5 shapes as the quantisers write
# them (AutoAWQ: qweight int32 [in, out/8], qzeros int32 [in/128, out/8], scales fp16 [in/128, out]; GPTQ: qweight
# [in*b/32, out], qzeros [in/128, out*b/32], scales fp16 [in/128, out]; FP8: weight 1 byte + fp32 per output row;
# bitsandbytes NF4 double quant: 4-bit weight, uint8 absmax per 64, fp32 per 256 absmax); 16-bit embeddings,
# lm_head, norms and q/k/v biases. The aggregate estimate must agree within 1 %.
def _linear_shapes(size):
    hidden, inter, layers, heads, kv, vocab, tied, head_dim, _max = architecture._QWEN25[size]
    hd = head_dim or hidden // heads
    per_layer = [(hidden, heads * hd), (hidden, kv * hd), (hidden, kv * hd), (heads * hd, hidden),
                 (hidden, inter), (hidden, inter), (inter, hidden)]
    return per_layer * layers


def _tensor_bytes(size, fmt, loaded=False):
    total = 0
    for inp, out in _linear_shapes(size):
        if fmt == "awq":
            total += inp * out // 8 * 4 + inp // 128 * out // 8 * 4 + inp // 128 * out * 2
        elif fmt == "gptq-int8":
            total += inp * 8 // 32 * out * 4 + inp // 128 * out * 8 // 32 * 4 + inp // 128 * out * 2 + inp * 4
        elif fmt == "fp8":
            total += inp * out + out * 4
        elif loaded:  # bnb-4bit in vLLM: the absmax dequantized to one fp32 per 64 weights, the nested state freed
            total += inp * out // 2 + inp * out // 64 * 4
        else:  # bnb-4bit
            total += inp * out // 2 + inp * out // 64 + inp * out // (64 * 256) * 4
    params = _qwen25(size)
    linear = sum(i * o for i, o in _linear_shapes(size))
    return total + (params["total"] - linear) * 2


@pytest.mark.parametrize("size", ["7B", "14B", "32B", "72B"])
@pytest.mark.parametrize("suffix, fmt", [("AWQ", "awq"), ("GPTQ-Int8", "gptq-int8"), ("FP8", "fp8"),
                                         ("bnb-4bit", "bnb-4bit")])
def test_format_arithmetic_matches_the_tensor_layout(size, suffix, fmt):
    sized = sizing.size_model(model="Qwen/Qwen2.5-%s-Instruct-%s" % (size, suffix))
    assert abs(sized["requirements_bytes"]["disk"] / float(_tensor_bytes(size, fmt)) - 1) < 0.01
    loaded = _tensor_bytes(size, fmt, loaded=True)
    assert abs(sized["requirements_bytes"]["param_memory"] / float(loaded) - 1) < 0.01


def test_bitsandbytes_weights_take_more_gpu_memory_than_their_files():
    # 6.98e9 quantised weights of Llama-3.1-8B: 4.127 bits in the files, 4.5 in vLLM (fp32 absmax): +0.33 GB.
    sized = sizing.size_model(model="unsloth/Meta-Llama-3.1-8B-Instruct-bnb-4bit")
    need = sized["requirements_bytes"]
    assert 0.32e9 < need["param_memory"] - need["disk"] < 0.34e9
    assert "fp32" in sized["basis"]["param_memory"]
    # The same from the checkpoint's config.json, by either method; the disk stays what the files store.
    config = architecture.reference_config(model_names.parse_model_id("meta-llama/Llama-3.1-8B-Instruct"))
    config = dict(config, quantization_config={
        "quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4",
        "bnb_4bit_use_double_quant": True})
    config.pop("_reference")
    for method in ("seed", "detailed"):
        by_config = sizing.size_model(model="someone/my-llama-8b", params="8B", config=config, method=method)
        assert by_config["requirements_bytes"]["param_memory"] == need["param_memory"], method
        assert by_config["requirements_bytes"]["disk"] == need["disk"], method
    # With the safetensors headers the disk is their data bytes; the GPU holds the fp32 absmax on top of them.
    headers = {"params_total": 8030261248, "data_bytes": 5702000000, "precision": "int4",
               "params_by_dtype": {"int4(packed)": 6979321856, "BF16": 1050939392}}
    read = sizing.size_model(model="someone/my-llama-8b", config=config, weights=headers, method="detailed")
    assert read["requirements_bytes"]["disk"] == 5702000000
    extra = read["requirements_bytes"]["param_memory"] - read["requirements_bytes"]["disk"]
    assert abs(extra - (need["param_memory"] - need["disk"])) <= 8


def test_by_name_weights_beat_the_guides_bytes_per_parameter_for_quantised_names():
    sized = sizing.size_model(model="Qwen/Qwen2.5-7B-Instruct-AWQ")
    # 7.62B real parameters, 1.09B of them embedding/lm_head at 16 bits: about 5.6 GB, where 7B x 0.5 says 3.5.
    assert 5.4 < sized["disk_gb"] < 5.8 and sized["effective_bits_per_param"] > 5.5
    assert "published shapes of Qwen2.5-7B" in sized["basis"]["param_memory"]
    # A bare count and precision stays the guide's table 2.2.
    assert sizing.size_model(params="7B", precision="awq")["param_memory_gb"] == 3.5


def test_unknown_line_uses_the_names_size_at_the_formats_bits():
    sized = sizing.size_model(model="someone/Foo-13B-AWQ")
    assert sized["weight_format"] == "AWQ int4 g128"
    assert sized["requirements_bytes"]["disk"] == int(13e9 * (4 + 20 / 128.0) / 8)
    assert "no published shapes" in sized["basis"]["param_memory"]


def test_seed_with_a_quantised_config_counts_its_format_from_the_config():
    path = os.path.join(os.path.dirname(DOWNLOADS), "..", "configs", "qwen2.5-7b-instruct-awq.json")
    with open(path) as handle:
        config = json.load(handle)
    # A name that does not say AWQ: the config's quantization_config does, and its shapes size the weights.
    sized = sizing.size_model(model="someone/my-qwen-7b-chat", params="7B", config=config, method="seed")
    assert sized["precision"] == "int4" and sized["weight_format"] == "AWQ int4 g128"
    assert "the shapes in config.json" in sized["basis"]["param_memory"]
    by_name = sizing.size_model(model="Qwen/Qwen2.5-7B-Instruct-AWQ")
    assert sized["requirements_bytes"]["disk"] == by_name["requirements_bytes"]["disk"]


DYNAMIC = [e for e in REAL if "by_name_tolerance" in e]


def test_dynamic_quant_allowance_is_measured_on_the_real_checkpoints():
    # The real downloads against the every-linear-layer-at-4-bits count of the same shapes (the plain bnb-4bit name).
    measured = sorted(e["bytes"] / float(sizing.size_model(model=e["model"].replace("-unsloth-bnb-4bit", "-bnb-4bit"))[
        "requirements_bytes"]["disk"]) for e in DYNAMIC)
    assert len(measured) >= 2
    assert [round(m, 3) for m in measured] == [float(m) for m in sizing.DYNAMIC_QUANT_MEASURED]
    assert measured[0] < sizing.DYNAMIC_QUANT_ALLOWANCE < measured[-1]


def test_dynamic_quant_by_name_is_never_silent():
    plain = sizing.size_model(model="unsloth/Qwen2.5-7B-Instruct-bnb-4bit")
    dynamic = sizing.size_model(model="unsloth/Qwen2.5-7B-Instruct-unsloth-bnb-4bit")
    assert not [w for w in plain["sizing_warnings"] if w.startswith(APPROXIMATE)]
    (warning,) = [w for w in dynamic["sizing_warnings"] if w.startswith(APPROXIMATE)]
    assert "preflight_hub_metadata" in warning and "safetensors headers" in warning and "1.07-1.36" in warning and "over 1.5 x" in warning
    assert "approximate" in dynamic["basis"]["param_memory"]
    for key in ("disk", "param_memory"):
        ratio = dynamic["requirements_bytes"][key] / float(plain["requirements_bytes"][key])
        assert abs(ratio - 1.21) < 1e-6, key
    # The same on a CPU target, and from a config whose bitsandbytes skip list keeps decoder layers at 16 bits.
    assert warning in sizing.size_model(model="unsloth/Qwen2.5-7B-Instruct-unsloth-bnb-4bit",
                                        target="cpu")["sizing_warnings"]
    config = architecture.reference_config(model_names.parse_model_id("Qwen/Qwen2.5-7B-Instruct"))
    config.pop("_reference")
    quant = {"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4",
             "bnb_4bit_use_double_quant": True, "llm_int8_skip_modules": ["lm_head"]}
    kept = dict(quant, llm_int8_skip_modules=["lm_head", "model.layers.3.mlp", "model.layers.27.self_attn"])
    by_config = sizing.size_model(model="someone/my-qwen-7b", params="7B", config=dict(config, quantization_config=quant))
    assert not [w for w in by_config["sizing_warnings"] if w.startswith(APPROXIMATE)]
    kept_sized = sizing.size_model(model="someone/my-qwen-7b", params="7B",
                                   config=dict(config, quantization_config=kept))
    assert [w for w in kept_sized["sizing_warnings"] if w.startswith(APPROXIMATE) and "llm_int8_skip_modules" in w]


def test_gemma3_quantised_by_name_keeps_the_vision_tower_at_16_bits():
    sized = sizing.size_model(model="unsloth/gemma-3-12b-it-bnb-4bit")
    facts = architecture.parse_config(architecture.reference_config(model_names.parse_model_id(
        "unsloth/gemma-3-12b-it-bnb-4bit")))
    params = facts["params"]
    assert 0.40e9 < params["vision"] < 0.44e9 and "vision tower" in sized["basis"]["param_memory"]
    quantised = params["total"] - params["unquantized"]
    assert sized["requirements_bytes"]["disk"] == int(math.ceil(
        Fraction(quantised) * precisions.STORAGE_FORMATS["bnb-4bit"][1] / 8 + params["unquantized"] * 2))
    # Was 12e9 x 4.13 bits / 8 = 6.19 GB by the name's size alone: the 16-bit embeddings (1.0B) and tower count.
    assert 8.3e9 < sized["requirements_bytes"]["disk"] < 8.5e9
