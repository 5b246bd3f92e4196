# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The GPU catalog: one entry per model and form factor (a PCIe card is not its SXM sibling), compute units."""

import os

import pytest

from ansible_collections.llmops.deploy.plugins.module_utils import gpu_catalog, gpu_facts
from ansible_collections.llmops.deploy.plugins.module_utils.sizing_errors import SizingInputError

NVIDIA_SMI = os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "gpu", "nvidia-smi")


def test_the_recorded_a100_pcie_is_its_own_entry_with_nvidia_smis_figures():
    with open(os.path.join(NVIDIA_SMI, "a100-pcie-40gb-x2.csv"), encoding="utf-8") as handle:
        gpus = gpu_facts.parse_nvidia_smi_csv(handle.read())
    assert len(gpus) == 2
    for gpu in gpus:
        known = gpu_catalog.lookup(gpu["name"])
        assert known["name"] == gpu["name"] == "NVIDIA A100-PCIE-40GB"
        assert (known["memory_total_mib"], known["compute_capability"]) == (
            gpu["memory_total_mib"], gpu["compute_capability"]) == (40960, "8.0")
        assert gpu_catalog.canonical_name(gpu["name"]) != "NVIDIA A100-SXM4-40GB"


def test_the_recorded_v100_16gb_is_the_catalogs_entry_with_nvidia_smis_memory():
    with open(os.path.join(NVIDIA_SMI, "tesla-v100-sxm2-16gb-x1-driver-470.csv"), encoding="utf-8") as handle:
        (gpu,) = gpu_facts.parse_nvidia_smi_csv(handle.read(), gpu_facts.NVIDIA_LEGACY_QUERY_FIELDS)
    for spelling in (gpu["name"], "V100 16GB", "V100-SXM2-16GB"):
        known = gpu_catalog.lookup(spelling)
        assert (known["name"], known["memory_total_mib"]) == (gpu["name"], gpu["memory_total_mib"]) == (
            "Tesla V100-SXM2-16GB", 16160)
        assert (known["compute_capability"], known["compute_units"]) == ("7.0", 80)


def test_the_v100_32gb_has_the_memory_a_process_gets_not_32_gib():
    # A Tesla V100-SXM2-32GB gives a CUDA process 32510 MiB (driver 470's nvidia-smi prints that, as 16160 for the
    # 16GB card above; driver 535 prints 32768): planning against declared "V100 32GB" hardware must not promise
    # 258 MiB per GPU that vLLM cannot have.
    for spelling in ("V100", "V100 32GB", "Tesla V100-SXM2-32GB"):
        assert gpu_catalog.lookup(spelling)["memory_total_mib"] == 32510


@pytest.mark.parametrize("spelling, name, mib", [
    # nvidia-smi's own strings
    ("Tesla V100-PCIE-16GB", "Tesla V100-PCIE-16GB", 16160),
    ("Tesla V100-PCIE-32GB", "Tesla V100-PCIE-32GB", 32510),
    ("Tesla V100S-PCIE-32GB", "Tesla V100S-PCIE-32GB", 32510),
    # what people write
    ("V100 PCIe 16GB", "Tesla V100-PCIE-16GB", 16160),
    ("V100 16GB PCIe", "Tesla V100-PCIE-16GB", 16160),
    ("v100_pcie_32gb", "Tesla V100-PCIE-32GB", 32510),
    ("V100 PCIe", "Tesla V100-PCIE-32GB", 32510),
    ("V100S", "Tesla V100S-PCIE-32GB", 32510),
    ("V100S PCIe 32GB", "Tesla V100S-PCIE-32GB", 32510),
])
def test_the_pcie_v100s_are_entries_of_their_own(spelling, name, mib):
    known = gpu_catalog.lookup(spelling, "hardware.gpus[0].name")
    assert (known["name"], known["memory_total_mib"], known["compute_capability"], known["compute_units"]) == (
        name, mib, "7.0", 80)
    assert "SXM2" not in gpu_catalog.canonical_name(spelling)


@pytest.mark.parametrize("spelling, name, mib, capability, units", [
    # nvidia-smi's own strings
    ("NVIDIA A100-PCIE-40GB", "NVIDIA A100-PCIE-40GB", 40960, "8.0", 108),
    ("NVIDIA A100 80GB PCIe", "NVIDIA A100 80GB PCIe", 81920, "8.0", 108),
    ("NVIDIA H100 PCIe", "NVIDIA H100 PCIe", 81559, "9.0", 114),
    # what people write
    ("A100 PCIe 40GB", "NVIDIA A100-PCIE-40GB", 40960, "8.0", 108),
    ("a100_pcie_40gb", "NVIDIA A100-PCIE-40GB", 40960, "8.0", 108),
    ("A100 40GB PCIe", "NVIDIA A100-PCIE-40GB", 40960, "8.0", 108),
    ("A100 PCIe 80GB", "NVIDIA A100 80GB PCIe", 81920, "8.0", 108),
    ("A100-PCIE-80GB", "NVIDIA A100 80GB PCIe", 81920, "8.0", 108),
    ("A100 PCIe", "NVIDIA A100 80GB PCIe", 81920, "8.0", 108),
    ("H100 PCIe", "NVIDIA H100 PCIe", 81559, "9.0", 114),
    ("H100 80GB PCIe", "NVIDIA H100 PCIe", 81559, "9.0", 114),
    ("h100-pcie-80gb", "NVIDIA H100 PCIe", 81559, "9.0", 114),
    # the SXM parts and the plain names keep their entries
    ("NVIDIA A100-SXM4-80GB", "NVIDIA A100-SXM4-80GB", 81920, "8.0", 108),
    ("NVIDIA A100-SXM4-40GB", "NVIDIA A100-SXM4-40GB", 40960, "8.0", 108),
    ("A100", "NVIDIA A100-SXM4-80GB", 81920, "8.0", 108),
    ("A100 80GB", "NVIDIA A100-SXM4-80GB", 81920, "8.0", 108),
    ("A100 40GB", "NVIDIA A100-SXM4-40GB", 40960, "8.0", 108),
    ("A100 SXM4 80GB", "NVIDIA A100-SXM4-80GB", 81920, "8.0", 108),
    ("H100", "NVIDIA H100 80GB HBM3", 81559, "9.0", 132),
    ("NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3", 81559, "9.0", 132),
    ("H100 SXM5 80GB", "NVIDIA H100 80GB HBM3", 81559, "9.0", 132),
])
def test_lookups_of_pcie_and_sxm_spellings(spelling, name, mib, capability, units):
    known = gpu_catalog.lookup(spelling)
    assert (known["name"], known["memory_total_mib"], known["compute_capability"], known["compute_units"]) == (
        name, mib, capability, units)
    assert known["vendor"] == "nvidia" and known["arch"] is None and known["gpu_class"] == "datacenter"
    assert gpu_catalog.canonical_name(spelling) == name
    assert gpu_catalog.memory_total_mib(spelling) == mib


@pytest.mark.parametrize("name", [None, "", "Some Future GPU", 42])
def test_memory_of_a_gpu_the_catalog_does_not_know_is_none(name):
    assert gpu_catalog.memory_total_mib(name) is None


def test_pcie_and_sxm_cards_of_one_memory_are_two_models():
    pairs = (("NVIDIA A100 80GB PCIe", "NVIDIA A100-SXM4-80GB"), ("NVIDIA A100-PCIE-40GB", "NVIDIA A100-SXM4-40GB"),
             ("NVIDIA H100 PCIe", "NVIDIA H100 80GB HBM3"))
    for pcie, sxm in pairs:
        assert gpu_catalog.lookup(pcie)["memory_total_mib"] == gpu_catalog.lookup(sxm)["memory_total_mib"]
        assert gpu_catalog.canonical_name(pcie) != gpu_catalog.canonical_name(sxm)
        assert "SXM" not in gpu_catalog.canonical_name(pcie) and "HBM3" not in gpu_catalog.canonical_name(pcie)


def test_every_catalog_name_is_its_own_canonical_name():
    names = gpu_catalog.known_names()
    assert len(set(names)) == len(names)
    for name in names:
        assert gpu_catalog.canonical_name(name) == name
        assert gpu_catalog.lookup(name)["name"] == name


@pytest.mark.parametrize("name, units", [
    # the catalog's figure (vendor specifications)
    ("NVIDIA H100 PCIe", 114), ("H100", 132), ("NVIDIA H200", 132), ("NVIDIA A100 80GB PCIe", 108),
    ("NVIDIA L40S", 142), ("RTX 4090", 128), ("NVIDIA GeForce RTX 3090", 82), ("NVIDIA L4", 58), ("NVIDIA A10", 72),
    ("Tesla T4", 40), ("Tesla V100-SXM2-32GB", 80), ("Tesla V100-PCIE-16GB", 80), ("AMD Instinct MI300X", 304),
    ("AMD Instinct MI250X", 110),  # one GCD, the device vLLM sees (220 CUs per package)
    # not in the catalog: the first name part that matches
    ("NVIDIA RTX 6000 Ada Generation", 142), ("NVIDIA L40", 142), ("NVIDIA A100-SXM4-64GB", 108),
    ("NVIDIA H100 NVL", 132), ("NVIDIA B200", 148), ("AMD Instinct MI300A", 304), ("Tesla V100-SXM3-32GB", 80),
    # unknown (or known without a vendor figure, and no part matches): the most of the list
    ("Some Future GPU", 304), (None, 304), ("", 304), ("NVIDIA H20", 304),
])
def test_compute_units_catalog_then_name_part_then_the_most(name, units):
    assert gpu_catalog.compute_units(name) == units


def test_a_gpu_without_a_vendor_figure_says_so():
    assert gpu_catalog.lookup("H20")["compute_units"] is None
    assert gpu_catalog.lookup("RTX 3060")["compute_units"] is None
    assert max(units for _part, units in gpu_catalog.COMPUTE_UNITS_BY_NAME_PART) == 304


def test_unknown_models_are_refused_naming_the_field_and_the_pcie_cards():
    with pytest.raises(SizingInputError) as err:
        gpu_catalog.lookup("A100 PCIe 64GB", "hardware.gpus[0].name")
    text = str(err.value)
    assert "hardware.gpus[0].name" in text and "NVIDIA A100 80GB PCIe" in text and "NVIDIA H100 PCIe" in text
