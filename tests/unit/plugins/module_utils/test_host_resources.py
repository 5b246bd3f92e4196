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


def _fake_proc(tmp_path, processes):
    for pid, ppid, name, rss_kb, hwm_kb in processes:
        folder = tmp_path / str(pid)
        folder.mkdir()
        (folder / "status").write_text(
            "Name:\t%s\nState:\tS (sleeping)\nPPid:\t%d\nVmHWM:\t%8d kB\nVmRSS:\t%8d kB\n" % (name, ppid, hwm_kb, rss_kb))
    (tmp_path / "self").mkdir()  # not a process number: skipped


def test_process_tree_memory_sums_the_tree_and_nothing_else(tmp_path):
    _fake_proc(tmp_path, [(1, 0, "systemd", 9000, 9000), (100, 1, "vllm", 600000, 650000),
                          (101, 100, "VLLM::EngineCor", 500000, 600000), (102, 101, "VLLM::Worker", 1700000, 1800000),
                          (200, 1, "sshd", 7000, 7000)])
    tree = host_resources.process_tree_memory(100, proc_root=str(tmp_path))
    assert [p["pid"] for p in tree["processes"]] == [100, 101, 102]
    assert tree["rss_bytes"] == (600000 + 500000 + 1700000) * 1024
    assert tree["peak_rss_bytes"] == (650000 + 600000 + 1800000) * 1024
    with pytest.raises(ValueError, match="process 4242 does not exist"):
        host_resources.process_tree_memory(4242, proc_root=str(tmp_path))


def test_process_tree_memory_of_this_process():
    tree = host_resources.process_tree_memory(os.getpid())
    assert tree["processes"][0]["pid"] == os.getpid() and tree["peak_rss_bytes"] >= tree["processes"][0]["rss_bytes"] > 0
