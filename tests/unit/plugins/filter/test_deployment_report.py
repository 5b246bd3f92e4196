"""Deployment report: rows from per-host outcomes, totals, the console summary, and the Markdown/HTML templates
(rendered the way ansible.builtin.template renders them: Jinja2 with trim_blocks)."""
import json
import os

import jinja2
import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.llmops.deploy.plugins.filter.deployment_report import FilterModule

FILTERS = FilterModule().filters()
TEMPLATES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "playbooks", "templates")

DEPLOYED = {"status": "deployed", "model": "o/M-7B", "revision": "abc", "model_dir": "/opt/llmops/models/o/M-7B",
            "files": 6, "bytes_total": 15 * 10 ** 9, "bytes_fetched": 15 * 10 ** 9, "verified": "quick",
            "pickle_files": ["pytorch_model.bin"], "code_files": ["modeling.py"]}
SERVE = {"state": "started", "endpoint": "http://10.0.0.5:8000", "unit": "llmops-vllm-m-7b.service",
         "engine": {"name": "vllm", "build": "cuda", "version": "0.32.0"},
         "args": [{"flag": "--tensor-parallel-size", "value": "2", "source": "plan", "detail": "the GPU plan's TP group"},
                  {"flag": "--max-model-len", "value": "8192", "source": "override", "detail": None},
                  {"flag": "--kv-cache-dtype", "value": None, "source": "engine", "detail": "vLLM decides"},
                  {"flag": None, "name": "VLLM_CPU_KVCACHE_SPACE", "value": 4, "source": "plan", "detail": None}]}
TRIAL = {"passed": True, "estimates_as_expected": False,  # as llmops.deploy.inference_check returns it
         "summary": {"requests": 4, "succeeded": 4, "failed": 0, "concurrency": 2, "ttft_s": {"p50": 0.1204},
                     "latency_s": {"p50": 0.9}, "aggregate_output_tokens_per_s": 35.25},
         "engine": {"version": "0.32.0"}, "requests": [{"text": "not copied into the report"}],
         "comparison": [
             {"figure": "weights_bytes", "label": "weights", "estimated": 15000000000, "measured": 15100000000,
              "ratio": 1.0067, "verdict": "as expected", "summary": None},
             {"figure": "kv_cache_tokens", "label": "KV-cache tokens", "estimated": 10000, "measured": 31000,
              "ratio": 3.1, "verdict": "differs",
              "summary": "the engine kept 3.1x more KV-cache tokens than planned <b>"},
             {"figure": "max_concurrency", "label": "maximum concurrency", "estimated": 1.2, "measured": None,
              "ratio": None, "verdict": "not measured", "summary": "the engine did not report it"}]}


def report(check_mode=False):
    hostvars = {
        "gpu-1": {"llmops_deploy_outcome": dict(DEPLOYED, serve=SERVE, trial=TRIAL),
                  "preflight_result": {"verdict": "fits", "gpus_needed": 1}},
        "gpu-2": {"llmops_deploy_outcome": dict(DEPLOYED, status="unchanged", bytes_fetched=0),
                  "preflight_result": {"verdict": "tight", "gpus_needed": 2}},
        "cpu-1": {"llmops_deploy_outcome": {"status": "skipped", "model": "o/M-7B",
                                            "reason": "preflight insufficient: no GPU found"},
                  "preflight_result": {"verdict": "insufficient"}},
        "bad-1": {"llmops_deploy_outcome": {"status": "failed", "reason": "Download: model.safetensors failed"}},
        "gone-1": {},
        "plan-1": {"llmops_deploy_outcome": {"status": "planned", "model": "o/M-7B", "would_fetch_files": 6,
                                             "would_fetch_bytes": 15 * 10 ** 9, "model_dir": "/m",
                                             "serve": dict(SERVE, state="planned")}},
    }
    return FILTERS["deployment_report"](sorted(hostvars), hostvars, check_mode=check_mode)


def render(name, data):
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), trim_blocks=True, undefined=jinja2.StrictUndefined)
    return env.get_template(name).render(llmops_deployment_report=data)


def test_rows_and_totals():
    result = report()
    assert [r["host"] for r in result["hosts"]] == ["bad-1", "cpu-1", "gone-1", "gpu-1", "gpu-2", "plan-1"]
    assert result["totals"] == {"deployed": 1, "unchanged": 1, "planned": 1, "skipped": 1, "failed": 1,
                                "unreachable": 1, "hosts": 6, "bytes_fetched": 15 * 10 ** 9, "serving": 1,
                                "trials_passed": 1, "trials_failed": 0}
    gpu2 = result["hosts"][4]
    assert (gpu2["preflight_verdict"], gpu2["gpus_needed"]) == ("tight", 2)
    assert json.loads(json.dumps(result)) == result  # the JSON report is the same data


def test_summary_says_what_happened():
    lines = FILTERS["deployment_report_summary"](report())
    assert lines[0] == ("Deployment: 6 host(s) - deployed 1, unchanged 1, planned 1, skipped 1, failed 1, "
                        "unreachable 1; serving 1, trials passed 1, failed 0")
    assert "plan-1: PLANNED - would fetch 6 files (15.0 GB) of o/M-7B into /m; would serve at http://10.0.0.5:8000 " \
           "(vLLM 0.32.0 cuda)" in lines
    assert "gone-1: UNREACHABLE - host did not report (unreachable, or its play stopped before the deployment)" in lines
    gpu1 = [line for line in lines if line.startswith("gpu-1: ")][0]
    assert "serving at http://10.0.0.5:8000 (vLLM 0.32.0 cuda; service started)" in gpu1
    assert ("trial passed: 4/4 requests ok, TTFT p50 120 ms, 35.2 output tokens/s, "
            "plan vs engine: 1 of 2 figure(s) differ (KV-cache tokens)") in gpu1
    assert "not copied" not in str(FILTERS["deployment_report"](["gpu-1"], {"gpu-1": {"llmops_deploy_outcome": dict(
        DEPLOYED, trial=TRIAL)}}))


def test_markdown_template():
    text = render("deployment.md.j2", report())
    assert text.startswith("# Model deployment\n")
    assert "| gpu-1 | fits | **deployed** | o/M-7B |" in text
    assert "pickle weights: pytorch_model.bin" in text and "repository code (never run): modeling.py" in text
    assert "| cpu-1 | insufficient | **skipped** | o/M-7B | preflight insufficient: no GPU found | - | - |" in text
    assert "## gpu-1: http://10.0.0.5:8000" in text
    assert "| `--tensor-parallel-size` | 2 | plan | the GPU plan's TP group |" in text
    assert "| `--max-model-len` | 8192 | override | - |" in text and "| `--kv-cache-dtype` | - | engine |" in text
    assert "| VLLM_CPU_KVCACHE_SPACE (environment) | 4 | plan |" in text
    assert "| KV-cache tokens | 10000 | 31000 | 3.10 | differs: the engine kept 3.1x more KV-cache tokens" in text
    assert "| weights | 15000000000 | 15100000000 | 1.01 | as expected |" in text
    assert "| maximum concurrency | 1.2 | - | - | not measured: the engine did not report it |" in text
    assert "## plan-1" not in text.split("## gpu-1")[0]  # planned hosts show their arguments too, after gpu-1
    lines = FILTERS["deployment_report_summary"](report())
    assert lines[0] + "." in text  # the same totals as the console


def test_html_template_escapes_and_agrees():
    page = render("deployment.html.j2", report())
    assert page.startswith("<!DOCTYPE html>")
    assert '<td class="status deployed">deployed</td>' in page
    assert "more KV-cache tokens than planned &lt;b&gt;" in page and "<b>" not in page
    assert '<tr class="differs"><td>KV-cache tokens</td>' in page
    assert "<td>VLLM_CPU_KVCACHE_SPACE (environment)</td>" in page and "None" not in page
    assert FILTERS["deployment_report_summary"](report())[0] + "." in page


def test_check_mode_is_a_plan():
    assert render("deployment.md.j2", report(check_mode=True)).startswith(
        "# Model deployment plan (check mode: nothing changed)")
    assert FILTERS["deployment_report_summary"](report(check_mode=True))[0].startswith("Plan (check mode): 6 host(s)")


def test_unknown_status_is_a_failure_not_hidden():
    result = FILTERS["deployment_report"](["h"], {"h": {"llmops_deploy_outcome": {"status": "weird"}}})
    assert result["hosts"][0]["status"] == "failed" and "unknown status 'weird'" in result["hosts"][0]["reason"]


@pytest.mark.parametrize("call", [
    lambda: FILTERS["deployment_report"]("h", {}),
    lambda: FILTERS["deployment_report_summary"]({}),
    lambda: FILTERS["deployment_report_summary"]([]),
])
def test_bad_input(call):
    with pytest.raises(AnsibleFilterError):
        call()
