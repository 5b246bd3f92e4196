# Copyright: (c) 2026, llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``python -m tools.local_hub``: run the local ModelScope-compatible hub until SIGTERM/SIGINT.

Prints one JSON line on stdout once it serves (and writes the same to --ready-file)::

    {"endpoint": "http://127.0.0.1:PORT", "pid": 1234, "models": [...], "store": "...", "token_required": false}
"""

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

from .faults import FaultError
from .models import CATALOGUE, parse_size
from .server import LocalHub

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_STORE = REPO_ROOT / ".work" / "local-hub-store"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.local_hub",
        description="Serve generated models over the ModelScope /api/v1 download protocol (tests and demos).")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1; the hub is meant for loopback only)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one (default)")
    parser.add_argument("--store", default=str(DEFAULT_STORE),
                        help="directory of generated files and manifests (default: .work/local-hub-store)")
    parser.add_argument("--model", action="append", dest="models", metavar="ID",
                        help="model to serve, repeatable: %s, 'default' (all of those) or 'bench:SIZE' "
                             "(e.g. bench:1GiB, generated on the fly). Default: default"
                             % ", ".join(sorted(CATALOGUE)))
    parser.add_argument("--token-file", help="require this token (read from the file, first line) on API requests")
    parser.add_argument("--faults", help="JSON file with an initial fault specification (see tools/local_hub/faults.py)")
    parser.add_argument("--log", help="append every request record to this JSONL file")
    parser.add_argument("--ready-file", help="also write the ready JSON line to this file")
    parser.add_argument("--linked-etag", action="store_true", help="send X-Linked-ETag with every file")
    parser.add_argument("--link-rate", metavar="SIZE",
                        help="bytes per second of the one link every download shares, e.g. 125MB (1 Gbit/s) or "
                             "1GiB; default: as fast as the machine allows")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    token = None
    if args.token_file:
        try:
            token = Path(args.token_file).read_text("utf-8").splitlines()[0].strip()
        except (OSError, IndexError) as exc:
            print("error: cannot read a token from --token-file %s: %s" % (args.token_file, exc), file=sys.stderr)
            return 2
        if not token:
            print("error: --token-file %s holds an empty token" % args.token_file, file=sys.stderr)
            return 2
    faults = None
    if args.faults:
        try:
            faults = json.loads(Path(args.faults).read_text("utf-8"))
        except (OSError, ValueError) as exc:
            print("error: cannot read --faults %s: %s" % (args.faults, exc), file=sys.stderr)
            return 2
    try:
        link_rate = parse_size(args.link_rate) if args.link_rate else None
        hub = LocalHub(args.store, models=args.models, token=token, host=args.host, port=args.port,
                       log_path=args.log, faults=faults, linked_etag=args.linked_etag, link_rate=link_rate)
        hub.start()
    except (ValueError, FaultError, OSError) as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 2

    if not (args.host.startswith("127.") or args.host in ("::1", "localhost")):
        print("warning: the hub listens on %s, not only on loopback; it is a test tool without TLS" % args.host,
              file=sys.stderr)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    ready = json.dumps({"endpoint": hub.endpoint, "pid": os.getpid(), "models": hub.model_ids,
                        "store": str(hub.store.root), "token_required": token is not None})
    if args.ready_file:
        tmp = Path(args.ready_file + ".tmp")
        tmp.write_text(ready + "\n", "utf-8")
        os.replace(tmp, args.ready_file)
    print(ready, flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        hub.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
