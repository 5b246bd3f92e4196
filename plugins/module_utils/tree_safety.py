# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writing into a model directory that someone else may write into at the same time, without ever following a link.

Standard library only (runs on targets with Python >= 3.8, Linux). The model directory may be writable by another
account (the ``owner`` the files are given to, when the module runs as root); anything it plants there during a run
(a symlinked subdirectory, a symlink named like a partial file) must never make the module write, ``chown`` or
``chmod`` anything outside. Hence:

* before any byte is written, :func:`target_tree_problems` refuses a model directory that cannot safely receive the
  manifest's files (a symlinked or non-directory where a directory goes, a link or directory where a file goes);
* downloads land in a **private staging directory** (:func:`prepare_staging`): a real directory, owned by the
  module's user, mode 0700, next to the model directory's real path (same filesystem, so moves are renames). Nothing
  else can enter it; its tree is re-checked for links anyway (:func:`tree_problems`) before anything in it is trusted;
* files are moved into the model directory with :class:`TargetDir`: every directory below the model directory is
  opened with ``O_NOFOLLOW`` relative to its parent's descriptor (a symlink there is refused, a missing one created),
  and each file is ``rename``\\ d from the staging directory's descriptor to the target directory's descriptor: a
  rename replaces a name, it never writes through a link;
* owner and mode are applied through descriptors (``fchown``/``fchmod``) of files opened with ``O_NOFOLLOW`` whose
  ``fstat`` is checked to be the regular file or directory that was looked at, never through a path.
"""

import errno
import grp
import os
import pwd
import shutil
import stat

STAGING_SUFFIX = ".llmops-staging"
STAGING_FILES = "files"
# The SDK writes each file to ``<path>.incomplete`` and renames it when done.
PARTIAL_SUFFIX = ".incomplete"

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)


class TreeError(Exception):
    """A directory cannot be used safely; the message says which path and why."""

    def __init__(self, message):
        super(TreeError, self).__init__(message)
        self.message = message


def lstat_or_none(path):
    """``os.lstat(path)``, or None when the path (or a directory on the way) does not exist."""
    try:
        return os.lstat(path)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise


def target_tree_problems(model_dir, paths):
    """Reasons the model directory cannot safely receive ``paths``, before any byte is written.

    Refused: the model directory existing as a non-directory; a symlink (or non-directory) in place of any directory
    inside the model directory; a symlink or directory where a file goes; a symlinked ``<file>.incomplete`` (the SDK
    appends to it). The model directory itself may be a symlink to a directory (an administrator's choice).
    """
    problems = []
    st = None
    try:
        st = os.stat(model_dir)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
            problems.append("%s: cannot be read: %s" % (model_dir, exc.strerror))
            return problems
    if st is None:
        return problems
    if not stat.S_ISDIR(st.st_mode):
        return ["%s exists and is not a directory" % model_dir]
    checked_dirs = {}
    for rel in paths:
        parts = rel.split("/")
        for i in range(1, len(parts)):
            rel_dir = "/".join(parts[:i])
            if rel_dir in checked_dirs:
                if checked_dirs[rel_dir]:
                    break
                continue
            dst = lstat_or_none(os.path.join(model_dir, rel_dir))
            bad = None
            if dst is not None and stat.S_ISLNK(dst.st_mode):
                bad = "%s is a symlinked directory inside the model directory" % rel_dir
            elif dst is not None and not stat.S_ISDIR(dst.st_mode):
                bad = "%s exists and is not a directory (needed for %s)" % (rel_dir, rel)
            checked_dirs[rel_dir] = bad
            if bad:
                problems.append(bad)
                break
            if dst is None:
                # Nothing below a missing directory exists yet.
                break
        else:
            fst = lstat_or_none(os.path.join(model_dir, rel))
            if fst is not None and stat.S_ISLNK(fst.st_mode):
                problems.append("%s is a symlink" % rel)
            elif fst is not None and not stat.S_ISREG(fst.st_mode):
                problems.append("%s exists and is not a regular file" % rel)
            pst = lstat_or_none(os.path.join(model_dir, rel + PARTIAL_SUFFIX))
            if pst is not None and not stat.S_ISREG(pst.st_mode):
                problems.append("%s%s exists and is not a regular file" % (rel, PARTIAL_SUFFIX))
    return problems


def staging_path_for(model_dir):
    """``<parent of the real model dir>/.<name>.llmops-staging``: beside the directory's real path (same filesystem
    as the directory itself even when ``model_dir`` is a symlink to another filesystem)."""
    real = os.path.realpath(model_dir)
    return os.path.join(os.path.dirname(real), "." + os.path.basename(real) + STAGING_SUFFIX)


def _is_private_dir(st, euid):
    return stat.S_ISDIR(st.st_mode) and st.st_uid == euid and stat.S_IMODE(st.st_mode) & 0o077 == 0


def remove_tree(path):
    """Remove ``path`` whatever it is (a symlink is unlinked, never followed). Missing is fine."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return
        raise
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)   # symlink-attack resistant (fd based) on Linux
    else:
        os.unlink(path)


def prepare_staging(path, euid=None):
    """Create (or reuse) the private staging directory ``path`` and its ``files`` subdirectory.

    An existing entry is reused only when it is a real directory owned by ``euid`` (default: this process's) with no
    group or other permission bits, and its ``files`` is a real directory; anything else at that name is removed
    first. Returns the path of ``files`` (the SDK's ``local_dir``).
    """
    euid = os.geteuid() if euid is None else euid
    try:
        st = os.lstat(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
        st = None
    if st is not None and not _is_private_dir(st, euid):
        remove_tree(path)
        st = None
    if st is None:
        os.mkdir(path, 0o700)
    fd = os.open(path, _DIR_FLAGS)
    try:
        fst = os.fstat(fd)
        if not _is_private_dir(fst, euid):
            raise TreeError("the staging directory %s is not a private directory of uid %d (mode %o, owner %d)" % (
                path, euid, stat.S_IMODE(fst.st_mode), fst.st_uid))
        try:
            sub = os.stat(STAGING_FILES, dir_fd=fd, follow_symlinks=False)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise
            sub = None
        if sub is not None and not stat.S_ISDIR(sub.st_mode):
            os.unlink(STAGING_FILES, dir_fd=fd)
            sub = None
        if sub is None:
            os.mkdir(STAGING_FILES, 0o700, dir_fd=fd)
    finally:
        os.close(fd)
    return os.path.join(path, STAGING_FILES)


def tree_problems(root):
    """Everything under ``root`` that is not a regular file or a real directory (symlinks, fifos, sockets, devices),
    as sorted messages with root-relative paths. Nothing is followed."""
    problems = []
    stack = [""]
    while stack:
        rel = stack.pop()
        try:
            entries = list(os.scandir(os.path.join(root, rel) if rel else root))
        except OSError as exc:
            problems.append("%s: cannot be listed: %s" % (rel or ".", exc.strerror))
            continue
        for entry in entries:
            child = "%s/%s" % (rel, entry.name) if rel else entry.name
            if entry.is_symlink():
                problems.append("%s is a symlink" % child)
            elif entry.is_dir(follow_symlinks=False):
                stack.append(child)
            elif not entry.is_file(follow_symlinks=False):
                problems.append("%s is not a regular file or directory" % child)
    return sorted(problems)


def parse_mode(value, name="mode"):
    """An octal mode given as ``'0644'``/``'644'`` or an int; None stays None. Raises ValueError naming ``name``."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        mode = value
    elif isinstance(value, str) and value.strip().isdigit() and set(value.strip()) <= set("01234567"):
        mode = int(value.strip(), 8)
    else:
        mode = -1
    if not 0 <= mode <= 0o7777:
        raise ValueError("%s %r is not valid: expected an octal mode such as '0644' (symbolic modes are not "
                         "accepted)" % (name, value))
    return mode


def resolve_ids(owner=None, group=None):
    """``(uid, gid)`` of a user and a group given by name or number (None when not given). Raises ValueError naming
    the option and what it accepts."""
    ids = []
    for key, value, lookup in (("owner", owner, lambda name: pwd.getpwnam(name).pw_uid),
                               ("group", group, lambda name: grp.getgrnam(name).gr_gid)):
        if value is None or value == "":
            ids.append(None)
            continue
        try:
            ids.append(lookup(value))
        except KeyError:
            if not str(value).isdigit():
                raise ValueError("%s %r is not valid: expected a %s name of this host or a number" % (
                    key, value, "user" if key == "owner" else "group"))
            ids.append(int(value))
    return tuple(ids)


#: Ansible's common file arguments (``add_file_common_args``) that have no descriptor-based implementation here: a
#: value is refused (:func:`file_arguments`) rather than applied through a path or silently ignored.
UNSUPPORTED_FILE_ARGS = ("seuser", "serole", "setype", "selevel", "attributes")


def refuse_unsupported_file_args(params, module_name):
    """Raise ValueError naming every option of :data:`UNSUPPORTED_FILE_ARGS` given a value in ``params`` (an empty
    string counts as not given) and what the module accepts instead."""
    unsupported = [key for key in UNSUPPORTED_FILE_ARGS if params.get(key) not in (None, "")]
    if unsupported:
        raise ValueError("%s not supported by %s: it sets only owner, group and mode (and dir_mode), through "
                         "descriptors that never follow a link; remove %s" % (
                             " and ".join(unsupported) + (" is" if len(unsupported) == 1 else " are"), module_name,
                             ", ".join(unsupported)))


def file_arguments(params, module_name):
    """The file arguments of a module that writes a model directory, checked: ``(uid, gid, file_mode, dir_mode)``
    from ``params``' ``owner``, ``group`` (names or numbers), ``mode`` and ``dir_mode`` (octal), each None when not
    given. Raises ValueError naming the offending option(s) and what is accepted: an unsupported common file argument
    (:func:`refuse_unsupported_file_args`), an unknown user or group, a mode that is not octal."""
    refuse_unsupported_file_args(params, module_name)
    uid, gid = resolve_ids(params.get("owner"), params.get("group"))
    return uid, gid, parse_mode(params.get("mode"), "mode"), parse_mode(params.get("dir_mode"), "dir_mode")


def apply_to_files(root, paths, uid=None, gid=None, mode=None):
    """Owner, group and mode of regular files under a private ``root`` (the staging directory), by descriptor."""
    if uid is None and gid is None and mode is None:
        return
    for rel in paths:
        fd = os.open(os.path.join(root, rel), os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise TreeError("%s in the staging directory is not a regular file" % rel)
            apply_fd(fd, uid, gid, mode)
        finally:
            os.close(fd)


def _differs(st, uid, gid, mode):
    return ((uid is not None and st.st_uid != uid) or (gid is not None and st.st_gid != gid)
            or (mode is not None and stat.S_IMODE(st.st_mode) != mode))


def apply_fd(fd, uid=None, gid=None, mode=None):
    """Set owner, group and mode of an open file or directory (by descriptor). Returns True when one changed."""
    st = os.fstat(fd)
    if not _differs(st, uid, gid, mode):
        return False
    if (uid is not None and st.st_uid != uid) or (gid is not None and st.st_gid != gid):
        os.fchown(fd, -1 if uid is None else uid, -1 if gid is None else gid)
    if mode is not None:
        os.fchmod(fd, mode)
    return True


class TargetDir(object):
    """The model directory, opened once; every path below it is reached through directory descriptors, never by a
    path that could cross a symlink.

    ``model_dir`` itself may be a symlink to a directory (an administrator's choice, resolved once when opened).
    ``create``: create missing directories (with ``dir_mode`` and owner applied by descriptor); otherwise a missing
    directory is reported as None (check mode).
    """

    def __init__(self, model_dir, create=False):
        self.path = model_dir
        self.create = create
        self.fds = {}
        try:
            fd = os.open(model_dir, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            if exc.errno == errno.ENOENT and not create:
                self.fds[""] = None
                return
            raise TreeError("%s cannot be opened as a directory: %s" % (model_dir, exc.strerror))
        self.fds[""] = fd

    def close(self):
        for fd in self.fds.values():
            if fd is not None:
                os.close(fd)
        self.fds = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def dir_fd(self, rel_dir, dir_mode=None, uid=None, gid=None):
        """Descriptor of the directory ``rel_dir`` ('' is the model directory), or None when it is missing and
        ``create`` is off. A symlink or non-directory on the way raises TreeError."""
        if rel_dir in self.fds:
            return self.fds[rel_dir]
        parent_rel, _sep, name = rel_dir.rpartition("/")
        parent = self.dir_fd(parent_rel, dir_mode, uid, gid)
        if parent is None:
            self.fds[rel_dir] = None
            return None
        fd = None
        created = False
        for _attempt in range(2):
            try:
                fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
                break
            except OSError as exc:
                if exc.errno == errno.ENOENT:
                    if not self.create:
                        self.fds[rel_dir] = None
                        return None
                    try:
                        os.mkdir(name, 0o700 if dir_mode is not None else 0o777, dir_fd=parent)
                        created = True
                    except FileExistsError:
                        pass
                    continue
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise TreeError("%s inside the model directory is a symlink or not a directory; refusing to "
                                    "write through it" % rel_dir)
                raise TreeError("%s inside the model directory cannot be opened: %s" % (rel_dir, exc.strerror))
        if fd is None:
            raise TreeError("%s inside the model directory keeps disappearing" % rel_dir)
        if created:
            apply_fd(fd, uid, gid, dir_mode)
        self.fds[rel_dir] = fd
        return fd

    def _parent(self, rel):
        """``(descriptor of rel's directory or None, rel's last name)``."""
        parent_rel, _sep, name = rel.rpartition("/")
        return self.dir_fd(parent_rel), name

    def lstat(self, rel):
        """``os.lstat`` of ``rel`` through descriptors (None when missing)."""
        parent, name = self._parent(rel)
        if parent is None:
            return None
        try:
            return os.stat(name, dir_fd=parent, follow_symlinks=False)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return None
            raise

    def install(self, src_dir_fd, src_name, rel, dir_mode=None, uid=None, gid=None):
        """Rename ``src_name`` (relative to ``src_dir_fd``, the private staging side) to ``rel`` in the model
        directory. The destination name is replaced, never followed; a directory there is refused."""
        parent_rel, _sep, name = rel.rpartition("/")
        parent = self.dir_fd(parent_rel, dir_mode, uid, gid)
        try:
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise TreeError("%s is a directory inside the model directory; the file cannot be put there" % rel)
        os.rename(src_name, name, src_dir_fd=src_dir_fd, dst_dir_fd=parent)

    def unlink_file(self, rel):
        """Remove ``rel`` when it is not a directory (a link is removed, not followed). True when removed."""
        parent, name = self._parent(rel)
        if parent is None:
            return False
        try:
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                return False
            os.unlink(name, dir_fd=parent)
            return True
        except FileNotFoundError:
            return False

    def attributes(self, rel, uid=None, gid=None, mode=None, is_dir=False, check=False):
        """Bring owner/group/mode of ``rel`` ('' for the model directory) to the wanted values through a descriptor
        opened with ``O_NOFOLLOW``. Returns True when something differs (and, unless ``check``, was changed).
        A missing entry counts as differing in ``check`` mode (it would be created) and is skipped otherwise; a
        symlink or a file of another kind raises TreeError."""
        if uid is None and gid is None and mode is None:
            return False
        if is_dir:
            fd = self.dir_fd(rel)
            if fd is None:
                return check
            if check:
                return _differs(os.fstat(fd), uid, gid, mode)
            return apply_fd(fd, uid, gid, mode)
        parent, name = self._parent(rel)
        if parent is None:
            return check
        try:
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return check
        if not stat.S_ISREG(st.st_mode):
            raise TreeError("%s inside the model directory is not a regular file (a symlink?); its owner and mode "
                            "are left alone" % rel)
        if not _differs(st, uid, gid, mode):
            return False
        if check:
            return True
        try:
            fd = os.open(name, _FILE_FLAGS, dir_fd=parent)
        except OSError as exc:
            raise TreeError("%s inside the model directory cannot be opened: %s" % (rel, exc.strerror))
        try:
            fst = os.fstat(fd)
            if not stat.S_ISREG(fst.st_mode) or (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino):
                raise TreeError("%s inside the model directory changed while its attributes were set" % rel)
            return apply_fd(fd, uid, gid, mode)
        finally:
            os.close(fd)
