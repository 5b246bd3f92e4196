# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The parse_model_id and deployment_scenario filters: thin adapters, errors as AnsibleFilterError."""

import os

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.llmops.deploy.plugins.filter.model_names import FilterModule
from ansible_collections.llmops.deploy.plugins.module_utils.model_names import parse_model_id
from ansible_collections.llmops.deploy.plugins.module_utils.scenarios import SCENARIOS

FILTERS = FilterModule().filters()
FILTER_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "plugins", "filter")


def test_filter_names():
    assert set(FILTERS) == {"parse_model_id", "deployment_scenario"}


def test_parse_model_id_filter_returns_the_parse():
    result = FILTERS["parse_model_id"]("okwinds/DeepSeek-R1-Distill-Qwen-32B-FP8")
    assert result == parse_model_id("okwinds/DeepSeek-R1-Distill-Qwen-32B-FP8")
    assert (result["family"], result["series"], result["distill_base"], result["params"], result["precision"]) == (
        "DeepSeek", "R1", "Qwen", 32 * 10 ** 9, "fp8")


@pytest.mark.parametrize("bad, words", [
    ("DeepSeek-R1", "no owner"),
    ("a/b/c", "more than one '/'"),
    (None, "not a string"),
    ("", "empty"),
])
def test_parse_model_id_filter_errors(bad, words):
    with pytest.raises(AnsibleFilterError) as err:
        FILTERS["parse_model_id"](bad)
    message = str(err.value)
    assert message.startswith("parse_model_id: model: invalid value %r" % (bad,))
    assert "an id 'owner/name' such as deepseek-ai/DeepSeek-R1-Distill-Qwen-32B" in message
    assert words in message


@pytest.mark.parametrize("name, key", [("enterprise", "enterprise"), ("Complex-Tasks", "complex"),
                                       ("scientific", "research"), ("边缘端轻量应用", "edge")])
def test_deployment_scenario_filter(name, key):
    assert FILTERS["deployment_scenario"](name) == SCENARIOS[key]


def test_deployment_scenario_filter_errors():
    with pytest.raises(AnsibleFilterError) as err:
        FILTERS["deployment_scenario"]("edgy")
    message = str(err.value)
    assert message.startswith("deployment_scenario: scenario: invalid value 'edgy'")
    assert "one of edge, enterprise, complex, research" in message


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_every_filter_has_sidecar_documentation(name):
    path = os.path.join(FILTER_DIR, name + ".yml")
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    assert "name: %s\n" % name in text
    for section in ("DOCUMENTATION:", "EXAMPLES:", "RETURN:", "llmops.deploy.%s" % name):
        assert section in text


def test_parse_model_id_doc_lists_every_return_key():
    with open(os.path.join(FILTER_DIR, "parse_model_id.yml"), encoding="utf-8") as handle:
        text = handle.read()
    for key in parse_model_id("deepseek-ai/DeepSeek-OCR"):
        assert "\n      %s:\n" % key in text, key


def test_deployment_scenario_doc_lists_every_return_key():
    with open(os.path.join(FILTER_DIR, "deployment_scenario.yml"), encoding="utf-8") as handle:
        text = handle.read()
    for key in SCENARIOS["edge"]:
        assert "\n      %s:\n" % key in text, key


@pytest.mark.slow
def test_filters_through_ansible(tmp_path):
    """Run both filters inside a real playbook from the checkout (needs ansible-playbook on PATH)."""
    import shutil
    import subprocess

    repo = os.path.abspath(os.path.join(FILTER_DIR, "..", ".."))
    playbook = tmp_path / "filters.yml"
    playbook.write_text(
        "- hosts: localhost\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - ansible.builtin.assert:\n"
        "        that:\n"
        "          - parsed.family == 'DeepSeek'\n"
        "          - parsed.distill_base == 'Qwen'\n"
        "          - parsed.params == 32000000000\n"
        "          - parsed.precision == 'fp8'\n"
        "          - scenario.precisions == ['int8', 'fp8', 'fp16']\n"
        "      vars:\n"
        "        parsed: \"{{ 'okwinds/DeepSeek-R1-Distill-Qwen-32B-FP8' | llmops.deploy.parse_model_id }}\"\n"
        "        scenario: \"{{ 'enterprise' | llmops.deploy.deployment_scenario }}\"\n")
    binary = shutil.which("ansible-playbook") or os.path.join(repo, ".venv", "bin", "ansible-playbook")
    done = subprocess.run([binary, "-i", "localhost,", "-c", "local", str(playbook)], cwd=repo,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    assert done.returncode == 0, done.stdout
    assert "failed=0" in done.stdout
