"""Print the deployment guide's tables 2.2, 2.3.1 and 2.3.2 as the sizing engine computes them (Markdown).

The README embeds this output between markers, and tests/unit/test_readme.py checks that it is current.
Usage: .venv/bin/python scripts/guide-tables.py
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".collections"))

from ansible_collections.llmops.deploy.plugins.module_utils import capacity, gpu_catalog, sizing  # noqa: E402

SIZES = ("1.5B", "7B", "8B", "32B", "70B", "671B")
# The guide's "适用硬件示例" column: (GPU count, GPU model) per row.
EXAMPLES = {
    "fp16": ((1, "RTX 3060 12GB"), (1, "RTX 4090"), (1, "A100 40GB"), (2, "A100 80GB"), (4, "A100 80GB"),
             (32, "A100 80GB")),
    "fp32": ((1, "RTX 3090"), (1, "A100 40GB"), (1, "A100 80GB"), (4, "A100 80GB"), (8, "A100 80GB"),
             (64, "A100 80GB")),
}


def num(value):
    return ("%.3f" % value).rstrip("0").rstrip(".")


def table_2_2():
    lines = ["| Precision | Bytes per parameter | 32B example |", "|---|---|---|"]
    for precision in ("int4", "int8", "fp8", "fp16", "bf16", "fp32"):
        result = sizing.size_model(params="32B", precision=precision)
        lines.append("| %s | %s | %s GB |" % (
            result["precision_label"], num(result["bytes_per_param"]), num(result["param_memory_gb"])))
    return lines


def table_2_3(precision):
    lines = ["| Params | Parameter memory (GB) | GPU memory (GB / GiB) | CPU memory (GB) | CPU cores |"
             " Guide's hardware example | Engine's plan (20 % reserve) | Verdict on the example |",
             "|---|---|---|---|---|---|---|---|"]
    for size, (count, gpu) in zip(SIZES, EXAMPLES[precision]):
        result = sizing.size_model(params=size, precision=precision)
        known = gpu_catalog.lookup(gpu)
        plan = sizing.gpu_plan(result["requirements_bytes"]["gpu_memory"], known["memory_total_mib"])
        verdict = capacity.assess(result, {"gpu_model": gpu, "gpu_count": count})["resources"]["gpu_memory"]
        lines.append("| %s | %s | %s / %s | %s | %s | %d x %s | %s | %s |" % (
            size, num(result["param_memory_gb"]), num(result["gpu_memory_gb"]), num(result["gpu_memory_gib"]),
            num(result["cpu_memory_gb"]), result["cpu_cores_label"], count, gpu,
            sizing.describe_plan(plan, gpu), verdict["verdict"]))
    return lines


def main():
    print("Table 2.2 - bytes per parameter:\n")
    print("\n".join(table_2_2()))
    print("\nTable 2.3.1 - FP16:\n")
    print("\n".join(table_2_3("fp16")))
    print("\nTable 2.3.2 - FP32:\n")
    print("\n".join(table_2_3("fp32")))


if __name__ == "__main__":
    main()
