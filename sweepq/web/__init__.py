"""sweepq's web dashboard and HTTP API: ``create_app()`` (Flask app factory), served by
``sweepq web``.

Why everything is served from here: sweepq is self-hosted and must work offline, so the page
loads no CDN asset. Plotly's JavaScript is streamed straight from the installed ``plotly`` Python
package (no 4 MB copy in the repository), and a Content-Security-Policy of ``'self'`` makes the
browser refuse any other origin should a future change try.

Who may reach it (``docs/security.md``): the API runs commands on every worker, so a server that
answers without a token answers only to Host names a DNS-rebinding page cannot pose as (IP
addresses, ``localhost``, and the names listed in ``SWEEPQ_WEB_ALLOWED_HOSTS``); with a token, a
rebinding page cannot authenticate, and any Host is served unless a list is given. Behind a
reverse proxy, ``SWEEPQ_TRUSTED_PROXIES`` tells werkzeug's ProxyFix how many proxies' forwarded
headers to believe, so Host, scheme and client address are the browser's, not the proxy's.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, render_template, request, send_file
from werkzeug.middleware.proxy_fix import ProxyFix

from sweepq.store import Store

DEFAULT_FLOWER_URL = "http://127.0.0.1:5555"
MAX_BODY = 1 << 20
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
MAX_TRUSTED_PROXIES = 5
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
        "trusted_proxies": parse_trusted_proxies(os.environ.get("SWEEPQ_TRUSTED_PROXIES")),
    }


def parse_trusted_proxies(value: str | int | None, name: str = "SWEEPQ_TRUSTED_PROXIES") -> int:
    """How many reverse proxies' ``X-Forwarded-*`` headers to believe (0: none). Raises
    ValueError with a one-line message for anything but a small non-negative integer: a wrong
    count lets a client forge its Host and address (too many) or breaks writes (too few)."""
    if value is None or value == "":
        return 0
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = -1
    if not 0 <= n <= MAX_TRUSTED_PROXIES:
        raise ValueError(f"{name} must be the number of reverse proxies in front of sweepq web "
                         f"(0-{MAX_TRUSTED_PROXIES}), got {value!r}")
    return n


def is_loopback(host: str) -> bool:
    """True for an address or name only this machine can reach (``127.0.0.1``, ``::1``,
    ``localhost``); anything else, a host name included, counts as reachable from outside."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _host_name(host: str) -> str:
    """The name part of a Host header: no port, no brackets around an IPv6 address."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host[1:]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def create_app(store: Store | None = None, settings: dict[str, Any] | None = None) -> Flask:
    """The Flask app. ``store`` defaults to one from the environment (``SWEEPQ_REDIS_URL``,
    ``SWEEPQ_NAMESPACE``); ``settings`` overrides ``api_token``, ``flower_url``, ``controllers``
    (in-process controllers whose suggestion timings /metrics reports), ``poll_ms``,
    ``allowed_hosts`` (the Host names accepted, ``["*"]`` for any; empty: any with a token,
    else only IP addresses and ``localhost``) and ``trusted_proxies`` (how many proxies'
    ``X-Forwarded-For/-Proto/-Host/-Port`` to apply; 0, the default, ignores them)."""
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

    token = cfg.get("api_token") or None
    proxies = parse_trusted_proxies(cfg.get("trusted_proxies"))
    if proxies:
        # the proxy's view of the request (Host, scheme, client address) replaces the socket's,
        # so the Host and Origin checks below and in the API see what the browser sent
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies,
                                x_port=proxies)
    allowed = {h.strip().lower() for h in (cfg.get("allowed_hosts") or []) if h.strip()}
    allowed_names = {_host_name(h) for h in allowed}

    def host_ok(host: str) -> bool:
        if "*" in allowed:
            return True
        if allowed:
            return host in allowed or _host_name(host) in allowed_names
        if token:
            return True  # a rebinding page has no token: every /api call answers 401
        name = _host_name(host)
        return name in LOOPBACK_NAMES or _is_ip(name)

    @app.before_request
    def _check_host() -> Any:
        """Refuse Host names a DNS-rebinding page could use (421): without a token, any page
        whose name resolves to this server could otherwise create sweeps, i.e. run commands."""
        host = request.host or ""
        if host_ok(host.lower()):
            return None
        if allowed:
            return api.error(421, f"unknown host {host!r} (allowed: {', '.join(sorted(allowed))})")
        return api.error(421, f"unknown host {host!r}: without SWEEPQ_API_TOKEN only IP addresses, "
                              "localhost and the names in SWEEPQ_WEB_ALLOWED_HOSTS are served")

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        """Liveness for load balancers and compose: 200 when Redis answers, else 503. Without
        the token (when one is set) only ``{"ok"}``: a probe needs no more, a stranger no more."""
        try:
            ok = store.ping()
        except Exception:
            ok = False
        body: dict[str, Any] = {"ok": ok}
        if api.token_ok(token):
            body.update(redis=ok, namespace=store.ns)
        return jsonify(body), (200 if ok else 503)

    @app.get("/metrics")
    def metrics() -> Response:
        """Prometheus text format (needs the token too when one is set: it names every sweep)."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        if not api.token_ok(token):
            return api.error(401, "missing or wrong API token")
        return Response(generate_latest(state.registry), mimetype=CONTENT_TYPE_LATEST.split(";")[0],
                        headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.get("/")
    def index() -> str:
        """The single-page dashboard; the data comes from /api (the shell itself needs no token)."""
        return render_template("index.html", flower_url=cfg.get("flower_url") or "",
                               auth=bool(token), poll_ms=int(cfg.get("poll_ms") or 2000),
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


__all__ = ["create_app", "plotly_js_path", "WebState", "DEFAULT_FLOWER_URL", "is_loopback",
           "parse_trusted_proxies"]
