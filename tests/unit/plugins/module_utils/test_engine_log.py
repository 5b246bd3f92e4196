# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""engine_log: recorded vLLM logs (CPU, recorded here; GPU, published by users, sources in their README) and
/metrics text -> figures, each with its line."""
import os

import pytest

from ansible_collections.llmops.deploy.plugins.module_utils import engine_log

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))))
LOGS = os.path.join(REPO_ROOT, "tests", "fixtures", "vllm_logs")
GIB = 1024 ** 3


def read(*parts):
    with open(os.path.join(LOGS, *parts), encoding="utf-8") as handle:
        return handle.read()


def lines_of(*parts):
    return engine_log.split_lines(read(*parts))


# Expected figures, written from reading each log by eye: (value, reported text)
GPU_CASES = {
    "production-stack-llama-3.2-1b-v0.9.0.1.log": {
        "version": "0.9.0.1", "model": "meta-llama/Llama-3.2-1B-Instruct", "max_model_len": 131072,
        "weights_bytes": (round(2.3185 * GIB), "2.3185 GiB"), "kv_cache_tokens": (1028832, "1,028,832"),
        "max_concurrency": (7.85, "7.85", 131072), "kv_cache_blocks": (64302, "64302"),
        "loading_weights_seconds": (0.47, "0.47"),
    },
    "deepseek-r1-distill-qwen-14b-v0.8.5.log": {
        "version": "0.8.5.post1", "model": "/opt/llm/deepseek-r1-14b", "max_model_len": 32768,
        "weights_bytes": (round(27.5916 * GIB), "27.5916 GiB"), "kv_cache_tokens": (32832, "32,832"),
        "max_concurrency": (1.0, "1.00", 32768), "init_engine_seconds": (57.31, "57.31"),
    },
    "dgx-spark-laguna-s-2.1-nvfp4-v0.25.1.log": {
        "version": "0.25.1", "model": "poolside/Laguna-S-2.1-NVFP4", "max_model_len": 65536,
        "weights_bytes": (round(95.63 * GIB), "95.63 GiB"), "kv_cache_tokens": (94135, "94,135"),
        "max_concurrency": (1.44, "1.44", 65536), "kv_cache_memory_bytes": (round(6.97 * GIB), "6.97 GiB"),
        "checkpoint_bytes": (round(92.85 * GIB), "92.85 GiB"),
    },
}


@pytest.mark.parametrize("name", sorted(GPU_CASES))
def test_published_gpu_logs_give_the_figures_each_with_its_own_line(name):
    want = GPU_CASES[name]
    result = engine_log.parse_engine_log(read("gpu", name))
    lines = lines_of("gpu", name)
    assert result["version"] == want["version"] and result["platform"] == "gpu"
    assert result["model"] == want["model"] and result["config"]["max_model_len"] == want["max_model_len"]
    assert result["config"]["device"] == "cuda" and result["started"] is True
    assert result["server_url"] == "http://0.0.0.0:8000"
    for key, expected in want.items():
        if not isinstance(expected, tuple):
            continue
        figure = result["figures"][key]
        assert (figure["value"], figure["reported"]) == expected[:2], key
        assert lines[figure["line_number"] - 1] == figure["line"], key
        assert figure["reported"].split()[0] in figure["line"], key
        if key == "max_concurrency":
            assert figure["context_length"] == expected[2]


def test_the_first_checkpoint_line_is_the_models_not_the_drafters():
    result = engine_log.parse_engine_log(read("gpu", "dgx-spark-laguna-s-2.1-nvfp4-v0.25.1.log"))
    assert result["figures"]["checkpoint_bytes"]["reported"] == "92.85 GiB"  # the drafter's 2.08 GiB comes later
    assert result["config"]["quantization"] == "compressed-tensors"
    # its EngineDeadError came while SIGTERM tore the engine down: not a failure of the start
    assert result["first_error"] is None and result["exception"] is None


def test_none_config_values_are_null():
    result = engine_log.parse_engine_log(read("gpu", "production-stack-llama-3.2-1b-v0.9.0.1.log"))
    assert result["config"]["quantization"] is None and result["config"]["kv_cache_dtype"] == "auto"
    assert result["first_error"] is None and result["exception"] is None


def test_a_runtime_error_after_start_is_reported_as_the_first_error():
    result = engine_log.parse_engine_log(read("gpu", "deepseek-r1-distill-qwen-14b-v0.8.5.log"))
    assert result["started"] is True
    assert "The model `deepseek-r1-14b` does not exist." in result["first_error"]["message"]
    assert result["first_error"]["message"].startswith("Error with model")


def test_cpu_log_recorded_here():
    result = engine_log.parse_engine_log(read("cpu", "qwen2-tiny-fp32.log"))
    lines = lines_of("cpu", "qwen2-tiny-fp32.log")
    figures = result["figures"]
    assert result["version"] == "0.32.0" and result["platform"] == "cpu" and result["started"] is True
    assert result["config"]["dtype"] == "float32" and result["config"]["max_model_len"] == 512
    assert figures["kv_cache_tokens"]["value"] == 262144
    assert figures["max_concurrency"]["value"] == 512.0 and figures["max_concurrency"]["context_length"] == 512
    # one line holds both figures (the CPU build's wording)
    assert figures["kv_cache_tokens"]["line_number"] == figures["max_concurrency"]["line_number"]
    assert figures["kv_cache_memory_bytes"]["value"] == GIB
    assert figures["kv_cache_memory_bytes"]["note"].endswith("(VLLM_CPU_KVCACHE_SPACE)")
    assert figures["checkpoint_bytes"]["value"] == 0 and figures["checkpoint_bytes"]["reported"] == "0.00 GiB"
    assert figures["checkpoint_bytes"]["resolution"] == pytest.approx(0.005 * GIB)
    assert "weights_bytes" not in figures  # the CPU build prints no weights memory line
    for figure in figures.values():
        assert lines[figure["line_number"] - 1] == figure["line"]
    assert result["first_error"] is None


def test_cpu_llama_fp16_log():
    result = engine_log.parse_engine_log(read("cpu", "llama-3.1-tiny-fp16.log"))
    figures = result["figures"]
    assert result["config"]["dtype"] == "float16" and result["first_error"] is None
    assert figures["kv_cache_tokens"]["value"] == 1048576 and figures["max_concurrency"]["value"] == 2048.0
    assert figures["checkpoint_bytes"]["reported"] == "0.01 GiB"


def test_cpu_worker_killed_by_sigill_after_health():
    result = engine_log.parse_engine_log(read("cpu", "qwen2-tiny-bf16-sigill.log"))
    assert result["started"] is True
    assert "died unexpectedly (exit code: -4)" in result["first_error"]["message"]
    assert result["figures"]["kv_cache_tokens"]["value"] == 524288  # bf16: twice the fp32 figure


def test_failed_start_gives_its_cause():
    result = engine_log.parse_engine_log(read("cpu", "qwen2-tiny-bf16-block16-failed-start.log"))
    assert result["started"] is False
    assert result["first_error"]["message"] == "WorkerProc hit an exception."
    assert result["exception"]["type"] == "ValueError"
    assert result["exception"]["message"] == "No common block size for 16 (CPU_ATTN: [MultipleOf(32)])."


def test_a_journal_with_several_starts_is_read_from_the_last_start():
    failed = read("cpu", "qwen2-tiny-bf16-block16-failed-start.log")
    good = read("cpu", "qwen2-tiny-fp32.log")
    result = engine_log.parse_engine_log(failed + good)
    offset = len(engine_log.split_lines(failed)) - 1  # the failed log ends with a newline: one empty line
    assert result["starts_in_log"] == 2 and result["exception"] is None and result["started"] is True
    assert result["figures"]["kv_cache_tokens"]["value"] == 262144
    assert result["figures"]["kv_cache_tokens"]["line_number"] > offset


def test_v0_wording_and_prefixes_of_docker_compose_and_timestamps():
    text = "\n".join([
        "qwen-1  | INFO 12-02 10:00:00 api_server.py:1 vLLM API server version 0.6.3",
        "qwen-1  | INFO 12-02 10:00:05 model_runner.py:1 Loading model weights took 14.9888 GB",
        "2024-12-02 10:00:06.1 | INFO 12-02 10:00:06 executor_base.py:1 # GPU blocks: 1952, # CPU blocks: 2048",
        "2024-12-02 10:00:06.2 | INFO 12-02 10:00:06 executor_base.py:2 Maximum concurrency for 20000 tokens per "
        "request: 1.56x",
    ])
    result = engine_log.parse_engine_log(text)
    figures = result["figures"]
    assert result["version"] == "0.6.3"
    assert figures["weights_bytes"]["value"] == round(14.9888 * GIB)  # V0's "GB" are GiB
    assert figures["kv_cache_blocks"]["value"] == 1952
    derived = figures["kv_cache_tokens_derived"]
    assert derived["value"] == 31200 and derived["resolution"] == pytest.approx(100)  # 1.56 +- 0.005, x 20000
    assert "kv_cache_tokens" not in figures


def test_odd_input():
    assert engine_log.parse_engine_log("")["figures"] == {}
    assert engine_log.parse_engine_log(None)["version"] is None
    result = engine_log.parse_engine_log(b"INFO [x] GPU KV cache size: 1,024 tokens\r\nprogress 1\rprogress 2\r\n")
    assert result["figures"]["kv_cache_tokens"]["value"] == 1024 and result["lines_read"] == 4
    with pytest.raises(engine_log.EngineLogError, match="must be text"):
        engine_log.parse_engine_log(12)


def test_message_strips_the_prefixes():
    assert engine_log.message("(EngineCore pid=9) ERROR 12-01 17:05:18 [core.py:1512] EngineCore failed.") == \
        "EngineCore failed."
    assert engine_log.message("plain text") == "plain text"


# ----------------------------------------------------------------------------------------------------------------
# /metrics
# ----------------------------------------------------------------------------------------------------------------
def test_metrics_recorded_from_the_cpu_engine():
    result = engine_log.parse_metrics(read("cpu", "qwen2-tiny-fp32.metrics"))
    figures = result["figures"]
    assert figures["kv_cache_tokens"]["value"] == 262144 == 2048 * 128
    assert figures["kv_cache_blocks"]["value"] == 2048 and figures["block_size"]["value"] == 128
    assert figures["max_concurrency"]["value"] == 512.0
    assert figures["prompt_tokens_total"]["value"] == 377 and figures["generation_tokens_total"]["value"] == 380
    assert 'num_gpu_blocks="2048"' in figures["kv_cache_tokens"]["line"]
    ttft = result["histograms"]["time_to_first_token"]
    # 13 first tokens, 12 finished requests: one was aborted by a client timeout after its first token
    assert ttft["count"] == 13 and figures["requests_total"]["value"] == 12
    assert 0 < ttft["p50"] <= ttft["p99"] and ttft["mean"] == pytest.approx(ttft["sum"] / 13, rel=1e-3)
    assert result["vllm_metrics"] > 50


def test_metrics_older_labels_escapes_and_malformed_lines():
    text = "\n".join([
        "# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig",
        'vllm:cache_config_info{block_size="16",num_gpu_blocks="64302",note="a \\"quoted\\" value"} 1.0',
        "vllm:generation_tokens_total{model_name=\"a\"} 10",
        "vllm:generation_tokens_total{model_name=\"b\"} 5 1700000000000",
        "this is not a sample",
        "vllm:gpu_cache_usage_perc NaN",
        'vllm:time_to_first_token_seconds_bucket{le="0.1"} 1',
        'vllm:time_to_first_token_seconds_bucket{le="0.5"} 3',
        'vllm:time_to_first_token_seconds_bucket{le="+Inf"} 4',
        "vllm:time_to_first_token_seconds_count 4",
        "vllm:time_to_first_token_seconds_sum 1.2",
    ])
    result = engine_log.parse_metrics(text)
    figures = result["figures"]
    assert figures["kv_cache_tokens"]["value"] == 64302 * 16
    assert figures["generation_tokens_total"]["value"] == 15
    assert figures["generation_tokens_total"]["line"].count("\n") == 1  # both samples it summed
    ttft = result["histograms"]["time_to_first_token"]
    assert ttft["count"] == 4 and ttft["mean"] == pytest.approx(0.3)
    assert ttft["p50"] == pytest.approx(0.1 + 0.4 * (2 - 1) / 2)
    samples = engine_log.parse_prometheus(text)
    assert samples[0]["labels"]["note"] == 'a "quoted" value'
    assert len(samples) == 9


def test_histogram_quantile_edges():
    assert engine_log.histogram_quantile([], 0.5) is None
    assert engine_log.histogram_quantile([(1.0, 0), (float("inf"), 0)], 0.5) is None
    assert engine_log.histogram_quantile([(1.0, 0), (float("inf"), 2)], 0.5) == 1.0
