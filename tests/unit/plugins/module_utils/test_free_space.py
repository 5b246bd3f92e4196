# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""free_space: the free_space_margin option and the check that refuses a download the disk cannot hold."""

import pytest

from ansible_collections.llmops.deploy.plugins.module_utils import free_space as fs


class FakeStatvfs(object):
    def __init__(self, avail_bytes, frsize=4096):
        self.f_bavail = avail_bytes // frsize
        self.f_frsize = frsize


@pytest.mark.parametrize("spec, to_fetch, expected", [
    ("5%", 1000, 50), ("0", 1000, 0), ("0%", 1000, 0), ("1GiB", 5, 2 ** 30), ("500MB", 5, 500 * 10 ** 6),
    ("2k", 1, 2000), ("1.5G", 0, 1500000000), (" 10 % ", 100, 10), ("100", 1, 100),
])
def test_margin_bytes(spec, to_fetch, expected):
    assert fs.margin_bytes(spec, to_fetch) == expected


@pytest.mark.parametrize("spec", ["abc", "5 apples", "-5%", "%", "1XB", "1e9"])
def test_margin_bytes_refused(spec):
    with pytest.raises(fs.VerifyError, match="free_space_margin .* is not valid: expected a percentage"):
        fs.margin_bytes(spec, 1)


def test_check_free_space_refuses_and_explains(tmp_path):
    with pytest.raises(fs.VerifyError) as info:
        fs.check_free_space(str(tmp_path / "a" / "b"), 1000, "10%", statvfs=lambda p: FakeStatvfs(1096, 1))
    msg = info.value.message
    assert str(tmp_path) in msg and "1000 bytes to fetch" in msg and "1100" in msg and "1096 are available" in msg


def test_check_free_space_accepts_and_counts_freed_bytes(tmp_path):
    seen = []

    def statvfs(path):
        seen.append(path)
        return FakeStatvfs(1100, 1)
    res = fs.check_free_space(str(tmp_path / "x" / "y"), 1000, "10%", statvfs=statvfs)
    assert res == {"path": str(tmp_path), "available": 1100, "required": 1100, "margin": 100}
    assert seen == [str(tmp_path)]   # the nearest existing ancestor
    fs.check_free_space(str(tmp_path), 1000, "10%", freed=200, statvfs=lambda p: FakeStatvfs(900, 1))


def test_nothing_to_fetch_needs_no_space(tmp_path):
    assert fs.check_free_space(str(tmp_path), 0, "1GiB", statvfs=lambda p: FakeStatvfs(0, 1))["required"] == 0
