"""Deployment report: rows from per-host outcomes, totals, Markdown and summary."""
import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.llmops.deploy.plugins.filter.deployment_report import FilterModule

FILTERS = FilterModule().filters()

DEPLOYED = {"status": "deployed", "model": "o/M-7B", "revision": "abc", "model_dir": "/opt/llmops/models/o/M-7B",
            "files": 6, "bytes_total": 15 * 10 ** 9, "bytes_fetched": 15 * 10 ** 9, "verified": "quick",
            "pickle_files": ["pytorch_model.bin"], "code_files": ["modeling.py"]}


def report(check_mode=False):
    hostvars = {
        "gpu-1": {"llmops_deploy_outcome": DEPLOYED, "preflight_result": {"verdict": "fits", "gpus_needed": 1}},
        "gpu-2": {"llmops_deploy_outcome": dict(DEPLOYED, status="unchanged", bytes_fetched=0),
                  "preflight_result": {"verdict": "tight", "gpus_needed": 2}},
        "cpu-1": {"llmops_deploy_outcome": {"status": "skipped", "model": "o/M-7B",
                                            "reason": "preflight insufficient: no GPU found"},
                  "preflight_result": {"verdict": "insufficient"}},
        "bad-1": {"llmops_deploy_outcome": {"status": "failed", "reason": "Download: model.safetensors failed"}},
        "gone-1": {},
        "plan-1": {"llmops_deploy_outcome": {"status": "planned", "model": "o/M-7B", "would_fetch_files": 6,
                                             "would_fetch_bytes": 15 * 10 ** 9, "model_dir": "/m"}},
    }
    return FILTERS["deployment_report"](sorted(hostvars), hostvars, check_mode=check_mode)


def test_rows_and_totals():
    result = report()
    assert [r["host"] for r in result["hosts"]] == ["bad-1", "cpu-1", "gone-1", "gpu-1", "gpu-2", "plan-1"]
    assert result["totals"] == {"deployed": 1, "unchanged": 1, "planned": 1, "skipped": 1, "failed": 1,
                                "unreachable": 1, "hosts": 6, "bytes_fetched": 15 * 10 ** 9}
    gpu2 = result["hosts"][4]
    assert (gpu2["preflight_verdict"], gpu2["gpus_needed"]) == ("tight", 2)


def test_markdown_and_summary_say_what_happened():
    result = report()
    text = FILTERS["deployment_report_markdown"](result)
    assert "| gpu-1 | fits | **deployed** | o/M-7B |" in text
    assert "pickle weights: pytorch_model.bin" in text and "repository code (never run): modeling.py" in text
    assert "| cpu-1 | insufficient | **skipped** | o/M-7B | preflight insufficient: no GPU found |" in text
    lines = FILTERS["deployment_report_summary"](result)
    assert lines[0] == ("Deployment: 6 host(s) - deployed 1, unchanged 1, planned 1, skipped 1, failed 1, "
                        "unreachable 1")
    assert "plan-1: PLANNED - would fetch 6 files (15.0 GB) of o/M-7B into /m" in lines
    assert "gone-1: UNREACHABLE - host did not report (unreachable, or its play stopped before the deployment)" in lines


def test_check_mode_is_a_plan():
    assert FILTERS["deployment_report_markdown"](report(check_mode=True)).startswith(
        "# Model deployment plan (check mode: nothing changed)")
    assert FILTERS["deployment_report_summary"](report(check_mode=True))[0].startswith("Plan (check mode): 6 host(s)")


def test_unknown_status_is_a_failure_not_hidden():
    result = FILTERS["deployment_report"](["h"], {"h": {"llmops_deploy_outcome": {"status": "weird"}}})
    assert result["hosts"][0]["status"] == "failed" and "unknown status 'weird'" in result["hosts"][0]["reason"]


@pytest.mark.parametrize("call", [
    lambda: FILTERS["deployment_report"]("h", {}),
    lambda: FILTERS["deployment_report_markdown"]({}),
    lambda: FILTERS["deployment_report_summary"]([]),
])
def test_bad_input(call):
    with pytest.raises(AnsibleFilterError):
        call()
