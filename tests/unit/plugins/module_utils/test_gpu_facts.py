# -*- coding: utf-8 -*-
# Copyright: (c) 2025, llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""gpu_facts: parsers over every recorded fixture, and the probe with replayed or real tools."""

import glob
import json
import os
import subprocess

import pytest

from ansible_collections.llmops.deploy.plugins.module_utils import gpu_facts
from ansible_collections.llmops.deploy.plugins.module_utils.gpu_facts import (
    GPU_KEYS,
    NVIDIA_LEGACY_QUERY_FIELDS,
    NVIDIA_QUERY_FIELDS,
    GpuFactsError,
    collect_gpus,
    nvidia_smi_argv,
    parse_amd_smi_json,
    parse_nvidia_smi_csv,
    parse_rocm_smi_json,
)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
GPU_FIXTURES = os.path.join(REPO_ROOT, "tests", "fixtures", "gpu")
FAKE_BIN = os.path.join(REPO_ROOT, "tests", "fixtures", "fake-bin")


def fixture(*parts):
    with open(os.path.join(GPU_FIXTURES, *parts), encoding="utf-8") as handle:
        return handle.read()


def nv(index, name, uuid, bus, driver, total, used, free, cc):
    return {
        "index": index, "vendor": "nvidia", "name": name, "uuid": uuid, "pci_bus_id": bus,
        "driver_version": driver, "memory_total_mib": total, "memory_used_mib": used,
        "memory_free_mib": free, "compute_capability": cc, "arch": None,
        "unified_memory": total is None,
    }


def amd(index, name, bus, driver, total, used, free, arch, uuid=None):
    return {
        "index": index, "vendor": "amd", "name": name, "uuid": uuid, "pci_bus_id": bus,
        "driver_version": driver, "memory_total_mib": total, "memory_used_mib": used,
        "memory_free_mib": free, "compute_capability": None, "arch": arch,
        "unified_memory": total is None,
    }


H100 = "NVIDIA H100 80GB HBM3"
H200 = "NVIDIA H200"
A100_80 = "NVIDIA A100-SXM4-80GB"
A100_40 = "NVIDIA A100-PCIE-40GB"
RTX4090 = "NVIDIA GeForce RTX 4090"
RTX3060 = "NVIDIA GeForce RTX 3060"
GB10_UUID = "GPU-2dee1e25-b3b5-007e-2b55-79f2d0f2ebe5"

H100_X8 = [
    nv(0, H100, "GPU-5f3c2a91-7d4e-4b8a-9c1e-2f6d8a0b3e71", "00000000:18:00.0", "550.54.15", 81559, 0, 81008, "9.0"),
    nv(1, H100, "GPU-a1e7c4d2-3b9f-4e6a-8d5c-7f0b2e9a4c13", "00000000:2A:00.0", "550.54.15", 81559, 0, 81008, "9.0"),
    nv(2, H100, "GPU-0c9d8e7f-6a5b-4c3d-2e1f-0a9b8c7d6e54", "00000000:3A:00.0", "550.54.15", 81559, 0, 81008, "9.0"),
    nv(3, H100, "GPU-7e6f5a4b-3c2d-4e1f-9a8b-7c6d5e4f3a21", "00000000:5D:00.0", "550.54.15", 81559, 70123, 10885, "9.0"),
    nv(4, H100, "GPU-2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d67", "00000000:9A:00.0", "550.54.15", 81559, 0, 81008, "9.0"),
    nv(5, H100, "GPU-9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b18", "00000000:AB:00.0", "550.54.15", 81559, 0, 81008, "9.0"),
    nv(6, H100, "GPU-4d5e6f7a-8b9c-4d0e-a1f2-3b4c5d6e7f89", "00000000:BA:00.0", "550.54.15", 81559, 0, 81008, "9.0"),
    nv(7, H100, "GPU-6a7b8c9d-0e1f-4a2b-b3c4-5d6e7f8a9b02", "00000000:DB:00.0", "550.54.15", 81559, 0, 81008, "9.0"),
]

NVIDIA_EXPECTED = {
    "h100-80gb-hbm3-x8.csv": H100_X8,
    "h200-x8.csv": [
        nv(0, H200, "GPU-1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f", "00000000:19:00.0", "570.124.06", 143771, 0, 143198, "9.0"),
        nv(1, H200, "GPU-2d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f6a", "00000000:3B:00.0", "570.124.06", 143771, 0, 143198, "9.0"),
        nv(2, H200, "GPU-3e4f5a6b-7c8d-4e9f-a01b-2c3d4e5f6a7b", "00000000:4C:00.0", "570.124.06", 143771, 0, 143198, "9.0"),
        nv(3, H200, "GPU-4f5a6b7c-8d9e-4fa0-b12c-3d4e5f6a7b8c", "00000000:5D:00.0", "570.124.06", 143771, 0, 143198, "9.0"),
        nv(4, H200, "GPU-5a6b7c8d-9e0f-4a1b-c23d-4e5f6a7b8c9d", "00000000:9B:00.0", "570.124.06", 143771, 0, 143198, "9.0"),
        nv(5, H200, "GPU-6b7c8d9e-0f1a-4b2c-d34e-5f6a7b8c9d0e", "00000000:BB:00.0", "570.124.06", 143771, 0, 143198, "9.0"),
        nv(6, H200, "GPU-7c8d9e0f-1a2b-4c3d-e45f-6a7b8c9d0e1f", "00000000:CB:00.0", "570.124.06", 143771, 0, 143198, "9.0"),
        nv(7, H200, "GPU-8d9e0f1a-2b3c-4d4e-f56a-7b8c9d0e1f2a", "00000000:DB:00.0", "570.124.06", 143771, 0, 143198, "9.0"),
    ],
    "a100-sxm4-80gb-x4.csv": [
        nv(0, A100_80, "GPU-89fdc1e1-18b2-f499-c12b-82bcb9bfb3fa", "00000000:07:00.0", "535.183.01", 81920, 4, 81037, "8.0"),
        nv(1, A100_80, "GPU-3c6a1f0e-52d4-8b7a-e913-4f2d7c6b1a08", "00000000:0F:00.0", "535.183.01", 81920, 4, 81037, "8.0"),
        nv(2, A100_80, "GPU-d2b8e4a7-0c31-6f95-a2de-98c1b7f3e460", "00000000:47:00.0", "535.183.01", 81920, 38911, 42130, "8.0"),
        nv(3, A100_80, "GPU-71e0c9b3-a48f-2d6c-5b17-e3a90f8d24cb", "00000000:4E:00.0", "535.183.01", 81920, 4, 81037, "8.0"),
    ],
    "a100-pcie-40gb-x2.csv": [
        nv(0, A100_40, "GPU-e9c9aa65-bff3-405a-ab7c-dc879cc88169", "00000000:3B:00.0", "535.129.03", 40960, 4, 40327, "8.0"),
        nv(1, A100_40, "GPU-5a0d7e3c-91b2-4f68-8c4e-b7a2d1f06e93", "00000000:D8:00.0", "535.129.03", 40960, 4, 40327, "8.0"),
    ],
    "rtx-4090-x1.csv": [
        nv(0, RTX4090, "GPU-b7f2c8e1-4a6d-9e30-5c1b-8d7a2f4e6c90", "00000000:01:00.0", "550.54.14", 24564, 412, 23751, "8.9"),
    ],
    "rtx-3060-12gb-x1.csv": [
        nv(0, RTX3060, "GPU-3f8a1d6c-2e9b-7c40-a51d-e6b3c8f2094a", "00000000:01:00.0", "535.171.04", 12288, 289, 11740, "8.6"),
    ],
    "mixed-rtx-4090-rtx-3060.csv": [
        nv(0, RTX4090, "GPU-c4e7a2b9-1d8f-6e53-b09a-7f2c4d1e8a36", "00000000:01:00.0", "550.120", 24564, 1536, 22627, "8.9"),
        nv(1, RTX3060, "GPU-8e1b5c3a-7f2d-4a96-c80e-2d9f6b1a47e5", "00000000:05:00.0", "550.120", 12288, 8, 11999, "8.6"),
    ],
    "gb10-unified.csv": [
        nv(0, "NVIDIA GB10", GB10_UUID, "0000000F:01:00.0", "580.95.05", None, None, None, "12.1"),
    ],
    "gb10-unified-not-supported.csv": [
        nv(0, "NVIDIA GB10", GB10_UUID, "0000000F:01:00.0", "580.95.05", None, None, None, "12.1"),
    ],
}

# Recorded without the compute_cap column (driver R470).
NVIDIA_LEGACY_EXPECTED = {
    "tesla-v100-sxm2-16gb-x1-driver-470.csv": [
        nv(0, "Tesla V100-SXM2-16GB", "GPU-6b1e0a4f-93c2-d8a7-1e5b-c0f4a9d27e38", "00000000:00:1E.0", "470.182.03",
           16160, 0, 15781, None),
    ],
}

MI300X = "AMD Instinct MI300X"
MI300X_BUSES = ["0000:05:00.0", "0000:26:00.0", "0000:46:00.0", "0000:65:00.0",
                "0000:85:00.0", "0000:a6:00.0", "0000:c6:00.0", "0000:e5:00.0"]
MI300X_X8 = [
    amd(i, MI300X, bus, "6.10.5", 196592, 150123 if i == 2 else 283, 196592 - (150123 if i == 2 else 283), "gfx942")
    for i, bus in enumerate(MI300X_BUSES)
]

# (static recording, metric recording) -> expected GPUs
AMD_SMI_EXPECTED = {
    ("mi300x-x8.json", "mi300x-x8.mem-usage.json"): MI300X_X8,
    ("mi210-x2-older-list.json", "mi210-x2-older-list.mem-usage.json"): [
        amd(0, "AMD Instinct MI210", "0000:63:00.0", "6.3.6", 65520, 10, 65510, None),
        amd(1, "AMD Instinct MI210", "0000:43:00.0", "6.3.6", 65520, 49021, 16499, None),
    ],
}

MI250X = "AMD INSTINCT MI200 (MCM) OAM LC MBA HPE C2"
MI250X_BUSES = ["0000:C1:00.0", "0000:C6:00.0", "0000:C9:00.0", "0000:CE:00.0",
                "0000:D1:00.0", "0000:D6:00.0", "0000:D9:00.0", "0000:DE:00.0"]
ROCM_SMI_EXPECTED = {
    # 68702699520 B = 65520 MiB; 10960896 B used = 10.45 MiB -> used 10, free 65509 (from bytes).
    "mi250x-x8.json": [
        amd(i, MI250X, bus, "6.2.4", 65520, 40960 if i == 5 else 10, 24560 if i == 5 else 65509, None)
        for i, bus in enumerate(MI250X_BUSES)
    ],
    # 21458059264 B = 20464 MiB; 27856896 B used = 26.57 MiB -> used 26, free 20437.
    "rx-7900-xt-x1.json": [
        amd(0, "Radeon RX 7900 XT", "0000:03:00.0", "6.8.0-45-generic", 20464, 26, 20437, "gfx1100"),
    ],
}

QUERY = "--query-gpu=index,name,uuid,pci.bus_id,driver_version,memory.total,memory.used,memory.free,compute_cap"


class Host(object):
    """A fake host for collect_gpus: tools on PATH and the recorded answer for each argv."""

    def __init__(self):
        self.tools = {}
        self.answers = {}
        self.calls = []
        self.looked_up = []

    def add(self, tool, args, rc=0, out="", err=""):
        path = "/usr/bin/" + tool
        self.tools[tool] = path
        self.answers[tuple([path] + list(args))] = (rc, out, err)
        return self

    def add_runs(self, tool, runs_file):
        data = json.loads(fixture(tool, runs_file))
        for run in data["runs"]:
            out = fixture(tool, run["stdout_file"]) if "stdout_file" in run else run["stdout"]
            self.add(tool, run["argv"], run["rc"], out, run["stderr"])
        return self

    def nvidia(self, csv_name):
        return self.add("nvidia-smi", nvidia_smi_argv(), out=fixture("nvidia-smi", csv_name))

    def amd_smi(self, static_name, metric_name):
        self.add("amd-smi", gpu_facts.AMD_SMI_STATIC_ARGS, out=fixture("amd-smi", static_name))
        return self.add("amd-smi", gpu_facts.AMD_SMI_METRIC_ARGS, out=fixture("amd-smi", metric_name))

    def rocm_smi(self, name):
        return self.add("rocm-smi", gpu_facts.ROCM_SMI_ARGS, out=fixture("rocm-smi", name))

    def which(self, name):
        self.looked_up.append(name)
        return self.tools.get(name)

    def run(self, argv):
        self.calls.append(list(argv))
        key = tuple(argv)
        if key not in self.answers:
            raise AssertionError("unexpected command %r" % (argv,))
        return self.answers[key]


# ---------------------------------------------------------------------------------------------
# nvidia-smi
# ---------------------------------------------------------------------------------------------


def test_nvidia_smi_argv_is_the_recorded_query():
    assert nvidia_smi_argv() == [QUERY, "--format=csv,noheader,nounits"]
    assert nvidia_smi_argv(NVIDIA_LEGACY_QUERY_FIELDS) == [
        QUERY.replace(",compute_cap", ""), "--format=csv,noheader,nounits"]
    assert NVIDIA_QUERY_FIELDS[-1] == "compute_cap" and "compute_cap" not in NVIDIA_LEGACY_QUERY_FIELDS


def test_every_recorded_fixture_has_expectations():
    csvs = set(os.path.basename(p) for p in glob.glob(os.path.join(GPU_FIXTURES, "nvidia-smi", "*.csv")))
    assert csvs == set(NVIDIA_EXPECTED) | set(NVIDIA_LEGACY_EXPECTED)
    statics = set(os.path.basename(p) for p in glob.glob(os.path.join(GPU_FIXTURES, "amd-smi", "*.json"))
                  if not p.endswith((".mem-usage.json", ".runs.json")))
    assert statics == set(pair[0] for pair in AMD_SMI_EXPECTED)
    rocm = set(os.path.basename(p) for p in glob.glob(os.path.join(GPU_FIXTURES, "rocm-smi", "*.json")))
    assert rocm == set(ROCM_SMI_EXPECTED)


@pytest.mark.parametrize("name", sorted(NVIDIA_EXPECTED))
def test_parse_nvidia_fixture(name):
    gpus = parse_nvidia_smi_csv(fixture("nvidia-smi", name))
    assert gpus == NVIDIA_EXPECTED[name]
    for gpu in gpus:
        assert tuple(sorted(gpu)) == tuple(sorted(GPU_KEYS))


@pytest.mark.parametrize("name", sorted(NVIDIA_LEGACY_EXPECTED))
def test_parse_nvidia_fixture_without_compute_cap(name):
    assert parse_nvidia_smi_csv(fixture("nvidia-smi", name), NVIDIA_LEGACY_QUERY_FIELDS) == NVIDIA_LEGACY_EXPECTED[name]


@pytest.mark.parametrize("marker", ["[N/A]", "[Not Supported]", "N/A", "[Unknown Error]"])
def test_unavailable_memory_is_none_and_unified(marker):
    line = "0, NVIDIA GB10, GPU-x, 0000000F:01:00.0, 580.95.05, {m}, {m}, {m}, 12.1\n".format(m=marker)
    (gpu,) = parse_nvidia_smi_csv(line)
    assert (gpu["memory_total_mib"], gpu["memory_used_mib"], gpu["memory_free_mib"]) == (None, None, None)
    assert gpu["unified_memory"] is True
    assert gpu["compute_capability"] == "12.1"


def test_unavailable_used_memory_alone_is_not_unified():
    (gpu,) = parse_nvidia_smi_csv("0, NVIDIA A100-PCIE-40GB, GPU-x, 00000000:3B:00.0, 535.129.03, 40960, [N/A], 40327, [N/A]")
    assert gpu["memory_total_mib"] == 40960 and gpu["memory_used_mib"] is None
    assert gpu["unified_memory"] is False
    assert gpu["compute_capability"] is None


def test_memory_printed_with_units_is_still_mib():
    (gpu,) = parse_nvidia_smi_csv("0, NVIDIA H200, GPU-x, 00000000:19:00.0, 570.124.06, 143771 MiB, 0 MiB, 143198 MiB, 9.0")
    assert (gpu["memory_total_mib"], gpu["memory_used_mib"], gpu["memory_free_mib"]) == (143771, 0, 143198)


@pytest.mark.parametrize("text", ["", "\n", "  \n\n"])
def test_empty_nvidia_output_is_no_gpu(text):
    assert parse_nvidia_smi_csv(text) == []


def test_blank_lines_between_gpus_are_ignored():
    text = "\n" + fixture("nvidia-smi", "a100-pcie-40gb-x2.csv").replace("\n", "\n\n")
    assert parse_nvidia_smi_csv(text) == NVIDIA_EXPECTED["a100-pcie-40gb-x2.csv"]


def test_wrong_column_count_names_the_line_and_the_fields():
    text = fixture("nvidia-smi", "a100-pcie-40gb-x2.csv") + "2, NVIDIA A100-PCIE-40GB, GPU-y, 00000000:5E:00.0, 535.129.03, 40960, 4, 40327\n"
    with pytest.raises(GpuFactsError) as err:
        parse_nvidia_smi_csv(text)
    message = str(err.value)
    assert "line 3 has 8 comma-separated fields, expected 9" in message
    assert "compute_cap" in message and "00000000:5E:00.0" in message


def test_an_error_message_instead_of_csv_is_malformed():
    with pytest.raises(GpuFactsError, match="line 1 has 1 comma-separated fields"):
        parse_nvidia_smi_csv('Field "compute_cap" is not a valid field to query.\n')


@pytest.mark.parametrize("line, field", [
    ("0, NVIDIA H100 80GB HBM3, GPU-x, 00000000:18:00.0, 550.54.15, lots, 0, 81008, 9.0", "memory.total"),
    ("0, NVIDIA H100 80GB HBM3, GPU-x, 00000000:18:00.0, 550.54.15, 81559, 0.5, 81008, 9.0", "memory.used"),
    ("zero, NVIDIA H100 80GB HBM3, GPU-x, 00000000:18:00.0, 550.54.15, 81559, 0, 81008, 9.0", "index"),
    ("0, NVIDIA H100 80GB HBM3, GPU-x, 00000000:18:00.0, 550.54.15, 81559, 0, 81008, sm_90", "compute_cap"),
])
def test_malformed_values_name_the_field(line, field):
    with pytest.raises(GpuFactsError, match="line 1: field %s is" % field.replace(".", r"\.")):
        parse_nvidia_smi_csv(line)


def test_gpu_facts_error_is_a_value_error():
    assert issubclass(GpuFactsError, ValueError)


# ---------------------------------------------------------------------------------------------
# amd-smi / rocm-smi
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("static_name, metric_name", sorted(AMD_SMI_EXPECTED))
def test_parse_amd_smi_fixture(static_name, metric_name):
    gpus = parse_amd_smi_json(fixture("amd-smi", static_name), fixture("amd-smi", metric_name))
    assert gpus == AMD_SMI_EXPECTED[(static_name, metric_name)]


def test_amd_smi_without_metric_leaves_used_and_free_unknown():
    gpus = parse_amd_smi_json(fixture("amd-smi", "mi300x-x8.json"))
    assert [g["memory_total_mib"] for g in gpus] == [196592] * 8
    assert all(g["memory_used_mib"] is None and g["memory_free_mib"] is None for g in gpus)


def test_amd_smi_both_shapes_give_the_same_gpus():
    static = json.loads(fixture("amd-smi", "mi300x-x8.json"))
    metric = json.loads(fixture("amd-smi", "mi300x-x8.mem-usage.json"))
    bare = parse_amd_smi_json(json.dumps(static["gpu_data"]), json.dumps(metric["gpu_data"]))
    assert bare == MI300X_X8


@pytest.mark.parametrize("size, expected_mib", [
    ({"value": 196592, "unit": "MB"}, 196592),
    ({"value": 196592, "unit": "MiB"}, 196592),
    ({"value": 192, "unit": "GB"}, 196608),
    ({"value": 206141652992, "unit": "B"}, 196592),
    ({"value": 1048575, "unit": "B"}, 0),
    ("196592 MB", 196592),
    ("65520", 65520),
    (65520, 65520),
    (65520.0, 65520),
    ("N/A", None),
    ({"value": "N/A", "unit": "MB"}, None),
])
def test_amd_smi_memory_units_convert_to_mib(size, expected_mib):
    static = json.dumps([{"gpu": 0, "asic": {"market_name": "x"}, "vram": {"size": size}}])
    (gpu,) = parse_amd_smi_json(static)
    assert gpu["memory_total_mib"] == expected_mib
    assert gpu["unified_memory"] is (expected_mib is None)


@pytest.mark.parametrize("size, message", [
    ({"value": 12, "unit": "furlongs"}, "unit 'furlongs'"),
    ("12.5 GB", "expected a whole number"),
    (True, "expected a memory size"),
    ([1], "expected a memory size"),
])
def test_amd_smi_bad_sizes_are_errors(size, message):
    static = json.dumps([{"gpu": 3, "vram": {"size": size}}])
    with pytest.raises(GpuFactsError, match="amd-smi gpu 3 vram size") as err:
        parse_amd_smi_json(static)
    assert message in str(err.value)


@pytest.mark.parametrize("text, message", [
    ("ERROR:root:Unable to detect any devices", "amd-smi static did not print JSON"),
    ('{"cpu_data": []}', "without a gpu_data list"),
    ('"gpu"', "expected a list of GPUs"),
    ("[1, 2]", "entry 0 is 1, expected an object"),
    ('[{"gpu": "zero"}]', "has gpu 'zero', expected an integer"),
])
def test_amd_smi_malformed_json_is_an_error(text, message):
    with pytest.raises(GpuFactsError) as err:
        parse_amd_smi_json(text)
    assert message in str(err.value)


def test_amd_smi_skips_cpu_entries_and_unsupported_sections():
    static = json.dumps({"gpu_data": [
        {"gpu": 0, "asic": "N/A", "bus": {"bdf": "0000:02:00.0"}, "driver": "N/A", "vram": "N/A"},
    ], "cpu_data": [{"cpu": 0}]})
    bare = json.dumps([{"cpu": 0, "smu": {}}, {"gpu": 0, "vram": {"size": {"value": 1, "unit": "GB"}}}])
    (apu,) = parse_amd_smi_json(static)
    assert apu == amd(0, None, "0000:02:00.0", None, None, None, None, None)
    assert apu["unified_memory"] is True
    assert [g["memory_total_mib"] for g in parse_amd_smi_json(bare)] == [1024]


def test_amd_smi_metric_for_an_unknown_gpu_is_ignored():
    metric = json.dumps([{"gpu": 9, "mem_usage": {"used_vram": 1}}])
    (gpu,) = parse_amd_smi_json(json.dumps([{"gpu": 0, "vram": {"vram_size_mb": 100}}]), metric)
    assert (gpu["memory_total_mib"], gpu["memory_used_mib"]) == (100, None)


@pytest.mark.parametrize("name", sorted(ROCM_SMI_EXPECTED))
def test_parse_rocm_smi_fixture(name):
    assert parse_rocm_smi_json(fixture("rocm-smi", name)) == ROCM_SMI_EXPECTED[name]


def test_rocm_smi_cards_are_ordered_by_number_and_unique_id_is_the_uuid():
    text = json.dumps({"card10": {"Card Series": "b", "Unique ID": "0x1a2b"}, "card2": {"Card Series": "a"}})
    gpus = parse_rocm_smi_json(text)
    assert [(g["index"], g["name"], g["uuid"]) for g in gpus] == [(2, "a", None), (10, "b", "0x1a2b")]
    assert all(g["memory_total_mib"] is None and g["unified_memory"] for g in gpus)


@pytest.mark.parametrize("text, message", [
    ("WARNING: No AMD GPUs specified", "rocm-smi did not print JSON"),
    ("[]", "expected an object of cards"),
    ('{"card0": "N/A"}', "rocm-smi card0 is 'N/A'"),
    ('{"card0": {"VRAM Total Memory (B)": "lots"}}', "rocm-smi card0 VRAM Total Memory (B) is 'lots'"),
])
def test_rocm_smi_malformed_output_is_an_error(text, message):
    with pytest.raises(GpuFactsError) as err:
        parse_rocm_smi_json(text)
    assert message in str(err.value)


def test_empty_amd_output_is_no_gpu():
    assert parse_amd_smi_json("") == [] and parse_amd_smi_json("  \n", "") == []
    assert parse_rocm_smi_json("") == []
    assert parse_rocm_smi_json('{"system": {"Driver version": "6.2.4"}}') == []


# ---------------------------------------------------------------------------------------------
# collect_gpus with replayed tools
# ---------------------------------------------------------------------------------------------


def test_no_tools_is_an_empty_list_without_warnings():
    host = Host()
    assert collect_gpus(host.which, host.run) == {
        "gpus": [], "gpu_count": 0, "source": None, "sources": [], "warnings": []}
    assert host.calls == []
    assert host.looked_up == ["nvidia-smi", "amd-smi", "rocm-smi"]


@pytest.mark.parametrize("name", sorted(NVIDIA_EXPECTED))
def test_collect_nvidia_fixture(name):
    host = Host().nvidia(name)
    result = collect_gpus(host.which, host.run)
    assert result["gpus"] == NVIDIA_EXPECTED[name]
    assert result["gpu_count"] == len(NVIDIA_EXPECTED[name])
    assert (result["source"], result["sources"], result["warnings"]) == ("nvidia-smi", ["nvidia-smi"], [])
    assert host.calls == [["/usr/bin/nvidia-smi"] + nvidia_smi_argv()]


@pytest.mark.parametrize("runs_file, rc, first_line", [
    ("driver-not-loaded.runs.json", 9, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."),
    ("nvml-driver-mismatch.runs.json", 18, "Failed to initialize NVML: Driver/library version mismatch"),
    ("no-devices.runs.json", 6, "No devices were found"),
])
def test_a_failing_nvidia_smi_is_no_gpu_and_a_warning(runs_file, rc, first_line):
    host = Host().add_runs("nvidia-smi", runs_file)
    result = collect_gpus(host.which, host.run)
    assert (result["gpus"], result["gpu_count"], result["source"]) == ([], 0, None)
    (warning,) = result["warnings"]
    assert warning.startswith("nvidia-smi failed (rc=%d), so no NVIDIA GPU is reported: " % rc)
    assert first_line in warning


def test_driver_without_compute_cap_is_queried_again_without_it():
    host = Host().add_runs("nvidia-smi", "driver-470-no-compute-cap.runs.json")
    result = collect_gpus(host.which, host.run)
    assert result["gpus"] == NVIDIA_LEGACY_EXPECTED["tesla-v100-sxm2-16gb-x1-driver-470.csv"]
    assert result["source"] == "nvidia-smi"
    (warning,) = result["warnings"]
    assert "compute_cap" in warning and "R510" in warning
    assert [c[1] for c in host.calls] == [nvidia_smi_argv()[0], nvidia_smi_argv(NVIDIA_LEGACY_QUERY_FIELDS)[0]]


def test_malformed_nvidia_output_raises():
    host = Host().add("nvidia-smi", nvidia_smi_argv(), out="0, NVIDIA H100 80GB HBM3, 81559\n")
    with pytest.raises(GpuFactsError, match="line 1 has 3 comma-separated fields, expected 9"):
        collect_gpus(host.which, host.run)


def test_a_tool_that_cannot_be_executed_is_a_warning():
    host = Host().nvidia("rtx-4090-x1.csv")

    def run(argv):
        raise OSError(13, "Permission denied", argv[0])

    result = collect_gpus(host.which, run)
    assert result["gpus"] == [] and result["source"] is None
    (warning,) = result["warnings"]
    assert warning.startswith("nvidia-smi failed (rc=127)") and "Permission denied" in warning


def test_nvidia_and_amd_on_one_host_are_both_collected():
    host = Host().nvidia("h100-80gb-hbm3-x8.csv").amd_smi("mi300x-x8.json", "mi300x-x8.mem-usage.json")
    result = collect_gpus(host.which, host.run)
    assert result["gpus"] == H100_X8 + MI300X_X8
    assert result["gpu_count"] == 16
    assert (result["source"], result["sources"], result["warnings"]) == ("nvidia-smi", ["nvidia-smi", "amd-smi"], [])


@pytest.mark.parametrize("static_name, metric_name", sorted(AMD_SMI_EXPECTED))
def test_collect_amd_smi_fixture(static_name, metric_name):
    host = Host().amd_smi(static_name, metric_name).rocm_smi("mi250x-x8.json")
    result = collect_gpus(host.which, host.run)
    assert result["gpus"] == AMD_SMI_EXPECTED[(static_name, metric_name)]
    assert (result["source"], result["warnings"]) == ("amd-smi", [])
    assert [c[1] for c in host.calls] == ["static", "metric"]  # rocm-smi not needed


def test_failing_amd_smi_falls_back_to_rocm_smi():
    host = Host().add_runs("amd-smi", "no-amdgpu-driver.runs.json").rocm_smi("mi250x-x8.json")
    result = collect_gpus(host.which, host.run)
    assert result["gpus"] == ROCM_SMI_EXPECTED["mi250x-x8.json"]
    assert (result["source"], result["sources"]) == ("rocm-smi", ["rocm-smi"])
    (warning,) = result["warnings"]
    assert warning.startswith("amd-smi static failed (rc=255), trying rocm-smi: ERROR:root:Unable to get devices")


def test_failing_amd_smi_without_rocm_smi_is_no_gpu_and_a_warning():
    host = Host().add_runs("amd-smi", "no-amdgpu-driver.runs.json")
    result = collect_gpus(host.which, host.run)
    assert (result["gpus"], result["source"]) == ([], None)
    (warning,) = result["warnings"]
    assert warning.startswith("amd-smi static failed (rc=255), so no AMD GPU is reported")


def test_amd_smi_printing_only_errors_is_treated_as_failed():
    host = Host().add("amd-smi", gpu_facts.AMD_SMI_STATIC_ARGS, out="", err="ERROR:root:Unable to detect any GPU devices\n")
    result = collect_gpus(host.which, host.run)
    assert result["gpus"] == [] and result["sources"] == []
    assert result["warnings"] == ["amd-smi static printed nothing, so no AMD GPU is reported: "
                                  "ERROR:root:Unable to detect any GPU devices"]


def test_failing_amd_smi_metric_keeps_the_gpus_without_usage():
    host = Host().add("amd-smi", gpu_facts.AMD_SMI_STATIC_ARGS, out=fixture("amd-smi", "mi300x-x8.json"))
    host.add("amd-smi", gpu_facts.AMD_SMI_METRIC_ARGS, rc=1, err="metric failed\n")
    result = collect_gpus(host.which, host.run)
    assert [g["memory_total_mib"] for g in result["gpus"]] == [196592] * 8
    assert all(g["memory_free_mib"] is None for g in result["gpus"])
    (warning,) = result["warnings"]
    assert warning.startswith("amd-smi metric --mem-usage failed (rc=1)") and "metric failed" in warning


@pytest.mark.parametrize("name", sorted(ROCM_SMI_EXPECTED))
def test_collect_rocm_smi_alone(name):
    host = Host().rocm_smi(name)
    result = collect_gpus(host.which, host.run)
    assert result["gpus"] == ROCM_SMI_EXPECTED[name]
    assert (result["source"], result["warnings"]) == ("rocm-smi", [])


def test_failing_rocm_smi_is_a_warning():
    host = Host().add("rocm-smi", gpu_facts.ROCM_SMI_ARGS, rc=2, out="ERROR: GPU[0] : Unable to get VRAM\n")
    result = collect_gpus(host.which, host.run)
    assert result["gpus"] == []
    assert result["warnings"] == ["rocm-smi failed (rc=2), so no AMD GPU is reported: ERROR: GPU[0] : Unable to get VRAM"]


def test_vendors_limit_which_tools_are_looked_up():
    host = Host().nvidia("rtx-4090-x1.csv").amd_smi("mi300x-x8.json", "mi300x-x8.mem-usage.json")
    nvidia_only = collect_gpus(host.which, host.run, vendors=["nvidia"])
    assert [g["vendor"] for g in nvidia_only["gpus"]] == ["nvidia"]
    assert host.looked_up == ["nvidia-smi"]
    amd_only = collect_gpus(host.which, host.run, vendors=("amd",))
    assert set(g["vendor"] for g in amd_only["gpus"]) == {"amd"} and amd_only["gpu_count"] == 8


def test_unknown_vendor_is_an_error():
    with pytest.raises(GpuFactsError, match="unknown vendor.*intel.*expected nvidia, amd"):
        collect_gpus(Host().which, Host().run, vendors=["nvidia", "intel"])


# ---------------------------------------------------------------------------------------------
# The fake binaries, run for real
# ---------------------------------------------------------------------------------------------


def subprocess_runner(env):
    def run(argv):
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False)
        return done.returncode, done.stdout, done.stderr
    return run


def fake_env(**extra):
    env = dict(os.environ)
    for key in ("LLMOPS_FAKE_NVIDIA_SMI", "LLMOPS_FAKE_AMD_SMI", "LLMOPS_FAKE_AMD_SMI_METRIC"):
        env.pop(key, None)
    env.update(extra)
    env["LC_ALL"] = "C"
    return env


def fake_which(*names):
    paths = {"nvidia-smi": os.path.join(FAKE_BIN, "nvidia-smi"), "amd-smi": os.path.join(FAKE_BIN, "amd", "amd-smi")}
    return lambda name: paths[name] if name in names else None


def test_fake_nvidia_smi_through_collect_gpus_with_a_real_subprocess():
    result = collect_gpus(fake_which("nvidia-smi"), subprocess_runner(fake_env()))
    assert result["gpus"] == H100_X8
    assert (result["source"], result["warnings"]) == ("nvidia-smi", [])


@pytest.mark.parametrize("recording, count, warns", [
    ("gb10-unified.csv", 1, False),
    ("driver-not-loaded.runs.json", 0, True),
    ("driver-470-no-compute-cap.runs.json", 1, True),
])
def test_fake_nvidia_smi_replays_the_named_recording(recording, count, warns):
    result = collect_gpus(fake_which("nvidia-smi"), subprocess_runner(fake_env(LLMOPS_FAKE_NVIDIA_SMI=recording)))
    assert result["gpu_count"] == count
    assert bool(result["warnings"]) is warns


@pytest.mark.parametrize("argv", [
    nvidia_smi_argv(NVIDIA_QUERY_FIELDS + ("power.draw",)),
    nvidia_smi_argv()[:1] + ["--format=csv,noheader"],
    ["-L"],
])
def test_fake_nvidia_smi_refuses_a_drifted_argv(argv):
    rc, out, err = subprocess_runner(fake_env())([os.path.join(FAKE_BIN, "nvidia-smi")] + argv)
    assert rc == 2 and "Invalid combination of input arguments" in out and "unexpected arguments" in err


def test_fake_amd_smi_and_nvidia_smi_make_a_mixed_host():
    result = collect_gpus(fake_which("nvidia-smi", "amd-smi"), subprocess_runner(fake_env()))
    assert result["gpus"] == H100_X8 + MI300X_X8
    assert result["sources"] == ["nvidia-smi", "amd-smi"]


def test_fake_amd_smi_replays_a_failure():
    env = fake_env(LLMOPS_FAKE_AMD_SMI="no-amdgpu-driver.runs.json")
    result = collect_gpus(fake_which("amd-smi"), subprocess_runner(env))
    assert result["gpus"] == []
    assert result["warnings"][0].startswith("amd-smi static failed (rc=255)")


class _RecordingModule:
    """What module_tools uses of an AnsibleModule: get_bin_path and run_command, recorded."""

    def __init__(self, found):
        self.found = found
        self.lookups = []
        self.runs = []

    def get_bin_path(self, name, opt_dirs=None):
        self.lookups.append((name, opt_dirs))
        return self.found.get(name)

    def run_command(self, argv, environ_update=None, handle_exceptions=True):
        self.runs.append((argv, environ_update, handle_exceptions))
        return 0, "out", ""


def test_module_tools_prefers_a_given_path_then_searches_with_the_vendor_directories():
    module = _RecordingModule({"amd-smi": "/opt/rocm/bin/amd-smi"})
    which, run = gpu_facts.module_tools(module, {"nvidia-smi": "/usr/local/nvidia/bin/nvidia-smi", "rocm-smi": None})
    assert which("nvidia-smi") == "/usr/local/nvidia/bin/nvidia-smi" and module.lookups == []
    assert which("amd-smi") == "/opt/rocm/bin/amd-smi"
    assert which("rocm-smi") is None  # an unset path searches, and finds nothing here
    assert module.lookups == [("amd-smi", ["/opt/rocm/bin"]), ("rocm-smi", ["/opt/rocm/bin"])]
    assert run(["/opt/rocm/bin/amd-smi", "static"]) == (0, "out", "")
    # C locale for parseable output; exceptions reach collect_gpus, which makes them a warning
    assert module.runs == [(["/opt/rocm/bin/amd-smi", "static"], {"LC_ALL": "C"}, False)]
    which, run = gpu_facts.module_tools(module)
    assert which("nvidia-smi") is None and module.lookups[-1] == ("nvidia-smi", [])
