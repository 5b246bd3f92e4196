# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The model_id test plugin: the modules' rule for a ModelScope id."""

import pytest

from ansible_collections.llmops.deploy.plugins.test.model_id import TestModule as ModelIdTests

IS_MODEL_ID = ModelIdTests().tests()["model_id"]


@pytest.mark.parametrize("value", ["Qwen/Qwen2.5-7B-Instruct", "deepseek-ai/DeepSeek-R1", "a/b_c.d-e",
                                   "Shanghai_AI_Laboratory/internlm2_5-7b-chat"])
def test_ids(value):
    assert IS_MODEL_ID(value) is True


@pytest.mark.parametrize("value", ["Qwen", "a/b/c", "../x", "a/..", "a/.b", "/x", "a/", "a b/c", "a/b?c", " a/b",
                                   "a/b ", "", None, 7, ["a/b"], "https://modelscope.cn/models/a/b"])
def test_not_ids(value):
    assert IS_MODEL_ID(value) is False
