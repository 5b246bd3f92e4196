# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""file_kinds: pickled weights and code told apart by name."""

from ansible_collections.llmops.deploy.plugins.module_utils.file_kinds import classify_paths


def test_classify_paths():
    found = classify_paths(["b.py", "model.safetensors", "pytorch_model.bin", "x.PT", "lib/ops.so", "a.pkl",
                            "run.sh", "README.md", "config.json"])
    assert found["pickle_files"] == ["a.pkl", "pytorch_model.bin", "x.PT"]
    assert found["code_files"] == ["b.py", "lib/ops.so", "run.sh"]
