# Copyright: llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A minimal PEP 503 package index over HTTPS, for the modelscope_sdk_mirror molecule scenario.

Serves the wheels of one directory as ``/simple/<project>/`` pages (with sha256 fragments) and
``/packages/<file>``, on 127.0.0.1 and a free port. It detaches once it listens and leaves in STATE_DIR:
``port``, ``pid`` and ``access.log`` (one line per request: method, path, status).

Usage: mirror_server.py PACKAGES_DIR CERT_FILE KEY_FILE STATE_DIR
Stop it with: kill "$(cat STATE_DIR/pid)"
"""
import hashlib
import html
import os
import re
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, unquote


def normalize(name):
    """PEP 503 project name normalisation."""
    return re.sub(r"[-_.]+", "-", name).lower()


def project_of(filename):
    """Project name of a wheel file name (``<dist>-<version>-...whl``)."""
    return normalize(filename.split("-", 1)[0])


def scan(packages_dir):
    """Map each normalised project name to [(file name, sha256)]."""
    projects = {}
    for filename in sorted(os.listdir(packages_dir)):
        if not filename.endswith(".whl"):
            continue
        digest = hashlib.sha256()
        with open(os.path.join(packages_dir, filename), "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        projects.setdefault(project_of(filename), []).append((filename, digest.hexdigest()))
    return projects


def make_handler(packages_dir, projects, log_path):
    class Handler(BaseHTTPRequestHandler):
        def _send(self, status, body, content_type):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _page(self, title, links):
            items = "".join('<a href="%s">%s</a><br>\n' % (html.escape(href), html.escape(text)) for href, text in links)
            body = "<!DOCTYPE html><html><head><title>%s</title></head><body>\n%s</body></html>\n" % (
                html.escape(title), items)
            self._send(200, body.encode("utf-8"), "text/html; charset=utf-8")

        def do_GET(self):  # noqa: N802 (http.server's naming)
            path = unquote(self.path.split("?", 1)[0])
            parts = [part for part in path.split("/") if part]
            if parts == ["simple"]:
                self._page("Simple index", [("/simple/%s/" % name, name) for name in sorted(projects)])
            elif len(parts) == 2 and parts[0] == "simple" and normalize(parts[1]) in projects:
                files = projects[normalize(parts[1])]
                self._page("Links for %s" % parts[1],
                           [("/packages/%s#sha256=%s" % (quote(name), digest), name) for name, digest in files])
            elif len(parts) == 2 and parts[0] == "packages" and "/" not in parts[1] \
                    and os.path.isfile(os.path.join(packages_dir, parts[1])):
                with open(os.path.join(packages_dir, parts[1]), "rb") as handle:
                    self._send(200, handle.read(), "application/octet-stream")
            else:
                self._send(404, b"not found\n", "text/plain")

        def log_request(self, code="-", size="-"):
            with open(log_path, "a") as log:
                log.write("%s %s %s\n" % (self.command, self.path, code))

        def log_message(self, format, *args):  # noqa: A002 (http.server's signature)
            pass

    return Handler


def main(argv):
    if len(argv) != 5:
        sys.stderr.write(__doc__)
        return 2
    packages_dir, cert_file, key_file, state_dir = argv[1:]
    projects = scan(packages_dir)
    if not projects:
        sys.stderr.write("mirror_server: no wheels in %s\n" % packages_dir)
        return 1
    log_path = os.path.join(state_dir, "access.log")
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(packages_dir, projects, log_path))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)

    # Detach. The socket already listens, so the parent can record the child and the port and return:
    # an Ansible task that starts the server finds it ready.
    child = os.fork()
    if child:
        with open(os.path.join(state_dir, "pid"), "w") as handle:
            handle.write("%d\n" % child)
        with open(os.path.join(state_dir, "port"), "w") as handle:
            handle.write("%d\n" % server.server_address[1])
        return 0
    os.setsid()
    with open(os.devnull, "rb") as devnull_in, open(os.devnull, "wb") as devnull_out:
        os.dup2(devnull_in.fileno(), 0)
        os.dup2(devnull_out.fileno(), 1)
        os.dup2(devnull_out.fileno(), 2)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
