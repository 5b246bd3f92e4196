"""vllm_args module: arguments from a plan and a model directory, check mode without the engine, clear failures."""
import json
import os
import shutil

from ansible_collections.llmops.deploy.plugins.module_utils import capacity, sizing
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
    assert result["parser_check"] == {"checked": False, "version": None, "parsed": {}, "reason": "no venv_python given"}
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
