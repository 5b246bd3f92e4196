# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Known GPU models: device memory as ``nvidia-smi``/``amd-smi`` report it (MiB) and compute capability.

Used to plan against declared hardware ("4 x A100 80GB") and to check the guide's hardware examples.
Memory figures are the totals the tools print (``memory.total`` in MiB), not the marketing "GB":
an "A100 80GB" reports 81920 MiB (85.9 GB), an "RTX 4090 24GB" 24564 MiB (25.8 GB).
"""

import re

from ansible_collections.llmops.deploy.plugins.module_utils.sizing_errors import SizingInputError

# key -> (display name, vendor, memory_total_mib, compute capability or gfx arch, class)
_CATALOG = (
    ("rtx3060-12gb", "NVIDIA GeForce RTX 3060 12GB", "nvidia", 12288, "8.6", "consumer"),
    ("rtx3090", "NVIDIA GeForce RTX 3090", "nvidia", 24576, "8.6", "consumer"),
    ("rtx4060ti-16gb", "NVIDIA GeForce RTX 4060 Ti 16GB", "nvidia", 16380, "8.9", "consumer"),
    ("rtx4090", "NVIDIA GeForce RTX 4090", "nvidia", 24564, "8.9", "consumer"),
    ("rtx5090", "NVIDIA GeForce RTX 5090", "nvidia", 32607, "12.0", "consumer"),
    ("t4", "Tesla T4", "nvidia", 15360, "7.5", "datacenter"),
    ("v100-32gb", "Tesla V100-SXM2-32GB", "nvidia", 32768, "7.0", "datacenter"),
    ("a10", "NVIDIA A10", "nvidia", 23028, "8.6", "datacenter"),
    ("l4", "NVIDIA L4", "nvidia", 23034, "8.9", "datacenter"),
    ("l40s", "NVIDIA L40S", "nvidia", 46068, "8.9", "datacenter"),
    ("a100-40gb", "NVIDIA A100-SXM4-40GB", "nvidia", 40960, "8.0", "datacenter"),
    ("a100-80gb", "NVIDIA A100-SXM4-80GB", "nvidia", 81920, "8.0", "datacenter"),
    ("h100-80gb", "NVIDIA H100 80GB HBM3", "nvidia", 81559, "9.0", "datacenter"),
    ("h20", "NVIDIA H20", "nvidia", 97871, "9.0", "datacenter"),
    ("h200", "NVIDIA H200", "nvidia", 143771, "9.0", "datacenter"),
    ("mi250x", "AMD Instinct MI250X", "amd", 65536, "gfx90a", "datacenter"),
    ("mi300x", "AMD Instinct MI300X", "amd", 196592, "gfx942", "datacenter"),
)

# Spellings people use -> key (compared after removing spaces, dashes, underscores, "nvidia", "geforce", "tesla").
_ALIASES = {
    "rtx3060": "rtx3060-12gb", "rtx306012gb": "rtx3060-12gb", "3060": "rtx3060-12gb",
    "rtx3090": "rtx3090", "rtx309024gb": "rtx3090", "3090": "rtx3090",
    "rtx4060ti16gb": "rtx4060ti-16gb", "rtx4060ti": "rtx4060ti-16gb",
    "rtx4090": "rtx4090", "rtx409024gb": "rtx4090", "4090": "rtx4090",
    "rtx5090": "rtx5090", "rtx509032gb": "rtx5090",
    "t4": "t4", "t416gb": "t4",
    "v100": "v100-32gb", "v10032gb": "v100-32gb", "v100sxm232gb": "v100-32gb",
    "a10": "a10", "a1024gb": "a10", "l4": "l4", "l424gb": "l4", "l40s": "l40s", "l40s48gb": "l40s",
    "a10040gb": "a100-40gb", "a100sxm440gb": "a100-40gb", "a100pcie40gb": "a100-40gb",
    "a100": "a100-80gb", "a10080gb": "a100-80gb", "a100sxm480gb": "a100-80gb", "a100pcie80gb": "a100-80gb",
    "a10080gbpcie": "a100-80gb",
    "h100": "h100-80gb", "h10080gb": "h100-80gb", "h10080gbhbm3": "h100-80gb", "h100sxm580gb": "h100-80gb",
    "h100sxm": "h100-80gb",
    "h20": "h20", "h200": "h200", "h200141gb": "h200",
    "mi250x": "mi250x", "amdinstinctmi250x": "mi250x", "instinctmi250x": "mi250x",
    "mi300x": "mi300x", "amdinstinctmi300x": "mi300x", "instinctmi300x": "mi300x",
}

_NOISE = re.compile(r"nvidia|geforce|tesla|[\s_\-()]")


def _key_of(name):
    return _ALIASES.get(_NOISE.sub("", str(name).lower()))


def known_names():
    """Display names of the catalog, for error messages."""
    return [row[1] for row in _CATALOG]


def lookup(name, field="gpu"):
    """Return ``{'name', 'vendor', 'memory_total_mib', 'compute_capability', 'arch', 'gpu_class'}`` for a GPU model.

    Raises SizingInputError naming ``field`` when the model is unknown.
    """
    key = _key_of(name) if isinstance(name, str) else None
    for row in _CATALOG:
        if row[0] == key:
            nvidia = row[2] == "nvidia"
            return {
                "name": row[1],
                "vendor": row[2],
                "memory_total_mib": row[3],
                "compute_capability": row[4] if nvidia else None,
                "arch": None if nvidia else row[4],
                "gpu_class": row[5],
            }
    raise SizingInputError(field, name, "a known GPU model (%s) or explicit memory_total_mib" % ", ".join(known_names()))


def canonical_name(name):
    """The GPU model's name as the catalog knows it, so every spelling of one model is one name: 'RTX 4090' (an
    inventory) and 'NVIDIA GeForce RTX 4090' (nvidia-smi) are both 'NVIDIA GeForce RTX 4090'. A GPU the catalog does
    not know keeps its name as given (trimmed); what is not a string is returned as it is."""
    key = _key_of(name) if isinstance(name, str) else None
    for row in _CATALOG:
        if row[0] == key:
            return row[1]
    return name.strip() if isinstance(name, str) else name


def gpu_class(name):
    """'consumer' or 'datacenter' for a GPU name; heuristic when the model is not in the catalog."""
    key = _key_of(name) if isinstance(name, str) else None
    for row in _CATALOG:
        if row[0] == key:
            return row[5]
    lowered = str(name or "").lower()
    if any(tag in lowered for tag in ("geforce", "rtx", "gtx", "radeon", "titan")):
        return "consumer"
    return "datacenter"
