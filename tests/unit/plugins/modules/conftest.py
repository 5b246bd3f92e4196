"""Fixtures the module tests share."""
import os

import pytest

from ansible.module_utils import basic
from ansible_collections.llmops.deploy.plugins.module_utils import gpu_facts

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "gpu", "nvidia-smi")


@pytest.fixture
def nvidia_smi(monkeypatch):
    """Make the module find nvidia-smi and replay a recorded CSV for the exact query argv."""
    calls = []

    def use(fixture_name):
        with open(os.path.join(FIXTURES, fixture_name)) as handle:
            text = handle.read()

        def get_bin_path(self, name, required=False, opt_dirs=None):
            return "/usr/bin/nvidia-smi" if name == "nvidia-smi" else None

        def run_command(self, argv, **kwargs):
            calls.append((argv, kwargs.get("environ_update")))
            assert argv == ["/usr/bin/nvidia-smi"] + gpu_facts.nvidia_smi_argv()
            return 0, text, ""

        monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", get_bin_path)
        monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
        return calls

    return use
