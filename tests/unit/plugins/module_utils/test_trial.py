# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""trial: comparison rows and their verdicts, request bodies, stream accumulation, request checks, statistics."""
import os

import pytest

from ansible_collections.llmops.deploy.plugins.module_utils import engine_log, trial

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))))
LOGS = os.path.join(REPO_ROOT, "tests", "fixtures", "vllm_logs")
GIB = 1024 ** 3


def figure(value, resolution=0, reported=None, line="the line", context_length=None):
    fig = {"value": value, "unit": "x", "reported": reported or str(value), "resolution": resolution, "line": line,
           "line_number": 7}
    if context_length:
        fig["context_length"] = context_length
    return fig


def rows_by_name(rows):
    return dict((row["figure"], row) for row in rows)


def test_as_expected_within_tolerance_and_ratio_from_the_engines_figure():
    row = trial.compare_one("kv_cache_tokens", 100000, figure(110000, line="GPU KV cache size: 110,000 tokens"))
    assert row["verdict"] == "as expected" and row["ratio"] == 1.1
    assert row["measured_from"] == "GPU KV cache size: 110,000 tokens" and row["measured_line_number"] == 7
    assert "within 15%" in row["summary"]


@pytest.mark.parametrize("name, estimated, measured, words", [
    ("kv_cache_tokens", 100000, 290000, "the engine kept 2.9x more KV-cache tokens than planned"),
    ("kv_cache_tokens", 100000, 40000, "the engine kept 2.5x fewer KV-cache tokens than planned"),
    ("weights_bytes", 10 * GIB, 13 * GIB, "the weights took 1.3x more memory than planned"),
    ("weights_bytes", 10 * GIB, 5 * GIB, "the weights took 2x less memory than planned"),
    ("max_concurrency", 4.0, 10.0, "the engine can hold 2.5x more requests of 8192 tokens at once than planned"),
])
def test_differs_says_the_direction_in_words(name, estimated, measured, words):
    row = trial.compare_one(name, estimated, figure(measured), context_length=8192)
    assert row["verdict"] == "differs" and row["summary"].startswith(words)
    assert row["ratio"] == round(measured / estimated, 4)


def test_tolerance_edges():
    assert trial.compare_one("kv_cache_tokens", 100, figure(115))["verdict"] == "as expected"
    assert trial.compare_one("kv_cache_tokens", 100, figure(116))["verdict"] == "differs"
    assert trial.compare_one("kv_cache_tokens", 100, figure(116), tolerance=0.2)["verdict"] == "as expected"
    assert trial.compare_one("kv_cache_tokens", 100, figure(100), tolerance=0)["verdict"] == "as expected"


def test_a_rounded_figure_cannot_tell_small_weights_apart():
    """The CPU build prints ``Checkpoint size: 0.00 GiB`` for a 4 MB model: as expected, no ratio."""
    zero = figure(0, resolution=0.005 * GIB, reported="0.00 GiB")
    row = trial.compare_one("weights_bytes", 4202752, zero)
    assert row["verdict"] == "as expected" and row["ratio"] is None
    assert "0.00 GiB" in row["summary"] and "rounding" in row["summary"]
    assert row["ratio_range"] == [0.0, round(0.005 * GIB / 4202752, 4)]  # 0 up to 1.28x: cannot tell
    # the same rounding cannot hide a 1 GiB estimate
    assert trial.compare_one("weights_bytes", GIB, zero)["verdict"] == "differs"
    # 0.01 GiB printed for 7.9 MB: within the rounding too, with the range the rounding allows
    row = trial.compare_one("weights_bytes", 7872512, figure(round(0.01 * GIB), 0.005 * GIB, "0.01 GiB"))
    assert row["verdict"] == "as expected" and row["ratio"] is None
    assert row["ratio_range"][0] < 1 < row["ratio_range"][1]


def test_not_measured_and_not_estimated():
    assert trial.compare_one("kv_cache_tokens", 100, None)["verdict"] == "not measured"
    row = trial.compare_one("kv_cache_tokens", None, figure(524288))
    assert row["verdict"] == "not estimated" and "524,288" in row["summary"]


def test_compare_reads_the_published_gpu_log():
    parsed = engine_log.parse_engine_log(open(os.path.join(
        LOGS, "gpu", "production-stack-llama-3.2-1b-v0.9.0.1.log"), encoding="utf-8").read())
    rows = rows_by_name(trial.compare({"weights_bytes": 2471645184, "kv_cache_tokens": 350000,
                                       "context_length": 131072}, parsed["figures"]))
    assert rows["weights_bytes"]["verdict"] == "as expected"
    assert rows["weights_bytes"]["measured_kind"] == "memory the weights took on one device"
    assert rows["kv_cache_tokens"]["ratio"] == round(1028832 / 350000.0, 4)
    assert rows["kv_cache_tokens"]["summary"].startswith("the engine kept 2.9x more KV-cache tokens than planned")
    conc = rows["max_concurrency"]
    assert conc["measured"] == 7.85 and conc["estimated"] == round(350000 / 131072.0, 4)
    assert conc["estimated_from"].startswith("expected.kv_cache_tokens / the engine's context length (131072")


def test_concurrency_estimate_follows_the_engines_context_length():
    figs = {"kv_cache_tokens": figure(524288), "max_concurrency": figure(1024.0, context_length=512)}
    rows = rows_by_name(trial.compare({"kv_cache_tokens": 524288, "max_concurrency": 64, "context_length": 8192},
                                      figs))
    assert rows["max_concurrency"]["estimated"] == 1024.0 and rows["max_concurrency"]["verdict"] == "as expected"
    rows = rows_by_name(trial.compare({"max_concurrency": 1000, "context_length": 512}, figs))
    assert rows["max_concurrency"]["estimated"] == 1000 and rows["max_concurrency"]["ratio"] == 1.024


def test_cpu_weights_come_from_the_checkpoint_line_when_no_memory_line():
    figs = {"checkpoint_bytes": figure(0, 0.005 * GIB, "0.00 GiB", line="Checkpoint size: 0.00 GiB.")}
    row = rows_by_name(trial.compare({"weights_bytes": 4202752}, figs))["weights_bytes"]
    assert row["measured_kind"].startswith("checkpoint size on disk") and row["measured_from"].startswith("Checkpoint")


@pytest.mark.parametrize("bad", [1.0, -0.1, "0.1", True, float("nan")])
def test_tolerance_is_validated(bad):
    with pytest.raises(trial.TrialError, match="tolerance must be a fraction"):
        trial.compare({}, {}, bad)


def test_expected_values_are_validated():
    with pytest.raises(trial.TrialError, match=r"expected.kv_cache_tokens must be a non-negative number"):
        trial.compare({"kv_cache_tokens": "many"}, {})
    with pytest.raises(trial.TrialError, match=r"expected.weights_bytes"):
        trial.compare({"weights_bytes": -1}, {})


def test_merge_prefers_the_log():
    merged = trial.merge_figures({"kv_cache_tokens": figure(1, line="log")},
                                 {"kv_cache_tokens": figure(2, line="metric"), "block_size": figure(16)})
    assert merged["kv_cache_tokens"]["line"] == "log" and merged["block_size"]["value"] == 16


# ----------------------------------------------------------------------------------------------------------------
# Requests
# ----------------------------------------------------------------------------------------------------------------
def test_request_bodies():
    body = trial.request_body("Hi", "completions", "m", 8)
    assert body == {"model": "m", "max_tokens": 8, "stream": True, "stream_options": {"include_usage": True},
                    "prompt": "Hi"}
    assert trial.request_body("Hi", "chat", "m", 8)["messages"] == [{"role": "user", "content": "Hi"}]
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert trial.request_body(messages, "chat", "m", 8)["messages"] == messages
    assert trial.request_body({"messages": messages}, "chat", "m", 8)["messages"] == messages
    assert trial.request_body(messages, "completions", "m", 8)["prompt"] == "Be brief.\nHi"
    assert trial.request_body({"prompt": "P"}, "completions", "m", 8)["prompt"] == "P"
    assert "stream_options" not in trial.request_body("Hi", "chat", "m", 8, stream=False)


@pytest.mark.parametrize("prompts, words", [
    ([], "non-empty list"),
    ("Hi", "non-empty list"),
    ([""], r"prompts\[0\] is empty"),
    (["ok", [{"role": "user"}]], r"prompts\[1\] must be a string"),
    ([{"prompt": 3}], r"prompts\[0\].prompt must be a non-empty string"),
    ([42], r"prompts\[0\] must be a string"),
])
def test_bad_prompts_are_named(prompts, words):
    with pytest.raises(trial.TrialError, match=words):
        trial.check_prompts(prompts)


def test_sse_lines():
    assert trial.parse_sse_line(b'data: {"a": 1}\n') == ("data", {"a": 1})
    assert trial.parse_sse_line("data: [DONE]") == ("done", None)
    assert trial.parse_sse_line(": keep-alive") is None and trial.parse_sse_line("") is None
    assert trial.parse_sse_line("data: {broken")[0] == "bad"


def test_accumulate_completion_stream_as_vllm_sends_it():
    """The chunks vLLM 0.32 sent for a 4-token completion (recorded with curl): an empty first chunk, text chunks,
    a finish chunk, then usage in a chunk without choices."""
    events = [
        (0.05, {"model": "qwen2-tiny", "choices": [{"index": 0, "text": "", "finish_reason": None}]}),
        (0.07, {"model": "qwen2-tiny", "choices": [{"index": 0, "text": "\ufffdansfers", "finish_reason": None}]}),
        (0.08, {"model": "qwen2-tiny", "choices": [{"index": 0, "text": "3", "finish_reason": None}]}),
        (0.09, {"model": "qwen2-tiny", "choices": [{"index": 0, "text": "", "finish_reason": "length"}]}),
        (0.10, {"model": "qwen2-tiny", "choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 4}}),
    ]
    got = trial.accumulate(events, "completions")
    assert got["text"] == "\ufffdansfers3" and got["ttft_s"] == 0.07 and got["finish_reason"] == "length"
    assert got["usage"]["completion_tokens"] == 4 and got["model"] == "qwen2-tiny" and got["chunks"] == 5


def test_accumulate_chat_stream():
    events = [(0.1, {"model": "m", "choices": [{"delta": {"role": "assistant", "content": ""}}]}),
              (0.2, {"model": "m", "choices": [{"delta": {"content": "Hel"}}]}),
              (0.3, {"model": "m", "choices": [{"delta": {"content": "lo"}, "finish_reason": "stop"}]}),
              (0.4, "not a dict")]
    got = trial.accumulate(events, "chat")
    assert got["text"] == "Hello" and got["ttft_s"] == 0.2 and got["finish_reason"] == "stop"
    assert got["chunks"] == 3


def good_result(**changes):
    result = {"status": 200, "model": "m", "text": "some text", "usage": {"prompt_tokens": 5, "completion_tokens": 8},
              "ttft_s": 0.1, "latency_s": 0.5}
    result.update(changes)
    return result


def test_judge_a_good_request():
    result = trial.judge_request(good_result(), "m", 8)
    assert result["ok"] and result["problems"] == [] and result["output_tokens_per_s"] == 16.0
    assert result["time_per_output_token_s"] == round(0.4 / 7, 6)


@pytest.mark.parametrize("changes, problem", [
    ({"status": 500}, "HTTP status 500"),
    ({"model": "other"}, "answered by model 'other', not 'm'"),
    ({"usage": None}, "usage.prompt_tokens is None"),
    ({"usage": {"prompt_tokens": 5, "completion_tokens": 0}}, "usage.completion_tokens is 0"),
    ({"usage": {"prompt_tokens": 5, "completion_tokens": 9}}, "exceeds max_tokens 8"),
    ({"text": ""}, "8 token(s) generated but no text came back"),
    ({"text": "\x00\x00\x00"}, "only NUL characters"),
])
def test_judge_names_each_problem(changes, problem):
    result = trial.judge_request(good_result(**changes), "m", 8)
    assert not result["ok"] and any(problem in p for p in result["problems"]), result["problems"]


def test_summary_statistics():
    results = [dict(ok=True, ttft_s=t, latency_s=t * 4, completion_tokens=10, prompt_tokens=3,
                    output_tokens_per_s=10 / (t * 4)) for t in (0.1, 0.2, 0.3, 0.4)]
    results.append({"ok": False, "ttft_s": 9.0, "latency_s": 9.0})
    summary = trial.summarize(results, 2.0, 2)
    assert summary["requests"] == 5 and summary["succeeded"] == 4 and summary["failed"] == 1
    assert summary["ttft_s"]["p50"] == 0.25 and summary["ttft_s"]["max"] == 0.4 and summary["ttft_s"]["n"] == 4
    assert summary["latency_s"]["p50"] == 1.0 and summary["output_tokens"] == 40
    assert summary["aggregate_output_tokens_per_s"] == 20.0 and summary["prompt_tokens"] == 12
    assert trial.summarize([], 0, 1)["ttft_s"] is None


def test_host_memory_row_only_when_planned_or_measured():
    rows = trial.compare({"weights_bytes": 100}, {})
    assert [r["figure"] for r in rows] == ["weights_bytes", "kv_cache_tokens", "max_concurrency"]
    measured = {"value": 3 * GIB, "unit": "bytes", "reported": "3.00 GiB", "resolution": 0,
                "line": "unit: MainPID 7", "line_number": None}
    rows = trial.compare({"host_memory_bytes": 2 * GIB}, {"host_memory_bytes": measured})
    row = rows[-1]
    assert row["figure"] == "host_memory_bytes" and row["verdict"] == "differs" and row["ratio"] == 1.5
    assert "took 1.5x more host RAM than planned" in row["summary"]
    assert "peak RSS" in row["measured_kind"]
    with pytest.raises(trial.TrialError, match="expected.host_memory_bytes"):
        trial.compare({"host_memory_bytes": -1}, {})
