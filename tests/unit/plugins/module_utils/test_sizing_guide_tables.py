"""The guide's tables 2.2, 2.3.1 and 2.3.2 are the acceptance data: every number, every row."""
import json
import os

import pytest

from ansible_collections.llmops.deploy.plugins.module_utils import capacity, sizing
from ansible_collections.llmops.deploy.plugins.module_utils.sizing_errors import SizingInputError

# Table 2.2: precision -> bytes per parameter, and the 32B example.
TABLE_2_2 = [
    ("INT4", 0.5, 16),
    ("INT8", 1, 32),
    ("FP8", 1, 32),
    ("FP16", 2, 64),
    ("FP32", 4, 128),
]

# Table 2.3.1 (FP16): params, param memory GB, GPU GB, CPU GB, cores label, hardware example (count, GPU model).
TABLE_2_3_1 = [
    ("1.5B", 3, 4.5, 6, 4, None, "4", (1, "RTX 3060 12GB")),
    ("7B", 14, 21, 28, 8, None, "8", (1, "RTX 4090")),
    ("8B", 16, 24, 32, 16, None, "16", (1, "A100 40GB")),
    ("32B", 64, 96, 128, 32, None, "32", (2, "A100 80GB")),
    ("70B", 140, 210, 280, 64, None, "64", (4, "A100 80GB")),
    ("671B", 1342, 2013, 2684, 128, None, "128+", (32, "A100 80GB")),
]

# Table 2.3.2 (FP32).
TABLE_2_3_2 = [
    ("1.5B", 6, 9, 12, 4, 8, "4-8", (1, "RTX 3090")),
    ("7B", 28, 42, 56, 8, 16, "8-16", (1, "A100 40GB")),
    ("8B", 32, 48, 64, 16, 32, "16-32", (1, "A100 80GB")),
    ("32B", 128, 192, 256, 32, 64, "32-64", (4, "A100 80GB")),
    ("70B", 280, 420, 560, 64, 128, "64-128", (8, "A100 80GB")),
    ("671B", 2684, 4026, 5368, 256, None, "256+", (64, "A100 80GB")),
]


@pytest.mark.parametrize("precision, bpp, example_gb", TABLE_2_2)
def test_table_2_2_bytes_per_parameter_and_32b_example(precision, bpp, example_gb):
    result = sizing.size_model(params="32B", precision=precision)
    assert result["bytes_per_param"] == bpp
    assert result["param_memory_gb"] == example_gb


@pytest.mark.parametrize("precision, rows", [("FP16", TABLE_2_3_1), ("FP32", TABLE_2_3_2)])
def test_tables_2_3_every_number(precision, rows):
    for params, param_gb, gpu_gb, cpu_gb, cores, cores_max, label, _hw in rows:
        result = sizing.size_model(params=params, precision=precision)
        assert (result["param_memory_gb"], result["gpu_memory_gb"], result["cpu_memory_gb"]) == (
            param_gb, gpu_gb, cpu_gb), params
        assert (result["cpu_cores"], result["cpu_cores_max"], result["cpu_cores_label"]) == (
            cores, cores_max, label), params


def _example_verdict(params, precision, count, gpu_model):
    sized = sizing.size_model(params=params, precision=precision)
    return capacity.assess(sized, {"gpu_model": gpu_model, "gpu_count": count})["resources"]["gpu_memory"], sized


@pytest.mark.parametrize("precision, row", [("FP16", r) for r in TABLE_2_3_1] + [("FP32", r) for r in TABLE_2_3_2])
def test_hardware_example_column(precision, row):
    """Each row's "适用硬件示例": the engine's GPU count against the guide's, with the 20 % reserve."""
    params, count, gpu_model = row[0], row[7][0], row[7][1]
    gpu, sized = _example_verdict(params, precision, count, gpu_model)
    plan = sizing.gpu_plan(sized["requirements_bytes"]["gpu_memory"],
                           capacity.gpu_catalog.lookup(gpu_model)["memory_total_mib"])
    if (params, precision) == ("7B", "FP32"):
        # The guide's one short example: 42 GB on one A100 40GB (40960 MiB = 42.95 GB) leaves no 20 % reserve.
        assert gpu["verdict"] == "tight"
        assert plan["gpus"] == 2 and plan["gpus_minimum"] == 1
        assert "not the 20% reserve" in gpu["reason"] and "2 x A100 40GB" in gpu["reason"]
    else:
        assert gpu["verdict"] == "fits", gpu["reason"]
        assert plan["gpus"] == count
        # Power of two, and the next smaller power of two would not do.
        if count > 1:
            smaller = _example_verdict(params, precision, count // 2, gpu_model)[0]
            assert smaller["verdict"] in ("tight", "insufficient")


def test_671b_fp16_is_four_nodes_of_eight():
    sized = sizing.size_model(params="671B", precision="fp16")
    plan = sizing.gpu_plan(sized["requirements_bytes"]["gpu_memory"], 81920)
    assert (plan["gpus"], plan["nodes"], plan["tensor_parallel_size"], plan["pipeline_parallel_size"]) == (32, 4, 8, 4)
    plan = sizing.gpu_plan(sizing.size_model(params="671B", precision="fp32")["requirements_bytes"]["gpu_memory"],
                           81920)
    assert (plan["gpus"], plan["nodes"], plan["tensor_parallel_size"]) == (64, 8, 8)


def test_gpus_per_node_changes_the_split_not_the_count():
    required = sizing.size_model(params="671B", precision="fp16")["requirements_bytes"]["gpu_memory"]
    plan = sizing.gpu_plan(required, 81920, gpus_per_node=4)
    assert (plan["gpus"], plan["nodes"], plan["tensor_parallel_size"], plan["pipeline_parallel_size"]) == (32, 8, 4, 8)
    plan = sizing.gpu_plan(required, 81920, gpus_per_node=6)  # TP groups stay powers of two
    assert (plan["gpus"], plan["tensor_parallel_size"], plan["pipeline_parallel_size"]) == (32, 4, 8)


def test_single_host_too_small_for_671b_says_multi_node():
    sized = sizing.size_model(params="671B", precision="fp16")
    result = capacity.assess(sized, {"gpu_model": "A100 80GB", "gpu_count": 8, "memory_total_mib": 4 * 1024 * 1024,
                                     "cpu_cores": 256, "disk_free_mib": 4 * 1024 * 1024})
    assert result["verdict"] == "insufficient"
    assert result["gpus_needed"] == 32
    assert "multi-node deployment of 4 nodes" in result["resources"]["gpu_memory"]["reason"]


def test_units_mib_are_converted_exactly_not_as_gib():
    # 21 GB (7B FP16) x 1.2 = 25.2 GB; an RTX 4090 reports 24564 MiB = 25.757 GB: fits. Read as GiB-as-GB (24.0)
    # it would not.
    gpu = _example_verdict("7B", "FP16", 1, "RTX 4090")[0]
    assert gpu["verdict"] == "fits"
    assert gpu["available"] == 25.757
    assert gpu["available_gib"] == 23.99


@pytest.mark.parametrize("reserve, verdict", [(0.0, "fits"), (0.2, "fits"), (0.22, "fits"), (0.23, "tight"),
                                              (0.5, "tight")])
def test_reserve_moves_the_boundary(reserve, verdict):
    # 7B FP16: 21 GB on 24564 MiB = 25.757 GB: fits up to a 22.6 % reserve.
    sized = sizing.size_model(params="7B", precision="fp16", reserve=reserve)
    result = capacity.assess(sized, {"gpu_model": "RTX 4090", "gpu_count": 1}, reserve=reserve)
    assert result["resources"]["gpu_memory"]["verdict"] == verdict


@pytest.mark.parametrize("reserve", [-0.1, 0.51, 1, "0.2", None, True, float("nan")])
def test_reserve_out_of_range_is_refused(reserve):
    with pytest.raises(SizingInputError) as err:
        sizing.size_model(params="7B", precision="fp16", reserve=reserve)
    assert "reserve" in str(err.value) and "0 to 0.5" in str(err.value)


@pytest.mark.parametrize("params, label", [
    ("0.5B", "4"), ("3B", "4"), ("4B", "8"), (8030261248, "16"), ("14B", "16"), ("20B", "32"), ("72B", "64"),
    ("235B", "128+"), ("1T", "128+")])
def test_cores_take_the_nearest_row(params, label):
    # Nearest on a log scale: 8.03B is the 8B row (16), not 32B; 72B the 70B row (64), not 671B (128+).
    assert sizing.size_model(params=params, precision="int8")["cpu_cores_label"] == label


def test_seed_and_detailed_pick_the_row_from_the_same_nominal_size():
    path = os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "configs", "llama-3.1-8b.json")
    with open(path) as handle:
        config = json.load(handle)
    model = "LLM-Research/Meta-Llama-3.1-8B-Instruct"
    seed = sizing.size_model(model=model, precision="bf16")
    detailed = sizing.size_model(model=model, method="detailed", config=config)
    assert detailed["params"] == 8030261248 and seed["params"] == 8000000000
    assert seed["cpu_cores_label"] == detailed["cpu_cores_label"] == "16"
    assert "row 8B" in detailed["basis"]["cpu_cores"]


def test_int4_half_byte_is_exact():
    result = sizing.size_model(params="1.5B", precision="w4a16")
    assert (result["param_memory_gb"], result["gpu_memory_gb"], result["cpu_memory_gb"]) == (0.75, 1.125, 1.5)
    assert result["requirements_bytes"]["gpu_memory"] == 1125000000


def test_bf16_added_beside_fp16():
    assert sizing.size_model(params="7B", precision="bfloat16")["gpu_memory_gb"] == 21


def test_unknown_method_is_refused():
    with pytest.raises(SizingInputError) as err:
        sizing.size_model(params="7B", precision="fp16", method="magic")
    assert "method" in str(err.value) and "seed" in str(err.value)


@pytest.mark.parametrize("cores, verdict", [(64, "fits"), (16, "fits"), (15, "tight"), (2, "tight")])
def test_cores_are_a_recommendation(cores, verdict):
    sized = sizing.size_model(params="8B", precision="fp16")
    entry = capacity.assess(sized, {"gpus": [], "cpu_cores": cores})["resources"]["cpu_cores"]
    assert entry["verdict"] == verdict
    assert entry["required"] == 16
    if verdict == "tight":
        assert "recommends 16" in entry["reason"] and "host has %d" % cores in entry["reason"]
