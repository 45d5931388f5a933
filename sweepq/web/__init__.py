"""sweepq's web dashboard and HTTP API: ``create_app()`` (Flask app factory), served by
``sweepq web``.

Why everything is served from here: sweepq is self-hosted and must work offline, so the page
loads no CDN asset. Plotly's JavaScript is streamed straight from the installed ``plotly`` Python
package (no 4 MB copy in the repository), and a Content-Security-Policy of ``'self'`` makes the
browser refuse any other origin should a future change try.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, render_template, request, send_file

from sweepq.store import Store

DEFAULT_FLOWER_URL = "http://127.0.0.1:5555"
MAX_BODY = 1 << 20
CSP = ("default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; connect-src 'self'; font-src 'self' data:; object-src 'none'; "
       "base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
# 'unsafe-eval': Plotly's WebGL traces (parcoords) compile their shaders with new Function().
# 'unsafe-inline' styles: Plotly injects <style> elements. Scripts still come only from 'self'.


@dataclass
class WebState:
    """What the views share: the store, the caches, and the settings."""

    store: Store
    settings: dict[str, Any]
    cache: Any = None
    importance: Any = None
    registry: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


def plotly_js_path() -> Path:
    """The minified Plotly bundle shipped inside the installed ``plotly`` package."""
    return Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))


def default_settings() -> dict[str, Any]:
    return {
        "api_token": os.environ.get("SWEEPQ_API_TOKEN") or None,
        "flower_url": os.environ.get("SWEEPQ_FLOWER_URL") or DEFAULT_FLOWER_URL,
        "controllers": [],
        "poll_ms": 2000,
        "allowed_hosts": [h for h in (os.environ.get("SWEEPQ_WEB_ALLOWED_HOSTS") or "").split(",") if h],
    }


def create_app(store: Store | None = None, settings: dict[str, Any] | None = None) -> Flask:
    """The Flask app. ``store`` defaults to one from the environment (``SWEEPQ_REDIS_URL``,
    ``SWEEPQ_NAMESPACE``); ``settings`` overrides ``api_token``, ``flower_url``, ``controllers``
    (in-process controllers whose suggestion timings /metrics reports), ``poll_ms`` and
    ``allowed_hosts`` (Host names accepted; empty: any)."""
    from sweepq.web import api
    from sweepq.web.data import ImportanceCache, TrialCache
    from sweepq.web.metrics import make_registry

    cfg = default_settings()
    cfg.update(settings or {})
    store = store if store is not None else Store()
    app = Flask(__name__, static_folder="static", template_folder="templates")
    app.json.sort_keys = False  # keep the documented key order of the JSON shapes
    app.config["SEND_FILE_MAX_AGE_DEFAULT"] = 300
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY  # configs are small; a huge body is refused (413)
    cache = TrialCache(store)
    state = WebState(store=store, settings=cfg, cache=cache, importance=ImportanceCache(),
                     registry=make_registry(store, cache, cfg.get("controllers")))
    app.extensions["sweepq"] = state
    app.register_blueprint(api.bp)

    allowed = {h.strip().lower() for h in (cfg.get("allowed_hosts") or []) if h.strip()}

    @app.before_request
    def _check_host() -> Any:
        """With ``allowed_hosts`` (``sweepq web`` on a loopback address sets it), refuse other
        Host names: a DNS-rebinding page cannot then reach a local server as its own origin."""
        if allowed:
            host = (request.host or "").lower()
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if host not in allowed and name not in allowed:
                return api.error(421, f"unknown host {request.host!r} (allowed: {', '.join(sorted(allowed))})")
        return None

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        """Liveness for load balancers and compose: 200 when Redis answers, else 503."""
        try:
            ok = bool(store.r.ping())
        except Exception:
            ok = False
        return jsonify({"ok": ok, "redis": ok, "namespace": store.ns}), (200 if ok else 503)

    @app.get("/metrics")
    def metrics() -> Response:
        """Prometheus text format (needs the token too when one is set: it names every sweep)."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        if not api.token_ok(cfg.get("api_token")):
            return api.error(401, "missing or wrong API token")
        return Response(generate_latest(state.registry), mimetype=CONTENT_TYPE_LATEST.split(";")[0],
                        headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.get("/")
    def index() -> str:
        """The single-page dashboard; the data comes from /api (the shell itself needs no token)."""
        return render_template("index.html", flower_url=cfg.get("flower_url") or "",
                               auth=bool(cfg.get("api_token")), poll_ms=int(cfg.get("poll_ms") or 2000),
                               namespace=store.ns)

    @app.get("/vendor/plotly.min.js")
    def plotly_js() -> Response:
        """Plotly from the installed package: offline, and always the version pip installed."""
        resp = send_file(plotly_js_path(), mimetype="text/javascript", max_age=86400, conditional=True)
        return resp

    @app.errorhandler(404)
    def not_found(exc: Exception) -> Any:
        if request.path.startswith("/api/"):
            return api.error(404, f"no such API endpoint: {request.path}")
        return exc

    @app.errorhandler(405)
    def not_allowed(exc: Exception) -> Any:
        if request.path.startswith("/api/"):
            return api.error(405, f"method {request.method} not allowed on {request.path}")
        return exc

    @app.errorhandler(413)
    def too_large(exc: Exception) -> Any:
        return api.error(413, f"request body over {MAX_BODY} bytes; a sweep config is far smaller")

    @app.after_request
    def headers(resp: Response) -> Response:
        resp.headers.setdefault("Content-Security-Policy", CSP)
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        if request.path.startswith("/api/"):
            resp.headers.setdefault("Cache-Control", "no-store")
        return resp

    return app


__all__ = ["create_app", "plotly_js_path", "WebState", "DEFAULT_FLOWER_URL"]
