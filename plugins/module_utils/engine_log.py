# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a vLLM engine says about itself: its start-up log lines and its Prometheus ``/metrics`` text -> figures.

Pure functions, standard library only (runs on targets with Python >= 3.8).

Start-up logs of the CPU and GPU builds and of several versions (0.8 to 0.32 were read) word the same facts a little
differently; each figure is matched by its words, not by the file/line tag or the process prefix (``(EngineCore
pid=1)``, ``(Worker_TP0 pid=2)``, a ``docker compose`` or timestamp prefix are all accepted):

* ``Model loading took 27.5916 GiB and 4.05 seconds`` / ``Model loading took 95.63 GiB memory and 595.5 seconds``
  (GPU: the memory the weights took on one GPU); V0's ``Loading model weights took 14.9888 GB`` (V0 divides by 2**30,
  so its "GB" are GiB);
* ``Loading weights took 0.05 seconds`` (time), ``Checkpoint size: 15.30 GiB. Available RAM: 55.52 GiB.``;
* ``Available KV cache memory: 7.77 GiB`` (GPU), ``Explicitly set (1.0/9.59) GiB for KV cache on node 0.`` (CPU);
* ``GPU KV cache size: 94,135 tokens`` / ``CPU KV cache size: 524,288 tokens``, ``# GPU blocks: 1952`` (V0),
  ``cache_config_info with initialization after num_gpu_blocks is: 64302``;
* ``Maximum concurrency for 65,536 tokens per request: 1.44x`` (on its own line or after the KV size);
* the version (the banner's ``version 0.25.1``, ``vLLM API server version 0.9.0.1``, ``Initializing a V1 LLM engine
  (v0.8.5.post1)``), the model, the engine config (``max_seq_len=``, ``tensor_parallel_size=``, ``kv_cache_dtype=``,
  ``device_config=``), ``Starting vLLM server on http://...``;
* the first ``ERROR`` line and the exception that ended the first traceback (a failed start's cause); errors
  printed after a stop began (``[shutdown]``, ``received signal``) are not counted.

A log holding several starts (``journalctl -u UNIT -b``) is cut at each start banner and the last start is read.

Every figure is a dict: ``value`` (bytes, tokens, seconds or a ratio), ``unit``, ``reported`` (the text as the engine
printed it), ``resolution`` (half the last printed digit, in ``unit``: ``0.00 GiB`` means less than 0.005 GiB),
``line`` (the log line, prefix and all) and ``line_number`` (1-based, in the text given).
"""

import math
import re

from ansible_collections.llmops.deploy.plugins.module_utils import engine_memory

GIB = 1024 ** 3
_UNIT_BYTES = {"gib": GIB, "gb": GIB, "mib": 1024 ** 2, "mb": 1024 ** 2, "kib": 1024, "tib": 1024 ** 4}

_NUM = r"([0-9][0-9,]*(?:\.[0-9]+)?)"
_LEVEL_RE = re.compile(r"\b(DEBUG|INFO|WARNING|ERROR|CRITICAL)\b")
_START_RES = (
    re.compile(r"\u2588.*\bversion\s+v?[0-9]"),  # the ASCII-art banner of vllm serve (0.10+)
    re.compile(r"vLLM API server version\s+v?[0-9]"),  # 0.5 - 0.9
)
_VERSION_RES = (
    re.compile(r"\bversion\s+v?([0-9]+\.[0-9]+(?:\.[0-9]+)?[0-9A-Za-z.+\-]*)"),
    re.compile(r"Initializing an? (?:V1 )?LLM engine \(v([0-9][^)\s]*)\)"),
)
_MODEL_LOADING_RE = re.compile(
    r"(?:Model loading took|Loading model weights took)\s+" + _NUM + r"\s*(GiB|GB|MiB|MB)"
    r"(?:\s+memory)?(?:\s+and\s+" + _NUM + r"\s*(?:s|secs?|seconds))?", re.IGNORECASE)
_LOADING_WEIGHTS_RE = re.compile(r"Loading weights took\s+" + _NUM + r"\s*(?:s|secs?|seconds)\b", re.IGNORECASE)
_CHECKPOINT_RE = re.compile(r"Checkpoint size:\s*" + _NUM + r"\s*(GiB|GB|MiB|MB)", re.IGNORECASE)
_AVAILABLE_RAM_RE = re.compile(r"Available RAM:\s*" + _NUM + r"\s*(GiB|GB|MiB|MB)", re.IGNORECASE)
_AVAILABLE_KV_RE = re.compile(r"Available KV cache memory:\s*" + _NUM + r"\s*(GiB|GB|MiB|MB)", re.IGNORECASE)
_EXPLICIT_KV_RE = re.compile(
    r"Explicitly set \(\s*" + _NUM + r"\s*/\s*" + _NUM + r"\s*\)\s*(GiB|GB|MiB|MB)\s+for KV cache", re.IGNORECASE)
_KV_TOKENS_RE = re.compile(r"\b(GPU|CPU|XPU|TPU|HPU|NPU)?\s*KV cache size:\s*" + _NUM + r"\s*tokens", re.IGNORECASE)
_BLOCKS_RE = re.compile(r"#\s*(GPU|CPU) blocks:\s*" + _NUM, re.IGNORECASE)
_NUM_GPU_BLOCKS_RE = re.compile(r"num_gpu_blocks is:\s*" + _NUM)
_CONCURRENCY_RE = re.compile(r"Maximum concurrency for\s+" + _NUM + r"\s+tokens per request:\s*" + _NUM + r"\s*x",
                             re.IGNORECASE)
_INIT_ENGINE_RE = re.compile(r"init engine \(profile, create kv cache, warmup model\) took\s+" + _NUM, re.IGNORECASE)
_SERVER_RE = re.compile(r"Starting vLLM (?:API )?server on\s+(\S+)")
_LOAD_MODEL_RE = re.compile(r"Starting to load model\s+(.+?)(?:\.\.\.)?\s*$")
_BANNER_MODEL_RE = re.compile(r"\u2588\s+model\s+(\S+)")
_CONFIG_RES = {
    "max_model_len": re.compile(r"\bmax_seq_len=([0-9]+)"),
    "tensor_parallel_size": re.compile(r"\btensor_parallel_size=([0-9]+)"),
    "pipeline_parallel_size": re.compile(r"\bpipeline_parallel_size=([0-9]+)"),
    "kv_cache_dtype": re.compile(r"\bkv_cache_dtype=([A-Za-z0-9_]+)"),
    "dtype": re.compile(r"\bdtype=torch\.([A-Za-z0-9_]+)"),
    "quantization": re.compile(r"\bquantization=([A-Za-z0-9_\-]+)"),
    "device": re.compile(r"\bdevice_config=([A-Za-z0-9_]+)"),
}
_SHUTDOWN_RE = re.compile(r"\[shutdown\]|shutdown triggered|received signal|Shutting down FastAPI")
_EXCEPTION_RE = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*\.)*([A-Z][A-Za-z0-9_]*(?:Error|Exception|Exit|Interrupt))"
                           r"(?::\s*(.*))?$")
_PREFIX_RE = re.compile(r"^(?:.*?\|\s*)?(?:\([^)]*pid=[0-9]+\)\s*)?(?:(?:DEBUG|INFO|WARNING|ERROR|CRITICAL)\s+"
                        r"(?:[0-9]{2}-[0-9]{2}\s+[0-9:]{8}\s+)?(?:\[[^\]]*\]\s*)?)?")


class EngineLogError(ValueError):
    """A log that cannot be read (not text)."""


def _number(text):
    return float(text.replace(",", ""))


def _resolution(text):
    """Half the last printed digit: ``0.00`` -> 0.005, ``2.3185`` -> 0.00005, ``1,024`` -> 0.5."""
    text = text.replace(",", "")
    decimals = len(text.split(".", 1)[1]) if "." in text else 0
    return 0.5 * 10 ** -decimals


def _figure(value, unit, reported, line, number, resolution=None):
    return {"value": value, "unit": unit, "reported": reported, "resolution": resolution, "line": line,
            "line_number": number}


def _bytes_figure(num_text, unit_text, line, number, what=None):
    scale = _UNIT_BYTES[unit_text.lower()]
    figure = _figure(int(round(_number(num_text) * scale)), "bytes", "%s %s" % (num_text, unit_text), line, number,
                     _resolution(num_text) * scale)
    if what:
        figure["note"] = what
    return figure


def _count_figure(num_text, unit, line, number, integer=True):
    value = int(_number(num_text)) if integer else _number(num_text)
    return _figure(value, unit, num_text, line, number, _resolution(num_text))


def split_lines(text):
    """Lines of a log given as text (str or bytes, any newline convention; tqdm's carriage returns split too)."""
    if text is None:
        return []
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if not isinstance(text, str):
        raise EngineLogError("an engine log must be text, got %s" % type(text).__name__)
    return [line.rstrip() for line in re.split(r"\r\n|\r|\n", text)]


def start_offsets(lines):
    """Indexes of the lines that begin an engine start (its banner or version line)."""
    return [i for i, line in enumerate(lines) if any(rx.search(line) for rx in _START_RES)]


def message(line):
    """A log line without its process, level, date and source prefixes."""
    return _PREFIX_RE.sub("", line, count=1).strip()


def _first_error(lines, base):
    """(first ERROR line figure, exception that ended the first traceback) or Nones."""
    error = exception = None
    in_traceback = False
    for i, line in enumerate(lines):
        if error is None and _SHUTDOWN_RE.search(line):
            break  # errors printed while a stop (SIGTERM) tears the engine down are not a failure
        level = _LEVEL_RE.search(line[:200])
        if error is None and level and level.group(1) in ("ERROR", "CRITICAL"):
            error = {"line": line, "line_number": base + i + 1, "message": message(line)}
        text = message(line)
        if "Traceback (most recent call last)" in text:
            in_traceback = True
            continue
        if exception is None and (in_traceback or error is not None):
            match = _EXCEPTION_RE.match(text)
            if match and not text.startswith(("File ", "raise ")):
                exception = {"line": line, "line_number": base + i + 1, "type": match.group(1),
                             "message": (match.group(2) or "").strip()}
        if error is not None and exception is not None:
            break
    return error, exception


def parse_engine_log(text):
    """Figures of the last engine start in ``text`` (see the module docstring). Never raises on odd lines."""
    all_lines = split_lines(text)
    starts = start_offsets(all_lines)
    base = starts[-1] if starts else 0
    lines = all_lines[base:]
    figures = {}
    config = {}
    result = {"engine": "vllm", "version": None, "version_line": None, "model": None, "platform": None,
              "server_url": None, "started": False, "starts_in_log": len(starts), "figures": figures,
              "config": config, "first_error": None, "exception": None, "lines_read": len(lines)}

    def keep(name, figure):
        if name not in figures:
            figures[name] = figure

    for i, line in enumerate(lines):
        number = base + i + 1
        if result["version"] is None:
            for rx in _VERSION_RES:
                match = rx.search(line)
                if match and ("\u2588" in line or "API server version" in line or "engine (v" in line):
                    result["version"], result["version_line"] = match.group(1), {"line": line, "line_number": number}
                    break
        match = _BANNER_MODEL_RE.search(line) or _LOAD_MODEL_RE.search(line)
        if match and result["model"] is None:
            result["model"] = match.group(1)
        if "LLM engine (v" in line or "max_seq_len=" in line:
            for key, rx in _CONFIG_RES.items():
                found = rx.search(line)
                if found and key not in config:
                    value = found.group(1)
                    config[key] = int(value) if value.isdigit() else (None if value == "None" else value)
        match = _MODEL_LOADING_RE.search(line)
        if match:
            keep("weights_bytes", _bytes_figure(match.group(1), match.group(2), line, number,
                                                "memory the weights took (per GPU)"))
            if match.group(3):
                keep("model_loading_seconds", _count_figure(match.group(3), "seconds", line, number, integer=False))
        match = _LOADING_WEIGHTS_RE.search(line)
        if match:
            keep("loading_weights_seconds", _count_figure(match.group(1), "seconds", line, number, integer=False))
        match = _CHECKPOINT_RE.search(line)
        if match:
            keep("checkpoint_bytes", _bytes_figure(match.group(1), match.group(2), line, number,
                                                   "size of the checkpoint files"))
            ram = _AVAILABLE_RAM_RE.search(line)
            if ram:
                keep("available_ram_bytes", _bytes_figure(ram.group(1), ram.group(2), line, number))
        match = _AVAILABLE_KV_RE.search(line)
        if match:
            keep("kv_cache_memory_bytes", _bytes_figure(match.group(1), match.group(2), line, number,
                                                        "memory left for the KV cache"))
        match = _EXPLICIT_KV_RE.search(line)
        if match:
            keep("kv_cache_memory_bytes", _bytes_figure(match.group(1), match.group(3), line, number,
                                                        "memory set for the KV cache (VLLM_CPU_KVCACHE_SPACE)"))
            keep("kv_cache_memory_available_bytes", _bytes_figure(match.group(2), match.group(3), line, number))
        match = _KV_TOKENS_RE.search(line)
        if match:
            keep("kv_cache_tokens", _count_figure(match.group(2), "tokens", line, number))
            if match.group(1) and result["platform"] is None:
                result["platform"] = match.group(1).lower()
        match = _BLOCKS_RE.search(line)
        if match and match.group(1).upper() == "GPU":
            keep("kv_cache_blocks", _count_figure(match.group(2), "blocks", line, number))
        match = _NUM_GPU_BLOCKS_RE.search(line)
        if match:
            keep("kv_cache_blocks", _count_figure(match.group(1), "blocks", line, number))
        match = _CONCURRENCY_RE.search(line)
        if match:
            figure = _count_figure(match.group(2), "requests", line, number, integer=False)
            figure["context_length"] = int(_number(match.group(1)))
            keep("max_concurrency", figure)
        match = _INIT_ENGINE_RE.search(line)
        if match:
            keep("init_engine_seconds", _count_figure(match.group(1), "seconds", line, number, integer=False))
        match = _SERVER_RE.search(line)
        if match:
            result["server_url"] = match.group(1).rstrip(".")
            result["started"] = True
        if "Application startup complete" in line:
            result["started"] = True

    if result["platform"] is None and config.get("device") in ("cuda", "cpu", "xpu", "tpu", "hpu"):
        result["platform"] = "gpu" if config["device"] == "cuda" else config["device"]
    if "kv_cache_tokens" not in figures and "kv_cache_blocks" in figures and "max_concurrency" in figures:
        # V0 logs print blocks, not tokens: tokens = concurrency x context, to the concurrency's precision
        conc = figures["max_concurrency"]
        figures["kv_cache_tokens_derived"] = _figure(
            int(round(conc["value"] * conc["context_length"])), "tokens",
            "%s x %d" % (conc["reported"], conc["context_length"]), conc["line"], conc["line_number"],
            conc["resolution"] * conc["context_length"])
    result["first_error"], result["exception"] = _first_error(lines, base)
    # The engine's own budget line (device total, peak activation, non-torch, CUDA graphs) of the same start.
    result["memory_breakdown"] = engine_memory.parse_memory_breakdown("\n".join(lines))
    return result


# ----------------------------------------------------------------------------------------------------------------------
# Prometheus text exposition (vLLM's /metrics)
# ----------------------------------------------------------------------------------------------------------------------
_SAMPLE_RE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{.*\})?\s+(\S+)(?:\s+-?[0-9]+)?\s*$")
_LABEL_RE = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


def _labels(text):
    labels = {}
    if not text:
        return labels
    body = text[1:-1]
    for match in _LABEL_RE.finditer(body):
        labels[match.group(1)] = match.group(2).replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
    return labels


def _float(text):
    try:
        return float(text)
    except ValueError:
        return None


def parse_prometheus(text):
    """Samples of a Prometheus text exposition: ``[{"name", "labels", "value", "line", "line_number"}]``.

    Comment and malformed lines are skipped; values ``NaN``/``+Inf`` are floats.
    """
    samples = []
    for number, line in enumerate(split_lines(text), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _SAMPLE_RE.match(stripped)
        if not match:
            continue
        value = _float(match.group(3))
        if value is None:
            continue
        samples.append({"name": match.group(1), "labels": _labels(match.group(2)), "value": value, "line": line,
                        "line_number": number})
    return samples


def _named(samples, *names):
    return [s for s in samples if s["name"] in names]


def _sum_figure(samples, names, unit, integer=True):
    found = _named(samples, *names)
    if not found:
        return None
    total = sum(s["value"] for s in found)
    value = int(round(total)) if integer else total
    return _figure(value, unit, "%g" % total, "\n".join(s["line"] for s in found), found[0]["line_number"], 0)


def histogram_quantile(buckets, quantile):
    """Quantile of a cumulative histogram ``[(upper bound, count)]`` by linear interpolation inside the bucket
    (what PromQL's ``histogram_quantile`` does); None when it holds no observation."""
    buckets = sorted((bound, count) for bound, count in buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = quantile * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return buckets[-1][0]


def _histogram(samples, base, unit):
    buckets = {}
    for sample in _named(samples, base + "_bucket"):
        bound = _float(sample["labels"].get("le", ""))
        if bound is not None:
            buckets[bound] = buckets.get(bound, 0.0) + sample["value"]
    count = sum(s["value"] for s in _named(samples, base + "_count"))
    total = sum(s["value"] for s in _named(samples, base + "_sum"))
    if not buckets and not count:
        return None
    pairs = sorted(buckets.items())
    return {"count": int(count), "sum": round(total, 6), "mean": round(total / count, 6) if count else None,
            "unit": unit, "p50": histogram_quantile(pairs, 0.5), "p99": histogram_quantile(pairs, 0.99),
            "buckets": len(pairs), "metric": base}


def parse_metrics(text):
    """vLLM's ``/metrics`` -> figures (same shape as the log's) and histograms.

    ``kv_cache_tokens`` is ``vllm:cache_config_info``'s ``kv_cache_size_tokens`` label (0.32), else ``num_gpu_blocks``
    x ``block_size`` (the engine's KV cache in tokens, CPU builds included); ``line`` of a figure from that info metric
    is the sample with only the labels that matter (the real line carries some 40 labels). Token counters are summed
    over every label set (``line`` holds every sample summed); histograms (time to first token,
    end-to-end latency) give count, sum, mean and p50/p99 estimated from the buckets.
    """
    samples = parse_prometheus(text)
    figures = {}
    histograms = {}
    info = _named(samples, "vllm:cache_config_info")
    if info:
        labels, number = info[0]["labels"], info[0]["line_number"]
        wanted = ("num_gpu_blocks", "block_size", "kv_cache_size_tokens", "kv_cache_max_concurrency",
                  "kv_cache_memory_bytes", "cache_dtype")
        line = "vllm:cache_config_info{%s} %g" % (",".join('%s="%s"' % (k, labels[k]) for k in wanted if k in labels),
                                                  info[0]["value"])
        blocks, block_size = labels.get("num_gpu_blocks", ""), labels.get("block_size", "")
        tokens = labels.get("kv_cache_size_tokens", "")
        if tokens.isdigit():
            figures["kv_cache_tokens"] = _figure(int(tokens), "tokens", "kv_cache_size_tokens=%s" % tokens, line,
                                                 number, 0)
        elif blocks.isdigit() and block_size.isdigit():
            figures["kv_cache_tokens"] = _figure(int(blocks) * int(block_size), "tokens",
                                                 "num_gpu_blocks=%s x block_size=%s" % (blocks, block_size),
                                                 line, number, 0)
        if blocks.isdigit():
            figures["kv_cache_blocks"] = _figure(int(blocks), "blocks", blocks, line, number, 0)
        if block_size.isdigit():
            figures["block_size"] = _figure(int(block_size), "tokens", block_size, line, number, 0)
        conc = _float(labels.get("kv_cache_max_concurrency", ""))
        if conc is not None and math.isfinite(conc):
            figures["max_concurrency"] = _figure(conc, "requests", labels["kv_cache_max_concurrency"], line, number,
                                                 0)
        kv_bytes = labels.get("kv_cache_memory_bytes", "")
        if kv_bytes.isdigit():
            figures["kv_cache_memory_bytes"] = _figure(int(kv_bytes), "bytes", kv_bytes, line, number, 0)
    for name, metric in (("prompt_tokens_total", "vllm:prompt_tokens_total"),
                         ("generation_tokens_total", "vllm:generation_tokens_total")):
        figure = _sum_figure(samples, (metric,), "tokens")
        if figure:
            figures[name] = figure
    success = _sum_figure(samples, ("vllm:request_success_total",), "requests")
    if success:
        figures["requests_total"] = success
    for name, base in (("time_to_first_token", "vllm:time_to_first_token_seconds"),
                       ("e2e_request_latency", "vllm:e2e_request_latency_seconds"),
                       ("inter_token_latency", "vllm:inter_token_latency_seconds")):
        hist = _histogram(samples, base, "seconds")
        if hist:
            histograms[name] = hist
    usage = _named(samples, "vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
    if usage:
        figures["kv_cache_usage"] = _figure(usage[0]["value"], "fraction", "%g" % usage[0]["value"],
                                            usage[0]["line"], usage[0]["line_number"], 0)
    return {"figures": figures, "histograms": histograms, "samples": len(samples),
            "vllm_metrics": len([s for s in samples if s["name"].startswith("vllm:")])}
