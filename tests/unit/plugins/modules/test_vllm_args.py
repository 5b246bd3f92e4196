"""vllm_args module: arguments from a plan and a model directory, check mode without the engine, clear failures."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from ansible_collections.llmops.deploy.plugins.module_utils import capacity, engine_args, sizing
from ansible_collections.llmops.deploy.plugins.modules import vllm_args

from .module_runner import run_module

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "configs")


def model_dir(tmp_path, name="qwen2-tiny-2m"):
    target = tmp_path / "models" / "llmops-test" / "Qwen2-tiny-2M"
    target.mkdir(parents=True)
    shutil.copy(os.path.join(CONFIGS, name + ".json"), str(target / "config.json"))
    return str(target)


def cpu_plan(path):
    with open(os.path.join(path, "config.json")) as handle:
        config = json.load(handle)
    sized = sizing.size_model(method="detailed", config=config, context_length=512, concurrency=4)
    plan = capacity.assess(sized, {"gpus": [], "memory_total_mib": 24000, "cpu_cores": 2, "disk_free_mib": 100000},
                           target="cpu")
    plan.update(sizing=sized, target="cpu")
    return plan


def test_reads_the_models_config_and_returns_argv_sources_and_expected(monkeypatch, tmp_path):
    path = model_dir(tmp_path)
    failed, result = run_module(monkeypatch, vllm_args, {"plan": cpu_plan(path), "model_path": path,
                                                         "served_model_name": "llmops-test/Qwen2-tiny-2M",
                                                         "port": 18000})
    assert not failed, result.get("msg")
    assert result["changed"] is False
    assert result["argv"][0] == path
    assert result["argv"][result["argv"].index("--port") + 1] == "18000"
    assert result["env"] == {"VLLM_CPU_KVCACHE_SPACE": "1"}
    assert result["expected"]["kv_cache_tokens"] == 524288
    assert result["parser_check"] == {"checked": False, "version": None, "parsed": {}, "reused": False, "record": None,
                                      "reason": "no venv_python given"}
    assert {a["source"] for a in result["args"]} <= {"plan", "override", "default", "engine"}


def test_check_mode_without_the_engine_says_the_parser_did_not_run(monkeypatch, tmp_path):
    path = model_dir(tmp_path)
    missing = str(tmp_path / "vllm" / "bin" / "python")
    failed, result = run_module(monkeypatch, vllm_args, {"plan": cpu_plan(path), "model_path": path,
                                                         "served_model_name": "tiny", "venv_python": missing},
                                check_mode=True)
    assert not failed
    assert result["parser_check"]["checked"] is False and "does not exist yet" in result["parser_check"]["reason"]


def test_a_missing_engine_fails_outside_check_mode(monkeypatch, tmp_path):
    path = model_dir(tmp_path)
    failed, result = run_module(monkeypatch, vllm_args, {"plan": cpu_plan(path), "model_path": path,
                                                         "served_model_name": "tiny",
                                                         "venv_python": str(tmp_path / "nope" / "python")})
    assert failed and result["field"] == "venv_python"


def test_a_missing_model_directory_names_the_field(monkeypatch, tmp_path):
    path = model_dir(tmp_path)
    failed, result = run_module(monkeypatch, vllm_args, {"plan": cpu_plan(path), "model_path": str(tmp_path / "x"),
                                                         "served_model_name": "tiny"})
    assert failed and result["field"] == "config_path"


def test_api_key_in_extra_args_is_refused_without_echoing_it(monkeypatch, tmp_path):
    path = model_dir(tmp_path)
    failed, result = run_module(monkeypatch, vllm_args, {"plan": cpu_plan(path), "model_path": path,
                                                         "served_model_name": "tiny",
                                                         "extra_args": ["--api-key=s3cret-value"]})
    assert failed and result["field"] == "extra_args"
    assert "s3cret-value" not in json.dumps(result)


# ---------------------------------------------------------------------------------------------------------------
# The parser record: an earlier check of the same argv by the same engine is reused. The "engine" here is package
# metadata only (a vllm dist-info on the interpreter's path, no vllm package): reading the fingerprint works, and
# running the parser fails ("cannot load vLLM's argument parser"), so a module run that succeeds did not run it.
# ---------------------------------------------------------------------------------------------------------------
def metadata_only_engine(tmp_path, record_text="vllm/__init__.py,sha256=abc,10\n"):
    site = tmp_path / "site"
    info = site / "vllm-9.9.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: vllm\nVersion: 9.9.0\n")
    (info / "RECORD").write_text(record_text)
    python = tmp_path / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True, exist_ok=True)
    python.write_text('#!/bin/sh\nPYTHONPATH="%s" exec "%s" "$@"\n' % (site, sys.executable))
    python.chmod(0o755)
    return str(python)


def run_with_record(monkeypatch, tmp_path, path, record, **extra):
    record_path = tmp_path / "parser.json"
    if record is not None:
        record_path.write_text(json.dumps(record))
    args = {"plan": cpu_plan(path), "model_path": path, "served_model_name": "tiny", "port": 18000,
            "venv_python": str(tmp_path / "venv" / "bin" / "python"), "parser_record": str(record_path)}
    args.update(extra)
    return run_module(monkeypatch, vllm_args, args)


def first_record(monkeypatch, tmp_path, path):
    """The record a run that checked would keep: the derived argv, this engine's fingerprint, the parsed values."""
    failed, result = run_module(monkeypatch, vllm_args, {"plan": cpu_plan(path), "model_path": path,
                                                         "served_model_name": "tiny", "port": 18000})
    assert not failed, result.get("msg")
    engine = engine_args.read_engine_fingerprint(subprocess.run(
        [metadata_only_engine(tmp_path), "-c", engine_args.ENGINE_FINGERPRINT_SCRIPT], stdout=subprocess.PIPE,
        universal_newlines=True, check=True).stdout)
    parsed = dict((a["name"], a["value"]) for a in result["args"]
                  if a["name"] in engine_args.parser_dests(result["args"]))
    return engine_args.parser_record(result["argv"], engine, {"version": "9.9.0", "parsed": parsed})


def test_a_record_of_the_same_argv_and_engine_is_reused_without_running_the_parser(monkeypatch, tmp_path):
    path = model_dir(tmp_path)
    record = first_record(monkeypatch, tmp_path, path)
    assert record["engine"]["distributions"] == {"vllm": ["9.9.0", record["engine"]["distributions"]["vllm"][1]]}
    failed, result = run_with_record(monkeypatch, tmp_path, path, record)
    assert not failed, result.get("msg")
    check = result["parser_check"]
    assert (check["checked"], check["reused"], check["version"]) == (True, True, "9.9.0")
    assert check["parsed"] == record["parsed"] and check["record"] == record


@pytest.mark.parametrize("change", ["argv", "engine", "parsed", "missing", "not json"])
def test_a_different_or_unreadable_record_runs_the_parser(monkeypatch, tmp_path, change):
    path = model_dir(tmp_path)
    record = first_record(monkeypatch, tmp_path, path)
    if change == "argv":
        record["argv"] = record["argv"] + ["--enable-prefix-caching"]
    elif change == "engine":
        record["engine"]["distributions"]["vllm"][0] = "9.8.0"
    elif change == "parsed":  # a value vLLM read differently from what is derived now
        record["parsed"]["port"] = 18001
    elif change == "missing":
        record = None
    if change == "not json":
        (tmp_path / "parser.json").write_text("{not json")
        record = None
    failed, result = run_with_record(monkeypatch, tmp_path, path, record)
    assert failed and "cannot load vLLM's argument parser" in result["msg"], result.get("msg")


def test_an_engine_reinstalled_with_other_files_runs_the_parser(monkeypatch, tmp_path):
    path = model_dir(tmp_path)
    record = first_record(monkeypatch, tmp_path, path)
    metadata_only_engine(tmp_path, record_text="vllm/__init__.py,sha256=def,11\n")
    failed, result = run_with_record(monkeypatch, tmp_path, path, record)
    assert failed and "cannot load vLLM's argument parser" in result["msg"], result.get("msg")


def test_without_parser_record_the_parser_runs_every_time(monkeypatch, tmp_path):
    path = model_dir(tmp_path)
    record = first_record(monkeypatch, tmp_path, path)
    (tmp_path / "parser.json").write_text(json.dumps(record))
    failed, result = run_module(monkeypatch, vllm_args, {"plan": cpu_plan(path), "model_path": path,
                                                         "served_model_name": "tiny", "port": 18000,
                                                         "venv_python": metadata_only_engine(tmp_path)})
    assert failed and "cannot load vLLM's argument parser" in result["msg"], result.get("msg")
