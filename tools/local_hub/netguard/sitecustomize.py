# Copyright: (c) 2026, llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Loopback-only network guard for SDK subprocesses started by tools.local_hub.sdk.

Put this directory first on PYTHONPATH and set ``LLMOPS_NETGUARD=1``: Python then imports it at start-up and an audit
hook refuses every DNS lookup and connection to anything but loopback addresses (127.0.0.0/8, ::1, localhost), so a
misconfigured endpoint fails fast instead of reaching modelscope.cn. Each refusal is appended to the file named by
``LLMOPS_NETGUARD_LOG`` (one line: event and target) so tests can assert that none happened.
"""

import os
import sys


def _loopback(host) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).strip("[]").lower()
    return host in ("localhost", "::1", "0:0:0:0:0:0:0:1", "") or host.startswith("127.")


def _install():
    if os.environ.get("LLMOPS_NETGUARD") != "1":
        return
    log_path = os.environ.get("LLMOPS_NETGUARD_LOG")

    def refuse(event, target):
        if log_path:
            try:
                with open(log_path, "a", encoding="utf-8") as handle:
                    handle.write("%s %r\n" % (event, target))
            except OSError:
                pass
        raise ConnectionRefusedError("llmops netguard: %s to %r refused (only loopback is allowed in tests)"
                                     % (event, target))

    def hook(event, args):
        if event == "socket.getaddrinfo":
            if not _loopback(args[0]):
                refuse(event, args[0])
        elif event == "socket.connect":
            address = args[1]
            if isinstance(address, tuple) and address and not _loopback(address[0]):
                refuse(event, address[0])

    sys.addaudithook(hook)


_install()
