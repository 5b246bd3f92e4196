# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Real test hosts that reach each other over real SSH (../shared/test-hosts.md, section d), for the peer fan-out tests
and benchmark.

Each host is an overlay of the cached Debian base (extensions/molecule/shared/rootfs-base.sh) plus one cached layer
that adds openssh-server, rsync, python3-venv and the pinned ModelScope SDK in /opt/llmops/venv (built once, kept in
the same cache as the base). A host runs its own sshd as PID 1 of private mount/UTS/IPC/PID namespaces, listening on
its own loopback address (127.X.Y.N, port 22); root logs in with a key made for this session. The network namespace is
the machine's, so the hosts reach the local hub on 127.0.0.1 and each other on their addresses.

Usage (root only)::

    with FanoutHosts(4, workdir) as hosts:
        hosts.inventory_path        # an INI inventory naming fan1..fan4 with their addresses, port, key
        hosts.root("fan2")          # the host's root directory, seen from this machine
        hosts.processes("fan2")     # pids whose root is that host (for killing a transfer)

Teardown kills every process of every host, unmounts and deletes the instance directories
(extensions/molecule/shared/instance-down.sh).
"""
import fcntl
import os
import random
import shutil
import socket
import subprocess
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(REPO, "extensions", "molecule", "shared")
CACHE = os.environ.get("LLMOPS_MOLECULE_CACHE", "/var/cache/llmops-molecule")
SUITE = "bookworm"
SSHD_PORT = 22
LAYER_FORMAT = "2"
LAYER_PACKAGES = ("openssh-server", "rsync", "python3-venv")
SDK_PINS = ("modelscope==1.40.2", "modelscope-hub==0.5.1")


def _run(argv, check=True, **kwargs):
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.STDOUT)
    kwargs.setdefault("universal_newlines", True)
    try:
        return subprocess.run(argv, check=check, **kwargs)
    except subprocess.CalledProcessError as exc:
        raise RuntimeError("%s failed (rc %s): %s" % (" ".join(argv), exc.returncode, (exc.stdout or "")[-3000:]))


def base_rootfs():
    """The cached Debian base (built by the molecule scenarios' script on first use)."""
    out = _run([os.path.join(SHARED, "rootfs-base.sh"), SUITE, CACHE]).stdout
    for line in out.splitlines():
        if line.startswith("path="):
            return line[5:]
    raise RuntimeError("rootfs-base.sh printed no path: %s" % out)


def _mount_pseudo(merged):
    for target, fstype, options in (("proc", "proc", "nosuid,nodev,noexec"),
                                    ("sys", "sysfs", "ro,nosuid,nodev,noexec"),
                                    ("dev/pts", "devpts", "newinstance,ptmxmode=0666,mode=0620,gid=5"),
                                    ("dev/shm", "tmpfs", "nosuid,nodev,mode=1777"),
                                    ("run", "tmpfs", "nosuid,nodev,mode=0755"),
                                    ("tmp", "tmpfs", "nosuid,nodev,mode=1777")):
        path = os.path.join(merged, target)
        os.makedirs(path, exist_ok=True)
        _run(["mount", "-t", fstype, "-o", options, fstype, path])


def _overlay(lowers, instance_dir):
    for sub in ("upper", "work", "merged"):
        os.makedirs(os.path.join(instance_dir, sub), exist_ok=True)
    merged = os.path.join(instance_dir, "merged")
    _run(["mount", "-t", "overlay", "overlay", "-o", "lowerdir=%s,upperdir=%s,workdir=%s" % (
        ":".join(lowers), os.path.join(instance_dir, "upper"), os.path.join(instance_dir, "work")), merged])
    _mount_pseudo(merged)
    return merged


def _down(instance_dir):
    _run([os.path.join(SHARED, "instance-down.sh"), instance_dir])


def sshd_layer(base):
    """The cached layer (an overlay upper directory) with sshd, rsync and the SDK venv over ``base``."""
    import hashlib
    key = hashlib.sha256(("%s %s %s %s" % (LAYER_FORMAT, os.path.basename(base), LAYER_PACKAGES, SDK_PINS))
                         .encode()).hexdigest()[:12]
    layer = os.path.join(CACHE, "%s-fanout-layer-%s" % (os.path.basename(base), key))
    with open(layer + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.isdir(layer):
            return layer
        build = layer + ".build"
        if os.path.exists(build):
            _down(build)
        merged = _overlay([base], build)
        try:
            with open(os.path.join(merged, "usr/sbin/policy-rc.d"), "w") as handle:
                handle.write("#!/bin/sh\nexit 101\n")
            os.chmod(os.path.join(merged, "usr/sbin/policy-rc.d"), 0o755)
            shutil.copy("/etc/resolv.conf", os.path.join(merged, "etc/resolv.conf"))
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            _run(["chroot", merged, "apt-get", "-qq", "update"], env=env)
            _run(["chroot", merged, "apt-get", "-qq", "install", "-y", "--no-install-recommends"]
                 + list(LAYER_PACKAGES), env=env)
            _run(["chroot", merged, "apt-get", "clean"])
            _run(["chroot", merged, "python3", "-m", "venv", "/opt/llmops/venv"])
            _run(["chroot", merged, "/opt/llmops/venv/bin/pip", "install", "-q", "--no-cache-dir"] + list(SDK_PINS),
                 env=dict(env, PIP_FIND_LINKS=""))
            for name in os.listdir(os.path.join(merged, "etc/ssh")):
                if name.startswith("ssh_host_"):
                    os.unlink(os.path.join(merged, "etc/ssh", name))   # every host makes its own
        finally:
            # keep the upper directory, drop the mounts
            for target in ("tmp", "run", "dev/shm", "dev/pts", "sys", "proc", ""):
                subprocess.run(["umount", "-l", os.path.join(merged, target)], check=False,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.rename(os.path.join(build, "upper"), layer)
        shutil.rmtree(build)
        return layer


def _free_prefix():
    """A 127.X.Y. prefix whose sshd port is free on its first addresses."""
    rng = random.Random(os.getpid() ^ int(time.time()))
    for _attempt in range(50):
        prefix = "127.%d.%d." % (rng.randint(20, 250), rng.randint(1, 250))
        probe = socket.socket()
        try:
            probe.bind((prefix + "1", SSHD_PORT))
        except OSError:
            continue
        finally:
            probe.close()
        return prefix
    raise RuntimeError("no free loopback prefix for the test hosts' sshd")


class FanoutHosts(object):
    """``count`` real hosts, each with sshd on its own loopback address; see the module docstring."""

    def __init__(self, count, workdir, prefix="fan"):
        self.count = count
        self.workdir = os.path.abspath(str(workdir))
        self.names = ["%s%d" % (prefix, i + 1) for i in range(count)]
        self.dirs = {}
        self.sshd = {}
        self.address = {}
        self.inventory_path = os.path.join(self.workdir, "inventory.ini")
        self.key = os.path.join(self.workdir, "id_ed25519")

    # -- set-up ----------------------------------------------------------------------------------------------------
    def __enter__(self):
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc):
        self.down()

    def up(self):
        os.makedirs(self.workdir, exist_ok=True)
        base = base_rootfs()
        layer = sshd_layer(base)
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fanout-test", "-f", self.key])
        with open(self.key + ".pub") as handle:
            pub = handle.read()
        prefix = _free_prefix()
        for index, name in enumerate(self.names):
            instance = os.path.join(self.workdir, "hosts", name)
            self.dirs[name] = instance
            merged = _overlay([layer, base], instance)
            self.address[name] = prefix + str(index + 1)
            ssh_dir = os.path.join(merged, "root", ".ssh")
            os.makedirs(ssh_dir, mode=0o700, exist_ok=True)
            with open(os.path.join(ssh_dir, "authorized_keys"), "w") as handle:
                handle.write(pub)
            os.chmod(os.path.join(ssh_dir, "authorized_keys"), 0o600)
            shutil.copy("/etc/resolv.conf", os.path.join(merged, "etc/resolv.conf"))
            with open(os.path.join(merged, "etc/hostname"), "w") as handle:
                handle.write(name + "\n")
            _run(["chroot", merged, "ssh-keygen", "-A"])
            self.start_sshd(name)
        self.write_inventory()

    def start_sshd(self, name):
        merged = self.root(name)
        script = ("mount -t proc proc /proc; mkdir -p /run/sshd; hostname %s; exec /usr/sbin/sshd -D -e "
                  "-o ListenAddress=%s -p %d -o PasswordAuthentication=no -o UseDNS=no" % (
                      name, self.address[name], SSHD_PORT))
        log = open(os.path.join(self.dirs[name], "sshd.log"), "w")
        self.sshd[name] = subprocess.Popen(
            ["unshare", "--mount", "--uts", "--ipc", "--pid", "--fork", "--kill-child", "chroot", merged,
             "/bin/sh", "-c", script], stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            probe = socket.socket()
            probe.settimeout(1)
            try:
                probe.connect((self.address[name], SSHD_PORT))
                return
            except OSError:
                if time.monotonic() > deadline or self.sshd[name].poll() is not None:
                    with open(os.path.join(self.dirs[name], "sshd.log")) as handle:
                        raise RuntimeError("sshd of %s did not start: %s" % (name, handle.read()[-2000:]))
                time.sleep(0.1)
            finally:
                probe.close()

    def write_inventory(self, extra_vars=""):
        lines = ["[fleet]"]
        for name in self.names:
            lines.append("%s ansible_host=%s" % (name, self.address[name]))
        lines += ["", "[fleet:vars]", "ansible_port=%d" % SSHD_PORT, "ansible_user=root",
                  "ansible_ssh_private_key_file=%s" % self.key,
                  # the test hosts are made fresh every session: their keys cannot be known in advance
                  "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
                  "-o LogLevel=ERROR'",
                  "ansible_python_interpreter=/usr/bin/python3", extra_vars, ""]
        with open(self.inventory_path, "w") as handle:
            handle.write("\n".join(lines))

    # -- inspection ------------------------------------------------------------------------------------------------
    def root(self, name):
        return os.path.join(self.dirs[name], "merged")

    def processes(self, name):
        """pids (this machine's view) whose root directory is inside host ``name``, with their command lines."""
        found = []
        root = os.path.realpath(self.root(name))
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                proot = os.readlink("/proc/%s/root" % pid)
                with open("/proc/%s/cmdline" % pid, "rb") as handle:
                    cmd = handle.read().replace(b"\0", b" ").decode("utf-8", "replace")
            except OSError:
                continue
            if proot == root or proot.startswith(root + "/"):
                found.append((int(pid), cmd))
        return found

    # -- teardown --------------------------------------------------------------------------------------------------
    def down(self):
        for name, proc in self.sshd.items():
            try:
                os.killpg(proc.pid, 9)
            except OSError:
                pass
            proc.wait()
        self.sshd = {}
        for name, instance in self.dirs.items():
            if os.path.exists(instance):
                _down(instance)
        self.dirs = {}
