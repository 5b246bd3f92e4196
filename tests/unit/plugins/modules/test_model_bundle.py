# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""model_bundle as a task runs it (main() in-process): the common file arguments it cannot apply through descriptors
(SELinux, attributes) are refused before anything is written, in both states."""
import os

import pytest

from ansible_collections.llmops.deploy.plugins.module_utils.marker import build_marker, write_marker
from ansible_collections.llmops.deploy.plugins.modules import model_bundle

from .module_runner import run_module, tree, write_files

FILES = {"config.json": b'{"a": 1}', "sub/model.safetensors": b"W" * 5000}


def complete_model(model_dir):
    """A model directory holding FILES under a valid completion marker, as a finished download leaves it."""
    write_marker(model_dir, build_marker("o/m", "master", "abc123", "http://hub.invalid", [], [],
                                         write_files(model_dir, FILES), "0.1.0"))


@pytest.mark.parametrize("state, unsupported, named", [
    ("import", {"setype": "httpd_sys_content_t"}, "setype is"),
    ("import", {"seuser": "system_u", "attr": "+i"}, "seuser and attributes are"),
    ("export", {"selevel": "s0"}, "selevel is"),
])
def test_an_unsupported_file_argument_is_refused_and_nothing_is_written(monkeypatch, tmp_path, state, unsupported,
                                                                        named):
    source, media, target = str(tmp_path / "src" / "m"), tmp_path / "usb", tmp_path / "dst" / "m"
    complete_model(source)
    media.mkdir()
    prefix = str(media / "m")
    if state == "import":
        failed, result = run_module(monkeypatch, model_bundle, dict(state="export", path=source, bundle=prefix))
        assert not failed and result["changed"], result
    args = dict(state=state, path=source if state == "export" else str(target), bundle=prefix, mode="0640",
                dir_mode="0750")
    before = tree(tmp_path)
    failed, result = run_module(monkeypatch, model_bundle, dict(args, **unsupported))
    assert failed and result["msg"].startswith("%s not supported by model_bundle: it sets only owner, group and "
                                               "mode (and dir_mode)" % named), result["msg"]
    assert tree(tmp_path) == before and not result["changed"]
    # the control: the same task without the unsupported argument writes the bundle, or the imported directory
    failed, result = run_module(monkeypatch, model_bundle, args)
    assert not failed and result["changed"], result
    if state == "import":
        assert oct(os.stat(str(target / "sub" / "model.safetensors")).st_mode & 0o777) == "0o640"
        assert oct(os.stat(str(target / "sub")).st_mode & 0o777) == "0o750"
    else:
        assert sorted(os.listdir(str(media))) == ["m.json", "m.tar"]


@pytest.mark.parametrize("workers", [1, 3])
def test_workers_export_and_import_the_same_verified_files(monkeypatch, tmp_path, workers):
    source, media, target = str(tmp_path / "src" / "m"), tmp_path / "usb", tmp_path / "dst" / "m"
    complete_model(source)
    media.mkdir()
    prefix = str(media / "m")
    failed, result = run_module(monkeypatch, model_bundle, dict(state="export", path=source, bundle=prefix,
                                                                workers=workers))
    assert not failed and result["changed"], result
    failed, result = run_module(monkeypatch, model_bundle, dict(state="import", path=str(target), bundle=prefix,
                                                                workers=workers))
    assert not failed and result["changed"], result
    for rel, data in FILES.items():
        assert (target / rel).read_bytes() == data


def test_workers_below_one_is_refused_before_anything_is_written(monkeypatch, tmp_path):
    source = str(tmp_path / "src" / "m")
    complete_model(source)
    (tmp_path / "usb").mkdir()
    before = tree(tmp_path)
    failed, result = run_module(monkeypatch, model_bundle, dict(state="export", path=source,
                                                                bundle=str(tmp_path / "usb" / "m"), workers=0))
    assert failed and result["msg"] == "workers 0 is not valid: expected an integer >= 1 (1: one file at a time)"
    assert tree(tmp_path) == before
