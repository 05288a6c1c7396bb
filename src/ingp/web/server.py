"""``ingp view``'s HTTP server: the viewer's static files and one export, on 127.0.0.1 only.

Every URL is looked up in a fixed table built at start-up (``routes``): no directory listing, no file outside that
table reachable, whatever the path says (``..``, encoded slashes, absolute paths all miss the table -> 404). With a
live folder (``live.py``: a fit with ``--view``) these are answered from it too: ``/live/status.json``,
``/live/target.png``, ``/live/views.json``, ``/live/views/<digits>.jpg`` and ``/live/<digits>/model.json|bin``
(folder and file names are the parsed numbers, nothing else).
"""

from __future__ import annotations

import re
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

STATIC = Path(__file__).parent / "static"
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css",
         ".json": "application/json", ".bin": "application/octet-stream", ".png": "image/png",
         ".jpg": "image/jpeg", ".onnx": "application/octet-stream", ".mjs": "text/javascript; charset=utf-8",
         ".wasm": "application/wasm"}
EXPORT_FILES = ("model.json", "model.bin", "model.onnx")
# onnxruntime-web's WebAssembly build (the ONNX page, static/onnx.js), from an npm install's dist/ folder
ORT_FILES = re.compile(r"ort\.wasm\.min\.mjs|ort-wasm-simd-threaded(\.jsep)?\.(mjs|wasm)")
LIVE_SNAPSHOT = re.compile(r"/live/([0-9]{1,9})/(model\.json|model\.bin)")
LIVE_VIEW = re.compile(r"/live/views/([0-9]{1,4})\.jpg")


def routes(export_dir: Path, static_dir: Path = STATIC, ort: Path | None = None) -> dict[str, Path]:
    """URL path -> file: ``/`` and ``/<static file>`` for the viewer, ``/model/model.json|bin|onnx`` for the
    export, ``/ort/<file>`` for onnxruntime-web's files in folder ``ort`` (if given)."""
    table = {f"/{p.name}": p for p in sorted(static_dir.iterdir()) if p.is_file() and p.suffix in TYPES}
    table["/"] = static_dir / "index.html"
    table.update({f"/model/{name}": Path(export_dir) / name for name in EXPORT_FILES})
    if ort is not None:
        table.update({f"/ort/{p.name}": p for p in sorted(Path(ort).iterdir()) if ORT_FILES.fullmatch(p.name)})
    return table


def live_routes(live: Path) -> dict[str, Path]:
    return {f"/live/{name}": Path(live) / name for name in ("status.json", "target.png", "views.json")}


def make_handler(table: dict[str, Path], live: Path | None = None):
    def lookup(url_path: str) -> Path | None:
        path = table.get(url_path)
        if path is None and live is not None:
            match = LIVE_SNAPSHOT.fullmatch(url_path)
            if match:
                path = Path(live) / str(int(match[1])) / match[2]
            match = LIVE_VIEW.fullmatch(url_path)
            if match:
                path = Path(live) / "views" / f"{int(match[1])}.jpg"
        return path

    class Handler(BaseHTTPRequestHandler):
        server_version = "ingp-view"

        def do_GET(self):  # noqa: N802 (http.server's naming)
            self._serve(body=True)

        def do_HEAD(self):  # noqa: N802
            self._serve(body=False)

        def _serve(self, body: bool):
            url_path = urlsplit(self.path).path
            if url_path == "/live/status.json" and (live is None or not (Path(live) / "status.json").is_file()):
                self._status_placeholder(body)
                return
            path = lookup(url_path)
            try:
                data = path.read_bytes() if path is not None and path.is_file() else None
            except OSError:  # a live snapshot deleted as it was read
                data = None
            if data is None:
                self.send_error(HTTPStatus.NOT_FOUND, "not found")
                return
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", TYPES.get(path.suffix, "application/octet-stream"))
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if body:
                self.wfile.write(data)

        def _status_placeholder(self, body: bool):
            """No live run: 204 (the page then loads /model/); a live one before its first status: not yet."""
            data = b'{"format": "ingp-live", "running": true, "snapshot": null}' if live is not None else b""
            self.send_response(HTTPStatus.OK if data else HTTPStatus.NO_CONTENT)
            self.send_header("Content-Type", TYPES[".json"])
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if body and data:
                self.wfile.write(data)

        def log_message(self, format, *args):  # quiet: the viewer asks for few files
            pass

    return Handler


def make_server(export_dir: Path, port: int = 0, live: Path | None = None, ort: Path | None = None
                ) -> ThreadingHTTPServer:
    """A server bound to 127.0.0.1:``port`` (0: any free port; read ``server.server_address``); ``live``: a fit's
    live folder to answer ``/live/...`` from; ``ort``: onnxruntime-web's dist folder (the ONNX page)."""
    table = routes(export_dir, ort=ort)
    if live is not None:
        table.update(live_routes(live))
    return Server(("127.0.0.1", port), make_handler(table, live))


class Server(ThreadingHTTPServer):
    """A browser that closes a tab mid-download is no error: such requests end quietly (socketserver would print
    a BrokenPipeError / ConnectionResetError traceback for each)."""

    daemon_threads = True  # Ctrl-C does not wait for downloads in flight

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def serve_in_thread(export_dir: Path, port: int = 0, live: Path | None = None, ort: Path | None = None
                    ) -> tuple[ThreadingHTTPServer, str]:
    """Start a server in a daemon thread; returns (server, base URL). Stop with ``server.shutdown()``."""
    server = make_server(export_dir, port, live, ort)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"
