import os

import pytest

from ansible_collections.llmops.deploy.plugins.module_utils import host_resources

MEMINFO = """MemTotal:       24594220 kB
MemFree:        23000000 kB
MemAvailable:   23456789 kB
Buffers:          123456 kB
HugePages_Total:       0
"""


def test_parse_meminfo_converts_kib_to_mib_exactly():
    result = host_resources.parse_meminfo(MEMINFO)
    assert result == {"memory_total_mib": 24594220 // 1024, "memory_available_mib": 23456789 // 1024}


def test_parse_meminfo_without_memtotal_is_an_error():
    with pytest.raises(ValueError, match="MemTotal"):
        host_resources.parse_meminfo("MemFree: 1 kB\n")


def test_probe_memory_reads_this_host():
    assert host_resources.probe_memory()["memory_total_mib"] > 0


def test_probe_disk_walks_up_to_an_existing_parent(tmp_path):
    target = tmp_path / "models" / "owner" / "name"
    result = host_resources.probe_disk(str(target))
    assert result["disk_measured_at"] == str(tmp_path)
    stats = os.statvfs(str(tmp_path))
    assert result["disk_free_mib"] == stats.f_bavail * stats.f_frsize // 2 ** 20


def test_probe_cpu_cores_positive():
    assert host_resources.probe_cpu_cores() >= 1
