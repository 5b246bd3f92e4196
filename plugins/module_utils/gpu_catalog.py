# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Known GPU models: device memory as ``nvidia-smi``/``amd-smi`` report it (MiB), compute capability and compute units.

Used to plan against declared hardware ("4 x A100 80GB") and to check the guide's hardware examples.
Memory figures are the totals the tools print (``memory.total`` in MiB), not the marketing "GB":
an "A100 80GB" reports 81920 MiB (85.9 GB), an "RTX 4090 24GB" 24564 MiB (25.8 GB).

One row per model *and form factor*: a PCIe card is not its SXM sibling. The A100 PCIe and SXM4 report the same
memory but are separate entries (each its own calibration class; only SXM/HGX boards are NVSwitch-connected), and the
H100 PCIe (114 SMs) is not the H100 SXM5 ("NVIDIA H100 80GB HBM3", 132 SMs).

The V100s' memory.total depends on the driver: the 470 series prints what CUDA gives a process (16160 MiB for the
16GB cards, 32510 MiB for the 32GB ones, what torch and vLLM see), the 535 series the whole 16384 / 32768 MiB. The
catalog keeps what a process can have; engine_memory plans a V100 with torch's published total (15.78 / 31.74 GiB)
whichever of the two figures nvidia-smi printed.
"""

import re

from ansible_collections.llmops.deploy.plugins.module_utils.sizing_errors import SizingInputError

# key -> (display name, vendor, memory_total_mib, compute capability or gfx arch, class, compute units)
# Compute units are what vLLM's num_compute_units sees on one device: streaming multiprocessors (NVIDIA) or compute
# units (AMD; an MI250X is two devices, one per GCD). Figures from the vendors' specifications: NVIDIA's architecture
# whitepapers and datasheets (Volta V100 80, Turing T4 40, Ampere A100 108 in every form factor, GA102 RTX 3090 82,
# A10 72, Ada RTX 4090 128, L4 58, L40S 142, Hopper H100 SXM5 132, H100 PCIe 114, H200 132); AMD's "GPU
# specifications" table in the ROCm documentation (MI250X 220 = 110 per GCD, MI300X 304). None where no vendor
# figure is at hand: compute_units() then falls back to the name parts below.
_CATALOG = (
    ("rtx3060-12gb", "NVIDIA GeForce RTX 3060 12GB", "nvidia", 12288, "8.6", "consumer", None),
    ("rtx3090", "NVIDIA GeForce RTX 3090", "nvidia", 24576, "8.6", "consumer", 82),
    ("rtx4060ti-16gb", "NVIDIA GeForce RTX 4060 Ti 16GB", "nvidia", 16380, "8.9", "consumer", None),
    ("rtx4090", "NVIDIA GeForce RTX 4090", "nvidia", 24564, "8.9", "consumer", 128),
    ("rtx5090", "NVIDIA GeForce RTX 5090", "nvidia", 32607, "12.0", "consumer", None),
    ("t4", "Tesla T4", "nvidia", 15360, "7.5", "datacenter", 40),
    ("v100-16gb", "Tesla V100-SXM2-16GB", "nvidia", 16160, "7.0", "datacenter", 80),
    ("v100-32gb", "Tesla V100-SXM2-32GB", "nvidia", 32510, "7.0", "datacenter", 80),
    ("v100-pcie-16gb", "Tesla V100-PCIE-16GB", "nvidia", 16160, "7.0", "datacenter", 80),
    ("v100-pcie-32gb", "Tesla V100-PCIE-32GB", "nvidia", 32510, "7.0", "datacenter", 80),
    ("v100s-pcie-32gb", "Tesla V100S-PCIE-32GB", "nvidia", 32510, "7.0", "datacenter", 80),
    ("a10", "NVIDIA A10", "nvidia", 23028, "8.6", "datacenter", 72),
    ("l4", "NVIDIA L4", "nvidia", 23034, "8.9", "datacenter", 58),
    ("l40s", "NVIDIA L40S", "nvidia", 46068, "8.9", "datacenter", 142),
    ("a100-40gb", "NVIDIA A100-SXM4-40GB", "nvidia", 40960, "8.0", "datacenter", 108),
    ("a100-80gb", "NVIDIA A100-SXM4-80GB", "nvidia", 81920, "8.0", "datacenter", 108),
    ("a100-pcie-40gb", "NVIDIA A100-PCIE-40GB", "nvidia", 40960, "8.0", "datacenter", 108),
    ("a100-pcie-80gb", "NVIDIA A100 80GB PCIe", "nvidia", 81920, "8.0", "datacenter", 108),
    ("h100-80gb", "NVIDIA H100 80GB HBM3", "nvidia", 81559, "9.0", "datacenter", 132),
    ("h100-pcie", "NVIDIA H100 PCIe", "nvidia", 81559, "9.0", "datacenter", 114),
    ("h20", "NVIDIA H20", "nvidia", 97871, "9.0", "datacenter", None),
    ("h200", "NVIDIA H200", "nvidia", 143771, "9.0", "datacenter", 132),
    ("mi250x", "AMD Instinct MI250X", "amd", 65536, "gfx90a", "datacenter", 110),
    ("mi300x", "AMD Instinct MI300X", "amd", 196592, "gfx942", "datacenter", 304),
)

# Spellings people use -> key (compared after removing spaces, dashes, underscores, brackets, "nvidia", "geforce",
# "tesla"). nvidia-smi prints "NVIDIA A100-PCIE-40GB", "NVIDIA A100 80GB PCIe" and "NVIDIA H100 PCIe"; a plain
# "A100" is the SXM4 80GB and a plain "H100" the H100 SXM5 ("H100 80GB HBM3"), as before.
_ALIASES = {
    "rtx3060": "rtx3060-12gb", "rtx306012gb": "rtx3060-12gb", "3060": "rtx3060-12gb",
    "rtx3090": "rtx3090", "rtx309024gb": "rtx3090", "3090": "rtx3090",
    "rtx4060ti16gb": "rtx4060ti-16gb", "rtx4060ti": "rtx4060ti-16gb",
    "rtx4090": "rtx4090", "rtx409024gb": "rtx4090", "4090": "rtx4090",
    "rtx5090": "rtx5090", "rtx509032gb": "rtx5090",
    "t4": "t4", "t416gb": "t4",
    "v100": "v100-32gb", "v10032gb": "v100-32gb", "v100sxm232gb": "v100-32gb",
    "v10016gb": "v100-16gb", "v100sxm216gb": "v100-16gb",
    "v100pcie16gb": "v100-pcie-16gb", "v10016gbpcie": "v100-pcie-16gb",
    "v100pcie32gb": "v100-pcie-32gb", "v10032gbpcie": "v100-pcie-32gb", "v100pcie": "v100-pcie-32gb",
    "v100s": "v100s-pcie-32gb", "v100spcie32gb": "v100s-pcie-32gb", "v100spcie": "v100s-pcie-32gb",
    "v100s32gb": "v100s-pcie-32gb",
    "a10": "a10", "a1024gb": "a10", "l4": "l4", "l424gb": "l4", "l40s": "l40s", "l40s48gb": "l40s",
    "a10040gb": "a100-40gb", "a100sxm440gb": "a100-40gb", "a100sxm40gb": "a100-40gb",
    "a100": "a100-80gb", "a10080gb": "a100-80gb", "a100sxm480gb": "a100-80gb", "a100sxm80gb": "a100-80gb",
    "a100sxm4": "a100-80gb", "a100sxm": "a100-80gb",
    "a100pcie40gb": "a100-pcie-40gb", "a10040gbpcie": "a100-pcie-40gb",
    "a100pcie80gb": "a100-pcie-80gb", "a10080gbpcie": "a100-pcie-80gb", "a100pcie": "a100-pcie-80gb",
    "h100": "h100-80gb", "h10080gb": "h100-80gb", "h10080gbhbm3": "h100-80gb", "h100sxm580gb": "h100-80gb",
    "h100sxm": "h100-80gb", "h100sxm5": "h100-80gb",
    "h100pcie": "h100-pcie", "h100pcie80gb": "h100-pcie", "h10080gbpcie": "h100-pcie",
    "h20": "h20", "h200": "h200", "h200141gb": "h200",
    "mi250x": "mi250x", "amdinstinctmi250x": "mi250x", "instinctmi250x": "mi250x",
    "mi300x": "mi300x", "amdinstinctmi300x": "mi300x", "instinctmi300x": "mi300x",
}

# Compute units by name part, checked in this order, for GPUs the catalog does not know or has no figure for
# (vendor specifications): a GPU matching none gets the most of the list (the safer assumption for the KV room:
# engine_memory plans one Triton top-k/top-p scratch row per program, at most this many).
COMPUTE_UNITS_BY_NAME_PART = (
    ("v100", 80), ("3090", 82), ("4090", 128), ("6000 ada", 142), ("l40", 142), ("a100", 108), ("h100", 132),
    ("h200", 132), ("b200", 148), ("mi300", 304),
)

_NOISE = re.compile(r"nvidia|geforce|tesla|[\s_\-()]")


def _key_of(name):
    return _ALIASES.get(_NOISE.sub("", str(name).lower()))


def _row(name):
    """The catalog row of a GPU name (any spelling), or None."""
    key = _key_of(name) if isinstance(name, str) else None
    for row in _CATALOG:
        if row[0] == key:
            return row
    return None


def known_names():
    """Display names of the catalog, for error messages."""
    return [row[1] for row in _CATALOG]


def lookup(name, field="gpu"):
    """Return ``{'name', 'vendor', 'memory_total_mib', 'compute_capability', 'arch', 'gpu_class', 'compute_units'}``
    for a GPU model (``compute_units`` None where the catalog has no vendor figure).

    Raises SizingInputError naming ``field`` when the model is unknown.
    """
    row = _row(name)
    if row is None:
        raise SizingInputError(field, name, "a known GPU model (%s) or explicit memory_total_mib" % ", ".join(
            known_names()))
    nvidia = row[2] == "nvidia"
    return {
        "name": row[1],
        "vendor": row[2],
        "memory_total_mib": row[3],
        "compute_capability": row[4] if nvidia else None,
        "arch": None if nvidia else row[4],
        "gpu_class": row[5],
        "compute_units": row[6],
    }


def compute_units(name=None):
    """Compute units (SMs / CUs of one device) of a GPU by its name: the catalog's figure, else the first
    ``COMPUTE_UNITS_BY_NAME_PART`` part the name contains, else the most of that list."""
    row = _row(name)
    if row is not None and row[6] is not None:
        return row[6]
    lowered = name.lower() if isinstance(name, str) else ""
    for part, units in COMPUTE_UNITS_BY_NAME_PART:
        if part in lowered:
            return units
    return max(units for _part, units in COMPUTE_UNITS_BY_NAME_PART)


def memory_total_mib(name):
    """The catalog's memory.total (MiB) of a GPU by its name, any spelling; None for a GPU the catalog does not
    know."""
    row = _row(name)
    return row[3] if row is not None else None


def canonical_name(name):
    """The GPU model's name as the catalog knows it, so every spelling of one model is one name: 'RTX 4090' (an
    inventory) and 'NVIDIA GeForce RTX 4090' (nvidia-smi) are both 'NVIDIA GeForce RTX 4090'. A GPU the catalog does
    not know keeps its name as given (trimmed); what is not a string is returned as it is."""
    row = _row(name)
    if row is not None:
        return row[1]
    return name.strip() if isinstance(name, str) else name


def gpu_class(name):
    """'consumer' or 'datacenter' for a GPU name; heuristic when the model is not in the catalog."""
    row = _row(name)
    if row is not None:
        return row[5]
    lowered = str(name or "").lower()
    if any(tag in lowered for tag in ("geforce", "rtx", "gtx", "radeon", "titan")):
        return "consumer"
    return "datacenter"
