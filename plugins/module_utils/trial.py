# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A trial inference, judged: OpenAI-compatible streaming replies -> per-request results, latency statistics, and the
engine's own figures set beside the plan's estimate.

Pure functions, standard library only (runs on targets with Python >= 3.8). The HTTP itself is the module's
(plugins/modules/inference_check.py); this file turns what came back into results and verdicts.

Comparison rows (:func:`compare`): weights, KV-cache tokens, maximum concurrency, and the engine's host RAM when it
was planned or measured (CPU engines: the process tree's peak RSS against weights + KV-cache space + runtime). Each has the estimate, the engine's
figure (with the log line or metric it came from), ``ratio`` = measured / estimated and a verdict:

* ``as expected`` when the figures differ by at most ``tolerance`` x estimate (default 0.15), or by less than the
  rounding of the engine's printed figure (``Checkpoint size: 0.00 GiB`` cannot tell 4 MB from 0);
* ``differs`` otherwise, with the direction in plain words ("the engine kept 2.9x more KV-cache tokens than planned");
* ``not measured`` (the engine did not report it) or ``not estimated`` (no estimate was given).
"""

import json
import math

DEFAULT_TOLERANCE = 0.15
GIB = 1024 ** 3

#: figure -> (label, unit, how the engine's side is worded: "more"/"fewer" sentence pieces)
ROWS = (
    ("weights_bytes", "weights", "bytes"),
    ("kv_cache_tokens", "KV-cache tokens", "tokens"),
    ("max_concurrency", "maximum concurrency", "requests"),
    ("host_memory_bytes", "engine host RAM (process tree peak RSS)", "bytes"),
)

_MORE = {
    "weights_bytes": "the weights took {r} more memory than planned",
    "kv_cache_tokens": "the engine kept {r} more KV-cache tokens than planned",
    "max_concurrency": "the engine can hold {r} more requests of {ctx} tokens at once than planned",
    "host_memory_bytes": "the engine's processes took {r} more host RAM than planned",
}
_FEWER = {
    "weights_bytes": "the weights took {r} less memory than planned",
    "kv_cache_tokens": "the engine kept {r} fewer KV-cache tokens than planned",
    "max_concurrency": "the engine can hold {r} fewer requests of {ctx} tokens at once than planned",
    "host_memory_bytes": "the engine's processes took {r} less host RAM than planned",
}


class TrialError(ValueError):
    """Bad input to the trial functions (names the field and what is accepted)."""


def check_tolerance(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not (
            0 <= value < 1):
        raise TrialError("tolerance must be a fraction from 0 up to (not including) 1, such as 0.15; got %r" % (value,))
    return float(value)


def _factor(ratio):
    """``2.9x`` for ratios above 1, ``2.5x`` (its inverse) for ratios below 1."""
    value = ratio if ratio >= 1 else 1.0 / ratio
    return "%.2gx" % value if value < 10 else "%.0fx" % value


def _human(value, unit):
    if value is None:
        return "n/a"
    if unit == "bytes":
        return "%.4g GiB" % (value / float(GIB))
    if unit == "tokens":
        return "{:,}".format(int(value))
    return "%.4g" % value


def compare_one(name, estimated, measured, tolerance=DEFAULT_TOLERANCE, context_length=None):
    """One comparison row. ``estimated``: a number or None. ``measured``: a figure dict from engine_log or None."""
    label, unit = dict((n, (lab, u)) for n, lab, u in ROWS)[name]
    row = {"figure": name, "label": label, "unit": unit, "estimated": estimated,
           "measured": measured["value"] if measured else None, "ratio": None, "tolerance": tolerance,
           "measured_from": measured["line"] if measured else None,
           "measured_reported": measured["reported"] if measured else None,
           "measured_line_number": measured.get("line_number") if measured else None}
    if context_length:
        row["context_length"] = context_length
    if measured is None:
        row.update(verdict="not measured", summary="the engine did not report its %s" % label)
        return row
    if estimated is None:
        row.update(verdict="not estimated", summary="no estimate of the %s was given; the engine reports %s" % (
            label, _human(measured["value"], unit)))
        return row
    value = measured["value"]
    resolution = measured.get("resolution") or 0
    if estimated > 0:
        row["ratio"] = round(value / float(estimated), 4) if value else 0.0
    gap = abs(value - estimated)
    within_rounding = resolution and gap <= resolution
    if estimated > 0 and value and gap <= tolerance * estimated:
        row.update(verdict="as expected", summary="the engine's %s figure is within %d%% of the plan (%.2fx)" % (
            label, round(tolerance * 100), value / float(estimated)))
    elif within_rounding:
        row["ratio"] = None
        if estimated > 0:
            row["ratio_range"] = [round(max(value - resolution, 0) / float(estimated), 4),
                                  round((value + resolution) / float(estimated), 4)]
        row.update(verdict="as expected", summary=(
            "the engine prints %s (rounded); the plan's %s is within that rounding, so the ratio cannot be told"
            % (measured["reported"], _human(estimated, unit))))
    elif estimated <= 0 or not value:
        row.update(verdict="differs", summary="the plan says %s, the engine %s" % (
            _human(estimated, unit), _human(value, unit)))
    else:
        ratio = value / float(estimated)
        words = (_MORE if ratio > 1 else _FEWER)[name]
        row.update(verdict="differs", summary=words.format(r=_factor(ratio), ctx=context_length or "?") + (
            " (%s against %s planned)" % (_human(value, unit), _human(estimated, unit))))
    return row


def compare(expected, engine_figures, tolerance=DEFAULT_TOLERANCE):
    """Rows for weights, KV-cache tokens and maximum concurrency (and host RAM, when planned or measured).

    ``expected``: dict with any of ``weights_bytes``, ``kv_cache_tokens``, ``max_concurrency``, ``context_length``,
    ``host_memory_bytes``.
    ``engine_figures``: the ``figures`` of engine_log.parse_engine_log, optionally merged with those of
    parse_metrics (the log's are preferred; metrics fill the gaps).

    The engine reports its concurrency for its own ``--max-model-len``. When the plan's ``context_length`` differs,
    or no concurrency was planned, the estimate used is the planned KV tokens / the engine's context length (said in
    ``estimated_from``).
    """
    tolerance = check_tolerance(tolerance)
    expected = dict(expected or {})
    for key in ("weights_bytes", "kv_cache_tokens", "max_concurrency", "context_length", "host_memory_bytes"):
        value = expected.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or value < 0):
            raise TrialError("expected.%s must be a non-negative number, got %r" % (key, value))
    figs = engine_figures or {}
    weights = figs.get("weights_bytes") or figs.get("checkpoint_bytes")
    kv_tokens = figs.get("kv_cache_tokens") or figs.get("kv_cache_tokens_derived")
    conc = figs.get("max_concurrency")
    rows = []
    row = compare_one("weights_bytes", expected.get("weights_bytes"), weights, tolerance)
    if weights is not None and "weights_bytes" not in figs:
        row["measured_kind"] = "checkpoint size on disk (this engine prints no weights memory line)"
    elif weights is not None:
        row["measured_kind"] = "memory the weights took on one device"
    row["estimated_from"] = "expected.weights_bytes"
    rows.append(row)
    row = compare_one("kv_cache_tokens", expected.get("kv_cache_tokens"), kv_tokens, tolerance)
    row["estimated_from"] = "expected.kv_cache_tokens"
    rows.append(row)
    engine_ctx = conc.get("context_length") if conc else None
    planned_ctx = expected.get("context_length")
    est_conc, source = expected.get("max_concurrency"), "expected.max_concurrency"
    if engine_ctx and expected.get("kv_cache_tokens") and (est_conc is None or (
            planned_ctx and int(planned_ctx) != int(engine_ctx))):
        est_conc = expected["kv_cache_tokens"] / float(engine_ctx)
        source = "expected.kv_cache_tokens / the engine's context length (%d tokens)" % engine_ctx
    row = compare_one("max_concurrency", round(est_conc, 4) if est_conc is not None else None, conc, tolerance,
                      context_length=engine_ctx or planned_ctx)
    row["estimated_from"] = source
    rows.append(row)
    host = figs.get("host_memory_bytes")
    if host is not None or expected.get("host_memory_bytes") is not None:
        # CPU engines: host RAM is where weights, KV cache and runtime live (the plan's cpu_plan).
        row = compare_one("host_memory_bytes", expected.get("host_memory_bytes"), host, tolerance)
        row["estimated_from"] = "expected.host_memory_bytes"
        if host is not None:
            row["measured_kind"] = "sum of the peak RSS (VmHWM) of the unit's process tree, read after the trial"
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------------------------------------------------
# Requests and their statistics
# ----------------------------------------------------------------------------------------------------------------------
def request_body(prompt, endpoint, model, max_tokens, stream=True):
    """The JSON body of one request. ``prompt``: a string (completion) or a list of chat messages / a dict with
    ``messages``; a string sent to the chat endpoint becomes one user message."""
    body = {"model": model, "max_tokens": max_tokens, "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    if endpoint == "chat":
        if isinstance(prompt, dict) and "messages" in prompt:
            messages = prompt["messages"]
        elif isinstance(prompt, list):
            messages = prompt
        else:
            messages = [{"role": "user", "content": str(prompt)}]
        body["messages"] = messages
    else:
        if isinstance(prompt, dict) and "prompt" in prompt:
            body["prompt"] = prompt["prompt"]
        elif isinstance(prompt, (list, dict)):
            # chat messages sent to the completions endpoint: their contents, one per line
            messages = prompt["messages"] if isinstance(prompt, dict) else prompt
            body["prompt"] = "\n".join(str(m.get("content", "")) if isinstance(m, dict) else str(m)
                                       for m in messages)
        else:
            body["prompt"] = str(prompt)
    return body


def check_prompts(prompts):
    """Validate the prompts option: strings, lists of {role, content} messages, or dicts with prompt/messages."""
    if not isinstance(prompts, list) or not prompts:
        raise TrialError("prompts must be a non-empty list of strings or chat message lists")
    for i, prompt in enumerate(prompts):
        if isinstance(prompt, str):
            if not prompt:
                raise TrialError("prompts[%d] is empty" % i)
            continue
        messages = prompt.get("messages") if isinstance(prompt, dict) and "prompt" not in prompt else prompt
        if isinstance(prompt, dict) and "prompt" in prompt:
            if not isinstance(prompt["prompt"], str) or not prompt["prompt"]:
                raise TrialError("prompts[%d].prompt must be a non-empty string" % i)
            continue
        if not isinstance(messages, list) or not messages or not all(
                isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                for m in messages):
            raise TrialError("prompts[%d] must be a string, a list of {role, content} messages, or a dict with "
                             "'prompt' (string) or 'messages' (that list)" % i)
    return prompts


def parse_sse_line(line):
    """One line of an event stream -> ``("data", obj)``, ``("done", None)`` or None (comments, blank, other)."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", "replace")
    line = line.strip()
    if not line.startswith("data:"):
        return None
    payload = line[5:].strip()
    if payload == "[DONE]":
        return ("done", None)
    try:
        return ("data", json.loads(payload))
    except ValueError:
        return ("bad", payload[:200])


def accumulate(events, endpoint):
    """Timed stream events ``[(seconds since the request was sent, obj)]`` -> text, first-token time, usage, model,
    finish reason. A chunk counts as the first token when it carries text (or a token) for the first time."""
    text, ttft, usage, model, finish, chunks = [], None, None, None, None, 0
    for at, obj in events:
        if not isinstance(obj, dict):
            continue
        chunks += 1
        model = obj.get("model") or model
        if obj.get("usage"):
            usage = obj["usage"]
        for choice in obj.get("choices") or []:
            piece = None
            if endpoint == "chat":
                delta = choice.get("delta") or choice.get("message") or {}
                piece = delta.get("content")
                if piece is None:
                    piece = delta.get("reasoning_content") or delta.get("reasoning")
            else:
                piece = choice.get("text")
            if piece:
                text.append(piece)
                if ttft is None:
                    ttft = at
            elif ttft is None and choice.get("finish_reason") and piece == "":
                ttft = at  # a token that decodes to nothing still ended the first step
            if choice.get("finish_reason"):
                finish = choice["finish_reason"]
    return {"text": "".join(text), "ttft_s": ttft, "usage": usage, "model": model, "finish_reason": finish,
            "chunks": chunks}


def judge_request(result, model, max_tokens):
    """Checks on one finished request: status 200, the served model's name, usage token counts. Adds
    ``problems`` (list of plain sentences) and ``ok``."""
    problems = []
    if result.get("status") != 200:
        problems.append("HTTP status %s" % result.get("status"))
    if result.get("model") and result.get("model") != model:
        problems.append("answered by model %r, not %r" % (result.get("model"), model))
    usage = result.get("usage") or {}
    prompt_tokens, completion_tokens = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if result.get("status") == 200:
        if not isinstance(prompt_tokens, int) or prompt_tokens <= 0:
            problems.append("usage.prompt_tokens is %r, not a positive count" % (prompt_tokens,))
        if not isinstance(completion_tokens, int) or completion_tokens <= 0:
            problems.append("usage.completion_tokens is %r, not a positive count" % (completion_tokens,))
        elif completion_tokens > max_tokens:
            problems.append("usage.completion_tokens %d exceeds max_tokens %d" % (completion_tokens, max_tokens))
        if not result.get("text") and completion_tokens:
            problems.append("%s token(s) generated but no text came back" % completion_tokens)
        elif result.get("text") and not result["text"].strip("\x00"):
            problems.append("the answer is only NUL characters (broken weights?)")
    result["prompt_tokens"] = prompt_tokens
    result["completion_tokens"] = completion_tokens
    if result.get("latency_s") and completion_tokens:
        result["output_tokens_per_s"] = round(completion_tokens / result["latency_s"], 3)
        if result.get("ttft_s") is not None and completion_tokens > 1 and result["latency_s"] > result["ttft_s"]:
            result["time_per_output_token_s"] = round(
                (result["latency_s"] - result["ttft_s"]) / (completion_tokens - 1), 6)
    result["problems"] = problems
    result["ok"] = not problems
    return result


def _median(values):
    values = sorted(values)
    n = len(values)
    if not n:
        return None
    mid = n // 2
    return values[mid] if n % 2 else (values[mid - 1] + values[mid]) / 2.0


def _stats(values, digits=4):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"p50": round(_median(values), digits), "max": round(max(values), digits),
            "min": round(min(values), digits), "mean": round(sum(values) / len(values), digits), "n": len(values)}


def summarize(results, wall_s, concurrency):
    """Latency statistics over the requests (TTFT, total latency, output tokens/s per request: p50/min/max/mean)
    and the aggregate output tokens per second over the wall time of the whole trial."""
    good = [r for r in results if r.get("ok")]
    out_tokens = sum(r.get("completion_tokens") or 0 for r in good)
    return {
        "requests": len(results), "succeeded": len(good), "failed": len(results) - len(good),
        "concurrency": concurrency, "wall_s": round(wall_s, 4),
        "prompt_tokens": sum(r.get("prompt_tokens") or 0 for r in good), "output_tokens": out_tokens,
        "ttft_s": _stats([r.get("ttft_s") for r in good]),
        "latency_s": _stats([r.get("latency_s") for r in good]),
        "output_tokens_per_s": _stats([r.get("output_tokens_per_s") for r in good], 3),
        "aggregate_output_tokens_per_s": round(out_tokens / wall_s, 3) if wall_s > 0 else None,
    }


def merge_figures(log_figures, metrics_figures):
    """The log's figures, with the metrics' filling what the log lacks (each keeps its own source line)."""
    merged = dict(metrics_figures or {})
    merged.update(log_figures or {})
    return merged
