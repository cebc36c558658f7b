"""The review page's web server: standard-library HTTP on 127.0.0.1, JSON over a session.

Routes: `GET /` (the page), `GET /review.js`, `GET /review.css`, `GET /api/state`, and
`POST /api/label` `{"turn_id", "failure_point", "note"?}`, `POST /api/skip` `{"turn_id",
"note"?}`, `POST /api/note` `{"turn_id", "note"}` and `POST /api/undo` `{}`. Every POST
answers with the new state, after what it asked for is stored.

A page from another site cannot drive it: requests must name this server as their Host (no DNS
rebinding), POSTs must carry the per-run token the page was served with and a JSON body, and
the Content-Security-Policy allows no script but our own.
"""

from __future__ import annotations

import html
import json
import secrets
import sys
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

from fpi.errors import FpiError
from fpi.review.session import ReviewError, ReviewSession

HOST = "127.0.0.1"
MAX_BODY_BYTES = 64 * 1024
MAX_DISCARD_BYTES = 1024 * 1024
TOKEN_HEADER = "X-FPI-Token"
TOKEN_PLACEHOLDER = "{{token}}"
STATIC = {
    "/review.js": ("review.js", "text/javascript; charset=utf-8"),
    "/review.css": ("review.css", "text/css; charset=utf-8"),
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _asset(name: str) -> bytes:
    return resources.files("fpi.review").joinpath("static", name).read_bytes()


class ReviewServer(ThreadingHTTPServer):
    """Serves one `ReviewSession` on 127.0.0.1; `port=0` picks a free port."""

    daemon_threads = True

    def __init__(self, session: ReviewSession, *, port: int = 0) -> None:
        self.session = session
        self.token = secrets.token_urlsafe(24)
        try:
            super().__init__((HOST, port), _Handler)
        except OSError as exc:
            raise FpiError(
                f"cannot listen on {HOST}:{port} ({exc.strerror}); pass --port 0 for a free port"
            ) from None
        self.page = (
            _asset("index.html")
            .decode("utf-8")
            .replace(TOKEN_PLACEHOLDER, html.escape(self.token, quote=True))
            .encode("utf-8")
        )

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def allowed_hosts(self) -> set[str]:
        return {f"{HOST}:{self.port}", f"localhost:{self.port}"}


def serve_until_interrupted(server: ReviewServer) -> None:
    """Serve until Ctrl-C (or `server.shutdown()` from another thread), then close the socket.
    Every label was stored when its request was answered, so nothing is lost."""
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: ReviewServer
    server_version = "fpi-review"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the terminal is the UI
        pass

    # ---- routing ------------------------------------------------------------------------

    def do_GET(self) -> None:
        if not self._host_allowed():
            return
        path = self.path.split("?", 1)[0]
        if path == "/":
            self._send(HTTPStatus.OK, self.server.page, "text/html; charset=utf-8")
        elif path in STATIC:
            name, content_type = STATIC[path]
            self._send(HTTPStatus.OK, _asset(name), content_type)
        elif path == "/api/state":
            self._answer(self.server.session.state)
        elif path == "/favicon.ico":  # browsers ask; an empty answer keeps their log clean
            self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
        else:
            self._error(HTTPStatus.NOT_FOUND, f"no such page: {path}")

    def do_POST(self) -> None:
        if not self._host_allowed():
            return
        sent = (self.headers.get(TOKEN_HEADER) or "").encode()
        if not secrets.compare_digest(sent, self.server.token.encode()):
            self._discard_body()
            self._error(HTTPStatus.FORBIDDEN, "missing or wrong review token (reload the page)")
            return
        body = self._json_body()
        if body is None:
            return
        session = self.server.session
        path = self.path.split("?", 1)[0]
        if path == "/api/label":
            self._answer(
                lambda: session.label(
                    _text(body, "turn_id"), _text(body, "failure_point"), _note(body)
                )
            )
        elif path == "/api/skip":
            self._answer(lambda: session.skip(_text(body, "turn_id"), _note(body)))
        elif path == "/api/note":
            self._answer(lambda: session.note(_text(body, "turn_id"), _text(body, "note")))
        elif path == "/api/undo":
            self._answer(session.undo)
        else:
            self._error(HTTPStatus.NOT_FOUND, f"no such action: {path}")

    # ---- helpers ------------------------------------------------------------------------

    def _host_allowed(self) -> bool:
        if self.headers.get("Host") in self.server.allowed_hosts():
            return True
        self._discard_body()
        self._error(HTTPStatus.FORBIDDEN, "this server answers only to its own address")
        return False

    def _discard_body(self) -> None:
        """Read a body we will not use, so the answer reaches the client (unread bytes at
        close would reset the connection); a huge or unsized one closes the connection."""
        length = self._length()
        if length is None or length > MAX_DISCARD_BYTES:
            self.close_connection = True
            return
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 16))
            if not chunk:
                break
            length -= len(chunk)

    def _length(self) -> int | None:
        try:
            return int(self.headers.get("Content-Length", "0"))
        except ValueError:
            return None

    def _json_body(self) -> dict[str, Any] | None:
        length = self._length()
        if length is None or length > MAX_BODY_BYTES:
            self._discard_body()
            self.close_connection = True
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request body too large or unsized")
            return None
        raw = self.rfile.read(length)
        if not (self.headers.get("Content-Type") or "").startswith("application/json"):
            self._error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send the body as application/json")
            return None
        try:
            body = json.loads(raw or b"{}")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self._error(HTTPStatus.BAD_REQUEST, f"body is not JSON: {exc}")
            return None
        if not isinstance(body, dict):
            self._error(HTTPStatus.BAD_REQUEST, "body must be a JSON object")
            return None
        return body

    def _answer(self, action) -> None:
        try:
            data = json.dumps(action(), default=str, allow_nan=False).encode("utf-8")
        except (ReviewError, _BadField) as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc))
        except FpiError as exc:
            self._error(HTTPStatus.CONFLICT, str(exc))
        except Exception as exc:  # the annotator sees the failure; the label stays on the page
            traceback.print_exc(file=sys.stderr)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__}: {exc}")
        else:
            self._send(HTTPStatus.OK, data, "application/json")

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._send(status, json.dumps({"error": message}).encode("utf-8"), "application/json")

    def _send(self, status: HTTPStatus, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


class _BadField(ValueError):
    """A request field that is missing or of the wrong type."""


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise _BadField(f"field {name!r} must be a non-empty string")
    return value


def _note(body: dict[str, Any]) -> str | None:
    value = body.get("note")
    if value is not None and not isinstance(value, str):
        raise _BadField("field 'note' must be a string or null")
    return value
