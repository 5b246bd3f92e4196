# Copyright: (c) 2026, llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run the real ModelScope SDK (CLI or Python API) in an isolated subprocess against a hub.

Isolation (protocol §2, §6, §10): the environment gets ``MODELSCOPE_ENDPOINT`` (so the SDK never probes
modelscope.cn), ``MODELSCOPE_CACHE``, ``MODELSCOPE_HOME`` and ``HOME`` under a private base directory,
``MODELSCOPE_DOWNLOAD_INTRA_CLOUD=false`` (no region probe), no proxy variables and no inherited ``MODELSCOPE_*``
variable. The token, if any, travels as ``MODELSCOPE_API_TOKEN`` (never on a command line). A loopback-only network
guard (``netguard/sitecustomize.py``) is loaded into the subprocess; refusals are listed by
:meth:`ModelScopeSDK.network_violations`.
"""

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

NETGUARD_DIR = Path(__file__).resolve().parent / "netguard"
_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "ftp_proxy", "no_proxy")


def modelscope_bin(python: Optional[str] = None) -> str:
    """The ``modelscope`` console script next to ``python`` (default: this interpreter), else the one on PATH."""
    candidate = Path(python or sys.executable).parent / "modelscope"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("modelscope")
    if not found:
        raise FileNotFoundError("the modelscope CLI is not installed next to %s nor on PATH" % (python or sys.executable))
    return found


def modelscope_env(endpoint: str, base_dir, token: Optional[str] = None, extra: Optional[Dict[str, str]] = None,
                   netguard: bool = True) -> Dict[str, str]:
    """An environment for one isolated SDK run; creates ``base_dir/{home,cache}``."""
    base = Path(base_dir)
    home = base / "home"
    cache = base / "cache"
    home.mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if not k.upper().startswith("MODELSCOPE_") and k.lower() not in _PROXY_VARS
           and k not in ("PYTHONPATH", "LLMOPS_NETGUARD", "LLMOPS_NETGUARD_LOG")}
    env.update({
        "HOME": str(home),
        "MODELSCOPE_ENDPOINT": endpoint,
        "MODELSCOPE_CACHE": str(cache),
        "MODELSCOPE_HOME": str(home / ".modelscope"),
        "MODELSCOPE_DOWNLOAD_INTRA_CLOUD": "false",
        "NO_PROXY": "127.0.0.1,localhost,::1",
        "no_proxy": "127.0.0.1,localhost,::1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONIOENCODING": "utf-8",
    })
    if netguard:
        env["PYTHONPATH"] = str(NETGUARD_DIR)
        env["LLMOPS_NETGUARD"] = "1"
        env["LLMOPS_NETGUARD_LOG"] = str(base / "netguard.log")
    if token is not None:
        env["MODELSCOPE_API_TOKEN"] = token
    env.update(extra or {})
    return env


@dataclass
class SnapshotResult:
    returncode: int
    path: Optional[str]  # what snapshot_download returned
    error: Optional[str]  # exception class name
    cause: Optional[str]  # class name of __cause__ (NotExistError, AuthenticationError...)
    message: Optional[str]
    stdout: str
    stderr: str


_SNAPSHOT_SCRIPT = r"""
import json, sys
kwargs = json.loads(sys.stdin.read())
from modelscope import snapshot_download
try:
    path = snapshot_download(**kwargs)
except BaseException as exc:
    cause = exc.__cause__
    print("@@RESULT@@" + json.dumps({"error": type(exc).__name__, "message": str(exc)[:2000],
                                     "cause": type(cause).__name__ if cause is not None else None}))
    sys.exit(1)
print("@@RESULT@@" + json.dumps({"path": path}))
"""


class ModelScopeSDK:
    """The real SDK against one hub endpoint, isolated under ``base_dir``.

    ``cli(*args)`` runs ``modelscope <args>`` (global flags first, e.g. ``cli("download", model_id, "--local-dir", d)``);
    ``snapshot_download(model_id, **kwargs)`` runs ``modelscope.snapshot_download`` in a fresh interpreter.
    Both accept ``token=`` (sent as MODELSCOPE_API_TOKEN) and ``env=`` (extra variables).
    """

    def __init__(self, endpoint: str, base_dir, token: Optional[str] = None, python: Optional[str] = None):
        self.endpoint = endpoint
        self.base_dir = Path(base_dir)
        self.token = token
        self.python = python or sys.executable

    def env(self, token: Optional[str] = None, env: Optional[Dict[str, str]] = None) -> Dict[str, str]:
        return modelscope_env(self.endpoint, self.base_dir, token if token is not None else self.token, env)

    def cli(self, *args: str, token: Optional[str] = None, env: Optional[Dict[str, str]] = None,
            timeout: float = 180, cwd=None) -> subprocess.CompletedProcess:
        argv: List[str] = [modelscope_bin(self.python)] + [str(a) for a in args]
        return subprocess.run(argv, env=self.env(token, env), cwd=str(cwd or self.base_dir), capture_output=True,
                              text=True, timeout=timeout, check=False)

    def snapshot_download(self, model_id: str, token: Optional[str] = None, env: Optional[Dict[str, str]] = None,
                          timeout: float = 180, **kwargs) -> SnapshotResult:
        kwargs["model_id"] = model_id
        kwargs = {k: str(v) if isinstance(v, Path) else v for k, v in kwargs.items()}
        proc = subprocess.run([self.python, "-c", _SNAPSHOT_SCRIPT], input=json.dumps(kwargs), env=self.env(token, env),
                              cwd=str(self.base_dir), capture_output=True, text=True, timeout=timeout, check=False)
        result = {}
        for line in proc.stdout.splitlines():
            if line.startswith("@@RESULT@@"):
                result = json.loads(line[len("@@RESULT@@"):])
        return SnapshotResult(proc.returncode, result.get("path"), result.get("error"), result.get("cause"),
                              result.get("message"), proc.stdout, proc.stderr)

    def network_violations(self) -> List[str]:
        """Connections or lookups to non-loopback hosts that the guard refused (should be empty)."""
        try:
            return (self.base_dir / "netguard.log").read_text("utf-8").splitlines()
        except OSError:
            return []
