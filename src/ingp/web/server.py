"""``ingp view``'s HTTP server: the viewer's static files and one export, on 127.0.0.1 only.

Every URL is looked up in a fixed table built at start-up (``routes``): no directory listing, no file outside that
table reachable, whatever the path says (``..``, encoded slashes, absolute paths all miss the table -> 404).
"""

from __future__ import annotations

import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

STATIC = Path(__file__).parent / "static"
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css",
         ".json": "application/json", ".bin": "application/octet-stream"}
EXPORT_FILES = ("model.json", "model.bin")


def routes(export_dir: Path, static_dir: Path = STATIC) -> dict[str, Path]:
    """URL path -> file: ``/`` and ``/<static file>`` for the viewer, ``/model/model.json|bin`` for the export."""
    table = {f"/{p.name}": p for p in sorted(static_dir.iterdir()) if p.is_file() and p.suffix in TYPES}
    table["/"] = static_dir / "index.html"
    table.update({f"/model/{name}": Path(export_dir) / name for name in EXPORT_FILES})
    return table


def make_handler(table: dict[str, Path]):
    class Handler(BaseHTTPRequestHandler):
        server_version = "ingp-view"

        def do_GET(self):  # noqa: N802 (http.server's naming)
            self._serve(body=True)

        def do_HEAD(self):  # noqa: N802
            self._serve(body=False)

        def _serve(self, body: bool):
            path = table.get(urlsplit(self.path).path)
            if path is None or not path.is_file():
                self.send_error(HTTPStatus.NOT_FOUND, "not found")
                return
            data = path.read_bytes()
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", TYPES.get(path.suffix, "application/octet-stream"))
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if body:
                self.wfile.write(data)

        def log_message(self, format, *args):  # quiet: the viewer asks for few files
            pass

    return Handler


def make_server(export_dir: Path, port: int = 0) -> ThreadingHTTPServer:
    """A server bound to 127.0.0.1:``port`` (0: any free port; read ``server.server_address``)."""
    return ThreadingHTTPServer(("127.0.0.1", port), make_handler(routes(export_dir)))


def serve_in_thread(export_dir: Path, port: int = 0) -> tuple[ThreadingHTTPServer, str]:
    """Start a server in a daemon thread; returns (server, base URL). Stop with ``server.shutdown()``."""
    server = make_server(export_dir, port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"
