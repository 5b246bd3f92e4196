"""Run an AnsibleModule's main() in-process and capture exit_json/fail_json (the community.general pattern)."""
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
