"""Run an AnsibleModule's main() in-process and capture exit_json/fail_json (the community.general pattern), and the
file helpers the module tests share."""
import hashlib
import os

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args


class AnsibleExitJson(Exception):
    pass


class AnsibleFailJson(Exception):
    pass


def _exit_json(self, **kwargs):
    kwargs.setdefault("changed", False)
    raise AnsibleExitJson(kwargs)


def _fail_json(self, **kwargs):
    kwargs["failed"] = True
    raise AnsibleFailJson(kwargs)


def run_module(monkeypatch, module, args, check_mode=False):
    """Returns ``(failed, result)``; warnings the module emitted are in ``result['_warnings']``."""
    warnings = []
    monkeypatch.setattr(basic.AnsibleModule, "exit_json", _exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", _fail_json)
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda self, msg: warnings.append(msg))
    if check_mode:
        args = dict(args, _ansible_check_mode=True)
    with patch_module_args(args):
        with pytest.raises((AnsibleExitJson, AnsibleFailJson)) as caught:
            module.main()
    result = caught.value.args[0]
    result["_warnings"] = warnings
    return caught.type is AnsibleFailJson, result


def tree(root):
    """Every path under ``root``, relative to it and sorted (links not followed)."""
    found = []
    for top, dirs, names in os.walk(str(root)):
        found.extend(os.path.relpath(os.path.join(top, n), str(root)) for n in dirs + names)
    return sorted(found)


def write_files(root, files):
    """Write ``files`` (relative path -> bytes) under ``root``; returns their marker entries (path, size, sha256,
    mtime_ns), sorted by path."""
    entries = []
    for rel, data in sorted(files.items()):
        path = os.path.join(str(root), rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data)
        entries.append({"path": rel, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                        "mtime_ns": os.stat(path).st_mtime_ns})
    return entries
