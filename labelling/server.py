"""The label page's web app (bottle) over a `LabelStore`, and a threaded WSGI server to run it.

Every asset comes from the package (`static/`), so the page works offline. Changes are JSON POSTs: a page
of another site cannot send those to this one without a CORS preflight, which is never answered.
"""

from __future__ import annotations

from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import bottle

from glassware.labelling.store import LabelError, LabelStore

STATIC = Path(__file__).parent / "static"


def create_app(store: LabelStore) -> bottle.Bottle:
    app = bottle.Bottle()

    @app.get("/")
    def index():
        return bottle.static_file("index.html", root=STATIC)

    @app.get("/static/<filename>")
    def static(filename: str):
        return bottle.static_file(filename, root=STATIC)

    @app.get("/frames/<name>.jpg")
    def frame(name: str):
        try:
            image = store.image(name)
        except LabelError as e:
            return bottle.HTTPError(404, str(e))
        return bottle.static_file(image.name, root=image.parent, mimetype="image/jpeg")

    @app.get("/api/state")
    def state():
        return _json(store.snapshot)

    @app.post("/api/label")
    def label():
        return _json(lambda body: {"changed": store.assign(list(body["frames"]), str(body["label"]),
                                                           str(body.get("client", "")))}, body=True)

    @app.post("/api/undo")
    def undo():
        return _json(lambda body: {"restored": store.undo(str(body.get("client", "")))}, body=True)

    return app


def _json(handler, body: bool = False) -> dict:
    """Run a handler, its errors as JSON {"error"} with 400 (the page shows them)."""
    try:
        if not body:
            return handler()
        if not bottle.request.content_type.startswith("application/json"):
            bottle.response.status = 415
            return {"error": "send JSON"}
        request = bottle.request.json
        if not isinstance(request, dict):
            raise LabelError("expected a JSON object")
        return handler(request)
    except (LabelError, KeyError, TypeError, ValueError) as e:
        bottle.response.status = 400
        return {"error": str(e) if not isinstance(e, KeyError) else f"missing field {e}"}


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a browser's open connection does not hold up the shutdown


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args) -> None:  # one line per image request is noise
        pass


def make_label_server(store: LabelStore, host: str = "127.0.0.1", port: int = 8765) -> WSGIServer:
    """A server for the page (port 0 = any free port: see `.server_port`); run it with `serve_forever()`,
    stop it with `shutdown()` and `server_close()`."""
    return make_server(host, port, create_app(store), server_class=_ThreadingServer, handler_class=_QuietHandler)
