# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tree_safety: what a model directory must not hold before a download, the private staging directory, link-free
walks, moves and attributes that never follow a link."""

import grp
import os
import pwd
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


# ------------------------------------------------------------------ file_arguments
def file_params(**given):
    """The file arguments as AnsibleModule hands them over with ``add_file_common_args`` (and ``dir_mode``)."""
    params = dict(owner=None, group=None, mode=None, dir_mode=None, seuser=None, serole=None, setype=None,
                  selevel=None, attributes=None, unsafe_writes=False)
    params.update(given)
    return params


def test_file_arguments_by_name_number_and_octal():
    user, group = pwd.getpwuid(os.geteuid()), grp.getgrgid(os.getegid())
    assert ts.file_arguments(file_params(owner=user.pw_name, group=group.gr_name, mode="0640", dir_mode=0o750),
                             "m") == (user.pw_uid, group.gr_gid, 0o640, 0o750)
    # a number that names no account is taken as an id; empty SELinux/attribute values count as not given
    assert ts.file_arguments(file_params(owner="4000123", group="4000124", mode="644", seuser="", attributes=""),
                             "m") == (4000123, 4000124, 0o644, None)
    assert ts.file_arguments(file_params(unsafe_writes=True), "m") == (None, None, None, None)


@pytest.mark.parametrize("given, message", [
    ({"setype": "httpd_sys_content_t"},
     "setype is not supported by model_x: it sets only owner, group and mode (and dir_mode), through descriptors "
     "that never follow a link; remove setype"),
    ({"seuser": "u", "attributes": "+i", "owner": "no-such-user-llmops"},
     "seuser and attributes are not supported by model_x: it sets only owner, group and mode (and dir_mode), "
     "through descriptors that never follow a link; remove seuser, attributes"),
    ({"serole": "r", "selevel": "s0", "mode": "0640"}, "serole and selevel are not supported by model_x"),
    ({"owner": "no-such-user-llmops"},
     "owner 'no-such-user-llmops' is not valid: expected a user name of this host or a number"),
    ({"group": "no-such-group-llmops"},
     "group 'no-such-group-llmops' is not valid: expected a group name of this host or a number"),
    ({"mode": "u=rw,g=r"}, "mode 'u=rw,g=r' is not valid: expected an octal mode such as '0644'"),
    ({"mode": "0644", "dir_mode": "0999"}, "dir_mode '0999' is not valid: expected an octal mode such as '0644'"),
])
def test_file_arguments_refuse_naming_the_field_and_what_is_accepted(given, message):
    with pytest.raises(ValueError) as caught:
        ts.file_arguments(file_params(**given), "model_x")
    assert str(caught.value).startswith(message), str(caught.value)


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
