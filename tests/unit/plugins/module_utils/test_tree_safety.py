# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tree_safety: what a model directory must not hold before a download, the private staging directory, link-free
walks, moves and attributes that never follow a link."""

import os
import stat

import pytest

from ansible_collections.llmops.deploy.plugins.module_utils import tree_safety as ts


def test_staging_is_beside_the_real_directory(tmp_path):
    real = tmp_path / "disk" / "model"
    real.mkdir(parents=True)
    os.symlink(str(real), str(tmp_path / "link"))
    assert ts.staging_path_for(str(tmp_path / "link")) == str(tmp_path / "disk" / ".model.llmops-staging")


def test_prepare_staging_creates_a_private_directory(tmp_path):
    files = ts.prepare_staging(str(tmp_path / ".s"))
    st = os.lstat(str(tmp_path / ".s"))
    assert files == str(tmp_path / ".s" / "files") and os.path.isdir(files)
    assert stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == os.geteuid()


@pytest.mark.parametrize("make", ["link", "file", "open_dir"])
def test_prepare_staging_replaces_anything_not_private(tmp_path, make):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_bytes(b"k")
    path = tmp_path / ".s"
    if make == "link":
        os.symlink(str(outside), str(path))
    elif make == "file":
        path.write_bytes(b"x")
    else:
        (path / "files").mkdir(parents=True)
        (path / "files" / "planted").write_bytes(b"p")
        os.chmod(str(path), 0o777)
    ts.prepare_staging(str(path))
    assert not os.path.islink(str(path)) and stat.S_IMODE(os.lstat(str(path)).st_mode) == 0o700
    assert os.listdir(str(path / "files")) == []
    assert os.listdir(str(outside)) == ["keep"]


def test_tree_problems_names_links_and_special_files(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "ok").write_bytes(b"1")
    os.symlink("/etc", str(tmp_path / "d" / "zz"))
    os.symlink("/etc/passwd", str(tmp_path / "f.incomplete"))
    os.mkfifo(str(tmp_path / "fifo"))
    assert ts.tree_problems(str(tmp_path)) == [
        "d/zz is a symlink", "f.incomplete is a symlink", "fifo is not a regular file or directory"]


def test_install_refuses_a_symlinked_directory_and_writes_nothing_outside(tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(str(outside), str(model / "zz"))
    src = tmp_path / "src"
    src.mkdir()
    (src / "x").write_bytes(b"x")
    fd = os.open(str(src), os.O_RDONLY | os.O_DIRECTORY)
    try:
        with ts.TargetDir(str(model), create=True) as target:
            with pytest.raises(ts.TreeError, match="zz inside the model directory is a symlink"):
                target.install(fd, "x", "zz/x")
    finally:
        os.close(fd)
    assert os.listdir(str(outside)) == [] and (src / "x").exists()


def test_install_replaces_a_symlinked_file_name_without_following_it(tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    os.symlink(str(victim), str(model / "config.json"))
    src = tmp_path / "src"
    src.mkdir()
    (src / "config.json").write_bytes(b"{}")
    fd = os.open(str(src), os.O_RDONLY | os.O_DIRECTORY)
    try:
        with ts.TargetDir(str(model), create=True) as target:
            target.install(fd, "config.json", "config.json")
    finally:
        os.close(fd)
    assert victim.read_bytes() == b"precious"
    assert not os.path.islink(str(model / "config.json")) and (model / "config.json").read_bytes() == b"{}"


def test_attributes_never_follow_links(tmp_path):
    model = tmp_path / "m"
    (model / "d").mkdir(parents=True)
    (model / "d" / "f").write_bytes(b"f")
    victim = tmp_path / "victim"
    victim.write_bytes(b"v")
    os.chmod(str(victim), 0o600)
    os.symlink(str(victim), str(model / "link"))
    with ts.TargetDir(str(model)) as target:
        assert target.attributes("d/f", mode=0o640) is True
        assert target.attributes("d/f", mode=0o640) is False
        assert target.attributes("d", mode=0o750, is_dir=True) is True
        assert target.attributes("missing", mode=0o640, check=True) is True
        assert target.attributes("missing", mode=0o640) is False
        with pytest.raises(ts.TreeError, match="link inside the model directory is not a regular file"):
            target.attributes("link", mode=0o666)
    assert stat.S_IMODE(os.stat(str(model / "d" / "f")).st_mode) == 0o640
    assert stat.S_IMODE(os.stat(str(model / "d")).st_mode) == 0o750
    assert stat.S_IMODE(os.stat(str(victim)).st_mode) == 0o600


def test_check_mode_target_creates_nothing(tmp_path):
    with ts.TargetDir(str(tmp_path / "absent")) as target:
        assert target.dir_fd("a/b") is None and target.lstat("a/b/c") is None
    assert not (tmp_path / "absent").exists()


@pytest.mark.parametrize("value, expected", [("0644", 0o644), ("755", 0o755), (0o600, 0o600), (None, None)])
def test_parse_mode(value, expected):
    assert ts.parse_mode(value) == expected


@pytest.mark.parametrize("value", ["u=rw", "0899", "", "77777", True, -1])
def test_parse_mode_refuses(value):
    with pytest.raises(ValueError, match="mode .* is not valid: expected an octal mode"):
        ts.parse_mode(value)


# ------------------------------------------------------------------ target_tree_problems
def test_missing_model_dir_is_fine(tmp_path):
    assert ts.target_tree_problems(str(tmp_path / "nope"), ["a/b"]) == []


def test_model_dir_that_is_a_file(tmp_path):
    (tmp_path / "m").write_bytes(b"x")
    assert "not a directory" in ts.target_tree_problems(str(tmp_path / "m"), ["a"])[0]


def test_symlinked_directory_inside_target_is_refused(tmp_path):
    model, outside = tmp_path / "m", tmp_path / "outside"
    model.mkdir()
    outside.mkdir()
    os.symlink(str(outside), str(model / "sub"))
    problems = ts.target_tree_problems(str(model), ["sub/x.txt", "sub/y.txt", "ok.txt"])
    assert problems == ["sub is a symlinked directory inside the model directory"]


def test_nested_symlinked_directory(tmp_path):
    model = tmp_path / "m"
    (model / "a").mkdir(parents=True)
    os.symlink("/tmp", str(model / "a" / "b"))
    assert "a/b is a symlinked directory" in ts.target_tree_problems(str(model), ["a/b/c/d.txt"])[0]


def test_file_where_a_directory_goes(tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    (model / "sub").write_bytes(b"x")
    assert "sub exists and is not a directory" in ts.target_tree_problems(str(model), ["sub/x"])[0]


def test_symlinked_file_and_partial_are_refused(tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    os.symlink("/etc/hostname", str(model / "a.txt"))
    os.symlink("/etc/hostname", str(model / "b.txt.incomplete"))
    problems = ts.target_tree_problems(str(model), ["a.txt", "b.txt"])
    assert problems == ["a.txt is a symlink", "b.txt.incomplete exists and is not a regular file"]


def test_directory_where_a_file_goes(tmp_path):
    model = tmp_path / "m"
    (model / "x").mkdir(parents=True)
    assert ts.target_tree_problems(str(model), ["x"]) == ["x exists and is not a regular file"]


def test_model_dir_itself_may_be_a_symlink(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(str(real), str(tmp_path / "link"))
    assert ts.target_tree_problems(str(tmp_path / "link"), ["a/b.txt"]) == []
